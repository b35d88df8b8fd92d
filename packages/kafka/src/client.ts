import type { Kafka } from 'kafkajs';
import { KafkajsAdmin } from './kafkajs/admin.ts';
import { createKafkajs } from './kafkajs/connection.ts';
import { KafkajsGroupConsumer } from './kafkajs/group-consumer.ts';
import { openKafkajsPublisher } from './kafkajs/publisher.ts';
import { PlatformaticAdmin } from './platformatic/admin.ts';
import { PlatformaticGroupConsumer } from './platformatic/group-consumer.ts';
import { openPlatformaticPublisher } from './platformatic/publisher.ts';
import type {
  GroupConsumer,
  GroupConsumerOptions,
  KafkaClientKind,
  KafkaOptions,
  Publisher,
  TopicAdmin,
} from './types.ts';

/** The client behind admin() and publisher() when KafkaOptions.client is left out (as @teal/config's default). */
export const DEFAULT_KAFKA_CLIENT: KafkaClientKind = 'platformatic';

/**
 * The one entry point: picks the library behind each role and closes whatever it handed out.
 * It reads no environment; teal's services pass `client: config.kafka.client` (@teal/config).
 */
export class KafkaClient {
  /** kafkajs, always: the topic readers use it whichever client the other roles use. */
  readonly kafka: Kafka;
  /** The library behind admin(), publisher() and groupConsumer(). */
  readonly clientKind: KafkaClientKind;
  private readonly closers = new Set<() => Promise<void>>();

  constructor(readonly options: KafkaOptions) {
    this.clientKind = options.client ?? DEFAULT_KAFKA_CLIENT;
    this.kafka = createKafkajs(options);
  }

  admin(): TopicAdmin {
    const admin =
      this.clientKind === 'platformatic'
        ? new PlatformaticAdmin(this.options)
        : new KafkajsAdmin(this.kafka.admin(), this.options);
    this.track(() => admin.close());
    return admin;
  }

  async publisher(): Promise<Publisher> {
    const publisher =
      this.clientKind === 'platformatic'
        ? await openPlatformaticPublisher(this.options)
        : await openKafkajsPublisher(this.kafka);
    this.track(() => publisher.close());
    return publisher;
  }

  groupConsumer(options: GroupConsumerOptions): GroupConsumer {
    const consumer =
      (options.client ?? this.clientKind) === 'platformatic'
        ? new PlatformaticGroupConsumer(this.options, options)
        : new KafkajsGroupConsumer(this.kafka, options, this.options.maxMessageBytes);
    this.track(() => consumer.close());
    return consumer;
  }

  private track(close: () => Promise<void>): void {
    this.closers.add(close);
  }

  async close(): Promise<void> {
    const closers = [...this.closers];
    this.closers.clear();
    await Promise.allSettled(closers.map((close) => close()));
  }
}
