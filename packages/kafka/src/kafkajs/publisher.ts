import { type Kafka, Partitioners, type Producer } from 'kafkajs';
import { OrderedSends } from '../ordered-sends.ts';
import { partitionForKey } from '../partitioner.ts';
import { brokerSaidTooLarge, tooLargeError } from '../record-size.ts';
import { tlsProbe } from '../security.ts';
import type { KafkaOptions, OutgoingRecord, Publisher } from '../types.ts';
import { kafkajsOptions } from './connection.ts';
import { wrapKafkajsError } from './errors.ts';

/** A connected acks = all publisher on kafkajs. */
export async function openKafkajsPublisher(kafka: Kafka): Promise<KafkajsPublisher> {
  const publisher = new KafkajsPublisher(
    kafka.producer({
      // Idempotent + one request in flight: the broker de-duplicates retried batches and
      // keeps per-partition order even when a request is retried (kafkajs #598 shows up with
      // several in flight).
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    }),
    kafkajsOptions(kafka),
  );
  await publisher.connect();
  return publisher;
}

export class KafkajsPublisher implements Publisher {
  private readonly ordered = new OrderedSends();

  constructor(
    private readonly producer: Producer,
    private readonly options?: KafkaOptions,
  ) {}

  async connect(): Promise<void> {
    await tlsProbe(this.options);
    try {
      await this.producer.connect();
    } catch (err) {
      throw wrapKafkajsError(err, 'cannot connect the Kafka producer', this.options);
    }
  }

  /** One send at a time, in call order (OrderedSends says why). */
  send(records: OutgoingRecord[]): Promise<void> {
    return this.ordered.run(() => this.sendNow(records));
  }

  private async sendNow(records: OutgoingRecord[]): Promise<void> {
    if (records.length === 0) return;
    // One request per call, grouped by topic; kafkajs keeps the array order per partition.
    const byTopic = new Map<string, OutgoingRecord[]>();
    for (const record of records) {
      const list = byTopic.get(record.topic);
      if (list) list.push(record);
      else byTopic.set(record.topic, [record]);
    }
    try {
      await this.producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, list]) => ({
          topic,
          messages: list.map((r) => ({
            key: r.key,
            value: r.value,
            partition: r.partition,
            headers: r.headers,
          })),
        })),
      });
    } catch (err) {
      if (brokerSaidTooLarge(err)) throw tooLargeError(err, records);
      throw wrapKafkajsError(err, `Kafka did not acknowledge ${records.length} records`);
    }
  }

  /** kafkajs's DefaultPartitioner, which the producer above uses for records without a partition. */
  partitionFor(key: Buffer, partitionCount: number): number {
    return partitionForKey(key, partitionCount);
  }

  async close(): Promise<void> {
    await this.producer.disconnect().catch(() => undefined);
  }
}
