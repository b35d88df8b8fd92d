import { randomUUID } from 'node:crypto';
import { TealError } from '@teal/errors';
import type { KafkaClient } from './client.ts';
import { KafkajsAdmin } from './kafkajs/admin.ts';
import type { Publisher } from './types.ts';

/**
 * The compacted `<prefix>._schemas` topic: every writer schema, keyed by its fingerprint, so
 * any Avro reader can decode teal's records.
 */
export class SchemaTopic {
  private publisher: Promise<Publisher> | undefined;
  private readonly published = new Set<string>();

  constructor(
    private readonly client: KafkaClient,
    readonly topic: string,
  ) {}

  async ensure(): Promise<void> {
    const admin = this.client.admin();
    try {
      // Schemas are small: the broker's own size limit is enough.
      await admin.ensureTopic(this.topic, { partitions: 1, compacted: true, maxMessageBytes: null });
    } finally {
      await admin.close();
    }
  }

  async publish(fingerprintHex: string, schemaJson: string): Promise<void> {
    if (this.published.has(fingerprintHex)) return;
    this.publisher ??= this.ensure().then(() => this.client.publisher());
    const publisher = await this.publisher;
    await publisher.send([
      { topic: this.topic, partition: 0, key: Buffer.from(fingerprintHex), value: Buffer.from(schemaJson) },
    ]);
    this.published.add(fingerprintHex);
  }

  /** Reads the whole topic, from its start to its current end. */
  async loadAll(): Promise<Map<string, string>> {
    await this.ensure();
    const admin = new KafkajsAdmin(this.client.kafka.admin(), this.client.options);
    const schemas = new Map<string, string>();
    const groupId = `teal-schema-reader-${randomUUID()}`;
    try {
      const ends = await admin.logEndOffsets(this.topic);
      const end = ends.find((e) => e.partition === 0)?.end ?? 0n;
      if (end === 0n) return schemas;
      const consumer = this.client.kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
      await consumer.connect();
      try {
        await consumer.subscribe({ topics: [this.topic], fromBeginning: true });
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () =>
              reject(
                new TealError('TEAL_SCHEMA_LOAD_TIMEOUT', `could not read ${this.topic} within 60 s`, {
                  retriable: true,
                }),
              ),
            60_000,
          );
          consumer
            .run({
              autoCommit: false,
              eachMessage: async ({ message }) => {
                if (message.key && message.value)
                  schemas.set(message.key.toString(), message.value.toString());
                if (BigInt(message.offset) + 1n >= end) {
                  clearTimeout(timer);
                  resolve();
                }
              },
            })
            .catch(reject);
        });
      } finally {
        await consumer.disconnect().catch(() => undefined);
      }
    } finally {
      await admin.deleteGroup(groupId);
      await admin.close();
    }
    return schemas;
  }

  async close(): Promise<void> {
    if (this.publisher) await (await this.publisher.catch(() => undefined))?.close();
  }
}
