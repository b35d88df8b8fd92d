import { TealError } from '@teal/errors';
import type { Kafka } from 'kafkajs';
import { KafkajsAdmin } from './kafkajs/admin.ts';
import { createKafkajs } from './kafkajs/connection.ts';
import { KafkajsGroupConsumer } from './kafkajs/group-consumer.ts';
import { openKafkajsPublisher } from './kafkajs/publisher.ts';
import { PlatformaticAdmin } from './platformatic/admin.ts';
import { openPlatformaticPublisher } from './platformatic/publisher.ts';
import type {
  GroupConsumer,
  GroupConsumerOptions,
  KafkaClientKind,
  KafkaOptions,
  Publisher,
  TopicAdmin,
} from './types.ts';

/** The client behind admin() and publisher() when KafkaOptions.client is left out. */
export const DEFAULT_KAFKA_CLIENT: KafkaClientKind = 'platformatic';

/** The client named by `TEAL_KAFKA_CLIENT` (kafkajs | platformatic), else the default. */
export function kafkaClientFromEnv(env: NodeJS.ProcessEnv = process.env): KafkaClientKind {
  const named = env.TEAL_KAFKA_CLIENT?.trim();
  if (!named) return DEFAULT_KAFKA_CLIENT;
  if (named === 'kafkajs' || named === 'platformatic') return named;
  throw new TealError(
    'TEAL_CONFIG_INVALID',
    `TEAL_KAFKA_CLIENT=${named} is not a Kafka client teal knows: set it to kafkajs or platformatic, or unset it`,
  );
}

/**
 * The one entry point: picks the library behind each role and closes whatever it handed out.
 * It reads no environment; teal's services pass `client: config.kafka.client` (@teal/config).
 */
export class KafkaClient {
  /** kafkajs, always: the consumer group and the topic readers use it whichever client publishes. */
  readonly kafka: Kafka;
  /** The library behind admin() and publisher(). */
  readonly clientKind: KafkaClientKind;
  private readonly closers = new Set<() => Promise<void>>();

  constructor(readonly options: KafkaOptions) {
    this.clientKind = options.client ?? kafkaClientFromEnv();
    this.kafka = createKafkajs(options);
  }

  admin(): TopicAdmin {
    const admin =
      this.clientKind === 'platformatic'
        ? new PlatformaticAdmin(this.options)
        : new KafkajsAdmin(this.kafka.admin());
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
    const consumer = new KafkajsGroupConsumer(this.kafka, options);
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
