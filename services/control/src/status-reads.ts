import { deadLetterTopic, formatPosition, isTableTopic } from '@teal/change-event';
import { isRetriablePgError, isUndefinedObject } from '@teal/errors';
import type { TopicAdmin } from '@teal/kafka';
import { type ControlEntry, readAllControl, readAppliedPositions as readAllPositions } from '@teal/postgres';
import type pg from 'pg';

// Status is assembled from the three systems, so that `teal status` tells the truth whether
// the API runs inside the pipeline process or beside it: the slot from blue, what is in
// Kafka from the brokers, what is applied from green's teal.applied_position, and what the
// producer and consumer last said about themselves from green's teal.control. These are the
// reads (drain uses them too); status-derive.ts turns their answers into a StatusReport.

/** Every row of green's teal.control; empty when teal has not created its schema yet. */
export async function readControl(green: pg.Client): Promise<Map<string, ControlEntry>> {
  try {
    return await readAllControl(green);
  } catch (err) {
    if (isUndefinedObject(err)) return new Map();
    throw err;
  }
}

/**
 * Green's side of a status, or that green does not answer (a connection refused or lost):
 * status then still reports blue and Kafka, with a warning, instead of failing whole.
 */
export async function readGreenSide<T extends object>(
  read: () => Promise<T>,
  empty: T,
): Promise<T & { unreachable?: unknown }> {
  try {
    const side: T & { unreachable?: unknown } = await read();
    return side;
  } catch (err) {
    if (!isRetriablePgError(err)) throw err;
    return { ...empty, unreachable: err };
  }
}

/** A partition's applied position as status and drain show it (offsets as numbers, position as text). */
export interface AppliedRow {
  topic: string;
  partition: number;
  kafkaOffset: number;
  position: string;
}

/** Every applied position in green (decoded by @teal/postgres); empty before teal created its schema. */
export async function readAppliedPositions(green: pg.Client): Promise<AppliedRow[]> {
  try {
    return (await readAllPositions(green)).map((p) => ({
      topic: p.topic,
      partition: p.partition,
      kafkaOffset: Number(p.kafkaOffset),
      position: formatPosition(p.position),
    }));
  } catch (err) {
    if (isUndefinedObject(err)) return [];
    throw err;
  }
}

export interface TopicEnds {
  /** Table topics `<prefix>.<schema>.<table>` -> per-partition log end offsets. */
  tables: Map<string, Array<{ partition: number; end: number }>>;
  /** Records in `<prefix>._dlq`. */
  deadLetters: number;
}

export async function readTopicEnds(admin: TopicAdmin, prefix: string): Promise<TopicEnds> {
  const topics = await admin.listTopics(`${prefix}.`);
  const tables = new Map<string, Array<{ partition: number; end: number }>>();
  let deadLetters = 0;
  for (const topic of topics.sort()) {
    if (topic === deadLetterTopic(prefix)) {
      for (const p of await admin.logEndOffsets(topic)) deadLetters += Number(p.end);
    } else if (isTableTopic(topic, prefix)) {
      const ends = await admin.logEndOffsets(topic);
      tables.set(
        topic,
        ends
          .map((p) => ({ partition: p.partition, end: Number(p.end) }))
          .sort((a, b) => a.partition - b.partition),
      );
    }
  }
  return { tables, deadLetters };
}
