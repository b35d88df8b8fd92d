import { resolveConfig } from '@teal/config';
import { Consumer } from '@teal/consumer';
import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import { afterAll, expect, onTestFinished, test } from 'vitest';
import {
  column,
  type EventInput,
  TestStream,
  tableSchema,
} from '../services/consumer/src/testing/harness.ts';
import { snapshotEvent } from '../services/producer/src/snapshot-reader.ts';
import { greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// A transaction whose commit record starts exactly at the slot's consistent point is decoded
// (the slot streams from that LSN on) but is not in the exported snapshot (it was running when
// the snapshot builder became consistent). Its events and the snapshot rows share an LSN; the
// rows were positioned (cp, ordinal) and the stream events (cp, 1..), so the consumer took the
// stream events for replays of the rows and skipped them. The snapshot rows here are positioned
// by the producer's own snapshotEvent, then come the stream events as the producer writes them.

const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-consistent-point-test' });
afterAll(() => kafka.close());

test('a commit at the consistent point is applied after the snapshot rows positioned there', async () => {
  const prefix = uniqueName('tcp');
  const table = uniqueName('t');
  const green = await pgClient(greenUrl());
  await green.query(`CREATE TABLE public.${table} (id int PRIMARY KEY, name text)`);
  const schema = tableSchema('public', table, [column('id', 'int4', true), column('name', 'text')]);
  const stream = new TestStream(kafka, prefix, 1);
  const consumer = new Consumer(
    resolveConfig({
      green: { url: greenUrl() },
      kafka: { brokers: kafkaBrokers(), topicPrefix: prefix, partitions: 1 },
    }),
    { groupId: `${prefix}-g` },
  );
  onTestFinished(async () => {
    await consumer.stop();
    await stream.close();
    const admin = kafka.admin();
    await admin.deleteTopics(await admin.listTopics(`${prefix}.`)).catch(() => undefined);
    await admin.close();
  });

  const cp = 0x3000028n;
  const snapshotRows = [1, 2, 3].map((id, i): EventInput => {
    const row = { id: String(id), name: `snap${id}` };
    return { op: 'r', lsn: cp, seq: snapshotEvent(schema, row, cp, i + 1, 0n).position.seq, after: row };
  });
  const topic = stream.topicOf(schema);
  const covered = (offset: bigint, what: string) =>
    waitFor(
      async () => {
        const { rows } = await green.query<{ o: string }>(
          'SELECT kafka_offset::text AS o FROM teal.applied_position WHERE topic = $1',
          [topic],
        );
        return rows.length > 0 && BigInt(rows[0].o) >= offset;
      },
      { what },
    );
  // The snapshot is applied first (its own batches), as it is in a real run.
  await stream.send(schema, snapshotRows);
  await consumer.start();
  await covered(2n, 'the snapshot rows applied');
  // The transaction committed at the consistent point: an update of a snapshot row and an insert.
  await stream.send(schema, [
    { op: 'u', lsn: cp, seq: 1, after: { id: '1', name: 'committed-at-cp' } },
    { op: 'c', lsn: cp, seq: 2, after: { id: '4', name: 'inserted-at-cp' } },
  ]);
  await covered(4n, 'the stream events covered');
  const { rows } = await green.query(`SELECT id::text, name FROM public.${table} ORDER BY id`);
  expect(rows).toEqual([
    { id: '1', name: 'committed-at-cp' },
    { id: '2', name: 'snap2' },
    { id: '3', name: 'snap3' },
    { id: '4', name: 'inserted-at-cp' },
  ]);
  const { rows: pos } = await green.query(
    'SELECT lsn::text, seq::text FROM teal.applied_position WHERE topic = $1',
    [topic],
  );
  expect(pos).toEqual([{ lsn: '0/3000028', seq: '2' }]);
});
