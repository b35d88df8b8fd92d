import { resolveConfig } from '@teal/config';
import { Consumer } from '@teal/consumer';
import type { KafkaClient } from '@teal/kafka';
import { type Admin, Kafka, logLevel } from 'kafkajs';
import type pg from 'pg';
import { onTestFinished } from 'vitest';
import {
  column,
  type EventInput,
  TestStream,
  tableSchema,
} from '../../services/consumer/src/testing/harness.ts';
import { greenUrl, kafkaBrokers, pgClient, uniqueName } from './env.ts';

// One table `(id int PRIMARY KEY, name text)` on a two-partition topic, consumers of one group
// over it, and a raw kafkajs admin for what teal's TopicAdmin does not do (deleteRecords, the
// group's state). Everything is removed when the test finishes.

export interface GroupSetup {
  readonly table: string;
  readonly topic: string;
  readonly groupId: string;
  readonly green: pg.Client;
  readonly stream: TestStream;
  readonly admin: Admin;
  /** A consumer of the group (stopped when the test finishes); not started. */
  consumer(): Consumer;
  /** An event of the table on an explicit partition, at the next LSN. */
  event(id: number, name: string, partition: number, op?: 'c' | 'u'): EventInput;
  send(events: EventInput[]): Promise<void>;
  /** Green's stored offset of a partition, -1 when none. */
  stored(partition: number): Promise<bigint>;
  /** The table's rows in green, by id. */
  rows(): Promise<Array<{ id: string; name: string }>>;
}

export async function groupSetup(kafka: KafkaClient, name: string): Promise<GroupSetup> {
  const prefix = uniqueName(name);
  const table = uniqueName('t');
  const groupId = `${prefix}-g`;
  const green = await pgClient(greenUrl());
  const stream = new TestStream(kafka, prefix, 2);
  const schema = tableSchema('public', table, [column('id', 'int4', true), column('name', 'text')]);
  const topic = stream.topicOf(schema);
  const config = resolveConfig({
    green: { url: greenUrl() },
    kafka: { brokers: kafkaBrokers(), topicPrefix: prefix, partitions: 2 },
  });
  const raw = new Kafka({ brokers: kafkaBrokers(), clientId: `${name}-test`, logLevel: logLevel.NOTHING });
  const admin = raw.admin();
  await admin.connect();
  const consumers: Consumer[] = [];
  onTestFinished(async () => {
    for (const c of consumers) await c.stop();
    await stream.close();
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect();
    await green.query(`DROP TABLE IF EXISTS public.${table}`);
    await green.end();
  });
  let lsn = 1000n;
  return {
    table,
    topic,
    groupId,
    green,
    stream,
    admin,
    consumer() {
      const c = new Consumer(config, { groupId });
      consumers.push(c);
      return c;
    },
    event: (id, name, partition, op = 'c') => ({
      op,
      lsn: lsn++,
      seq: 0,
      after: { id: String(id), name },
      partition,
    }),
    send: (events) => stream.send(schema, events),
    async stored(partition) {
      const { rows } = await green.query<{ o: string }>(
        'SELECT kafka_offset::text AS o FROM teal.applied_position WHERE topic = $1 AND partition = $2',
        [topic, partition],
      );
      return rows.length === 0 ? -1n : BigInt(rows[0].o);
    },
    async rows() {
      const { rows } = await green.query<{ id: string; name: string }>(
        `SELECT id, name FROM public.${table} ORDER BY id`,
      );
      return rows;
    },
  };
}
