import { randomUUID } from 'node:crypto';
import { deadLetterTopic, tableOfTopic } from '@teal/change-event';
import { TealError } from '@teal/errors';
import type { KafkaClient } from '@teal/kafka';
import type { DeadLetterCounts } from './types.ts';

// The dead letters of a pipeline, counted per source table for drain and cutover. They are
// read from the `<prefix>._dlq` topic itself, not from a count the consumer keeps: the topic
// is the record of what green rejected, it outlives consumer restarts and it is the same
// whichever process asks (the control API may run beside the pipeline). The topic lives as
// long as the pipeline's topic prefix, so what it holds is every dead letter since the
// pipeline started. The total comes from its log end offsets, so letters that retention
// already deleted still count (under EXPIRED_TABLE).

const READ_TIMEOUT_MS = 60_000;
/** The "table" of dead letters retention deleted before they were counted. */
export const EXPIRED_TABLE = '(expired from the topic)';

export async function countDeadLetters(client: KafkaClient, prefix: string): Promise<DeadLetterCounts> {
  const topic = deadLetterTopic(prefix);
  const admin = client.kafka.admin();
  await admin.connect();
  const groupId = `teal-dlq-counter-${randomUUID()}`;
  try {
    if (!(await admin.listTopics()).includes(topic)) return { total: 0, tables: [] };
    const offsets = await admin.fetchTopicOffsets(topic);
    const total = offsets.reduce((sum, o) => sum + Number(o.high), 0);
    // Per partition, the end to read up to; records written later are not counted.
    const ends = new Map(
      offsets.filter((o) => Number(o.high) > Number(o.low)).map((o) => [o.partition, BigInt(o.high)]),
    );
    const counts = new Map<string, number>();
    let read = 0;
    if (ends.size > 0) {
      const consumer = client.kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
      await consumer.connect();
      try {
        await consumer.subscribe({ topics: [topic], fromBeginning: true });
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () =>
              reject(
                new TealError(
                  'TEAL_KAFKA_ERROR',
                  `could not read the dead-letter topic ${topic} within 60 s`,
                  {
                    retriable: true,
                  },
                ),
              ),
            READ_TIMEOUT_MS,
          );
          const left = new Set(ends.keys());
          consumer
            .run({
              autoCommit: false,
              eachMessage: async ({ partition, message }) => {
                const end = ends.get(partition);
                const offset = BigInt(message.offset);
                if (end === undefined || offset >= end) return;
                const source = message.headers?.['teal.source.topic']?.toString() ?? '';
                const table = source ? tableOfTopic(source, prefix) : '(no teal.source.topic header)';
                counts.set(table, (counts.get(table) ?? 0) + 1);
                read++;
                if (offset + 1n >= end) left.delete(partition);
                if (left.size === 0) {
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
    }
    if (total > read) counts.set(EXPIRED_TABLE, total - read);
    const tables = [...counts]
      .map(([table, count]) => ({ table, count }))
      .sort((a, b) => a.table.localeCompare(b.table));
    return { total, tables };
  } finally {
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  }
}
