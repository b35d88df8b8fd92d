import { randomUUID } from 'node:crypto';
import { type ChangeEvent, decodeEvent, SchemaCache, schemasTopic } from '@teal/change-event';
import { type KafkaClient, SchemaTopic } from '@teal/kafka';
import { waitFor } from '@teal/runtime';

// Reads teal's topics back (tests, benchmark, debugging): every record of the topics from
// their start, decoded with the writer schemas from `<prefix>._schemas`.

export interface ReadRecord {
  topic: string;
  partition: number;
  offset: bigint;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

export class TopicReader {
  readonly records: ReadRecord[] = [];
  private consumer: ReturnType<KafkaClient['kafka']['consumer']> | undefined;

  constructor(
    private readonly client: KafkaClient,
    private readonly topics: string[],
  ) {}

  /** Waits until every topic exists (auto-creation is off), then reads them from their start. */
  async start(timeoutMs = 20_000): Promise<void> {
    const admin = this.client.admin();
    try {
      await waitFor(
        async () => {
          const have = new Set(await admin.listTopics());
          return this.topics.every((t) => have.has(t));
        },
        { timeoutMs, what: `topics ${this.topics.join(', ')}` },
      );
    } finally {
      await admin.close();
    }
    // Records as large as the client's maxMessageBytes come whole (kafkajs's defaults stop at 1 MiB per partition).
    const largest = this.client.options.maxMessageBytes ?? 0;
    const consumer = this.client.kafka.consumer({
      groupId: `teal-reader-${randomUUID()}`,
      maxWaitTimeInMs: 100,
      maxBytesPerPartition: Math.max(1024 * 1024, largest),
      maxBytes: Math.max(10 * 1024 * 1024, largest),
    });
    this.consumer = consumer;
    await consumer.connect();
    await consumer.subscribe({ topics: this.topics, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {}))
          if (v !== undefined) headers[k] = String(v);
        this.records.push({
          topic,
          partition,
          offset: BigInt(message.offset),
          key: message.key,
          value: message.value,
          headers,
        });
      },
    });
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect().catch(() => {});
  }
}

/** Decodes table records (not _messages) with schemas loaded from the schema topic. */
export async function decodeAll(
  client: KafkaClient,
  prefix: string,
  records: readonly ReadRecord[],
): Promise<Array<{ record: ReadRecord; event: ChangeEvent }>> {
  const cache = new SchemaCache();
  for (const [fp, json] of await new SchemaTopic(client, schemasTopic(prefix)).loadAll()) cache.add(fp, json);
  return records
    .filter((r) => r.value !== null)
    .map((record) => ({ record, event: decodeEvent(record.value!, cache).event }));
}
