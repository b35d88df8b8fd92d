import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import { afterAll, expect, onTestFinished, test } from 'vitest';
import {
  column,
  type EventInput,
  TestStream,
  tableSchema,
} from '../services/consumer/src/testing/harness.ts';
import { greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// kill -9 of a consumer process while it applies a backlog, then a restart: green ends up
// exactly as expected (same row count and checksum), nothing lost, nothing applied twice.

const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-consumer-crash-test' });
afterAll(() => kafka.close());

const MAIN = path.resolve(import.meta.dirname, '../services/consumer/src/main.ts');

function startConsumer(prefix: string): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: {
      ...process.env,
      TEAL_GREEN_URL: greenUrl(),
      TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
      TEAL_TOPIC_PREFIX: prefix,
      TEAL_CONSUMER_GROUP: `${prefix}-g`,
      TEAL_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

test('kill -9 mid-backlog and restart: green equals the expected rows, no duplicates, nothing lost', async () => {
  const prefix = uniqueName('crash');
  const table = uniqueName('t');
  const green = await pgClient(greenUrl());
  // No primary key in green to hide a double apply: the unique index exists only for
  // ON CONFLICT, and the checksum covers every row and value.
  await green.query(`CREATE TABLE public.${table} (id int NOT NULL, n int, payload text)`);
  await green.query(`CREATE UNIQUE INDEX ON public.${table} (id)`);
  const schema = tableSchema('public', table, [
    column('id', 'int4', true),
    column('n', 'int4'),
    column('payload', 'text'),
  ]);
  const stream = new TestStream(kafka, prefix, 2);
  onTestFinished(() => stream.close());

  const ROWS = 6000;
  const expected = new Map<number, { n: number; payload: string }>();
  const events: EventInput[] = [];
  let lsn = 1000n;
  for (let round = 0; round < 4; round++) {
    for (let id = 1; id <= ROWS; id++) {
      lsn += 1n;
      if (round === 3 && id % 7 === 0) {
        events.push({ op: 'd', lsn, seq: 1, key: { id: String(id) } });
        expected.delete(id);
        continue;
      }
      const row = { n: round, payload: `p${id}-${round}` };
      events.push({
        op: round === 0 ? 'c' : 'u',
        lsn,
        seq: 1,
        after: { id: String(id), n: String(row.n), payload: row.payload },
      });
      expected.set(id, row);
    }
  }
  await stream.send(schema, events);
  const topic = stream.topicOf(schema);

  const progress = async () => {
    const { rows } = await green.query<{ o: string | null }>(
      'SELECT sum(kafka_offset + 1) AS o FROM teal.applied_position WHERE topic = $1',
      [topic],
    );
    return Number(rows[0]?.o ?? 0);
  };
  // One row of the backlog is held locked in green, so the first consumer cannot finish the
  // backlog before it is killed, however fast the machine: the partition holding that row
  // stops at the batch that writes it. The row's events upsert over it (expected unchanged).
  await green.query(`INSERT INTO public.${table} VALUES ($1, -1, 'locked')`, [ROWS]);
  const locker = await pgClient(greenUrl());
  await locker.query('BEGIN');
  await locker.query(`SELECT 1 FROM public.${table} WHERE id = $1 FOR UPDATE`, [ROWS]);

  const first = startConsumer(prefix);
  await waitFor(async () => (await progress()) > 0, {
    what: 'some batches applied',
    intervalMs: 20,
    timeoutMs: 60_000,
  });
  first.kill('SIGKILL');
  await new Promise((resolve) => first.once('exit', resolve));
  const atKill = await progress();
  expect(atKill).toBeLessThan(events.length); // killed mid-backlog
  await locker.query('ROLLBACK');

  startConsumer(prefix);
  await waitFor(async () => (await progress()) === events.length, {
    what: 'backlog applied after restart',
    timeoutMs: 90_000,
  });

  const want = [...expected.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([id, r]) => `${id}:${r.n}:${r.payload}`);
  const { rows } = await green.query<{ count: string; sum: string }>(
    `SELECT count(*)::text AS count, md5(string_agg(id || ':' || n || ':' || payload, ',' ORDER BY id)) AS sum FROM public.${table}`,
  );
  const { rows: wantSum } = await green.query<{ sum: string }>('SELECT md5($1::text) AS sum', [
    want.join(','),
  ]);
  expect(rows[0]).toEqual({ count: String(expected.size), sum: wantSum[0].sum });
  const admin = kafka.admin();
  await admin.deleteTopics(await admin.listTopics(`${prefix}.`)).catch(() => undefined);
  await admin.close();
});
