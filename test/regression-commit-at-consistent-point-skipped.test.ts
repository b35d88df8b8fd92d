import { formatLsn } from '@teal/change-event';
import { resolveConfig } from '@teal/config';
import { Consumer } from '@teal/consumer';
import { KafkaClient } from '@teal/kafka';
import { Producer } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { afterAll, expect, onTestFinished, test } from 'vitest';
import { startScratchPostgres } from '../soak/scratch-postgres.ts';
import { greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';
import { dropSlotAndPublication, readAllEvents } from './support/producer-fixture.ts';

// Regression (issue 13): a transaction whose commit record starts exactly at the slot's
// consistent point is decoded (the stream starts at that LSN) but is not in the exported
// snapshot (it was running when the snapshot builder became consistent). Its events and the
// snapshot rows share an LSN; the rows were positioned (cp, ordinal) and the stream events
// (cp, 1..), so the consumer took the events for replays of the rows and skipped them.
//
// The commit is put at the consistent point by the slot creation itself, following
// snapbuild.c (SnapBuildFindSnapshot): CREATE_REPLICATION_SLOT logs xl_running_xacts R1 and,
// with transactions running, goes START -> BUILDING_SNAPSHOT and waits (XactLockTableWait)
// for every one of them, then logs R2; at R2, with the oldest running xid >= R1's nextXid, it
// goes to FULL_SNAPSHOT and waits again for those older than R2's nextXid, then logs R3; at
// R3, with the oldest running xid >= R2's nextXid, it is CONSISTENT, and the consistent point
// is the end of R3. So: A runs before the slot; B starts while the slot waits for A; A
// commits; C starts while the slot waits for B; B commits; R3 is logged with only C running;
// then C commits, and on a quiet cluster its commit record is the very next WAL record. Every
// wait is seen in pg_locks (the walsender's ungranted lock on a transaction id): no timing.

const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-consistent-point-test' });
afterAll(() => kafka.close());

async function xidOf(db: pg.Client): Promise<string> {
  const { rows } = await db.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x');
  return rows[0].x;
}

test('a transaction committed exactly at the consistent point reaches green exactly once', {
  timeout: 180_000,
}, async () => {
  // A quiet blue of the test's own: nothing else may write WAL between R3 and C's commit.
  const scratch = await startScratchPostgres({ autovacuum: 'off', checkpoint_timeout: "'1h'" });
  onTestFinished(() => scratch.destroy());
  const name = uniqueName('cp_commit');
  const prefix = `${name}_t`;
  const slot = `${name}_slot`;
  const publication = `${name}_pub`;
  const topic = `${prefix}.public.${name}`;
  const blue = await pgClient(scratch.url);
  const [a, b, c] = [await pgClient(scratch.url), await pgClient(scratch.url), await pgClient(scratch.url)];
  const green = await pgClient(greenUrl());

  await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text NOT NULL)`);
  await blue.query(`INSERT INTO ${name} SELECT g, 'seed' FROM generate_series(1, 5) g`);
  // Green records every row write (ENABLE ALWAYS: it fires under the apply's replica role).
  await green.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text NOT NULL)`);
  await green.query(`CREATE TABLE ${name}_audit (id int NOT NULL, v text NOT NULL)`);
  await green.query(`CREATE FUNCTION ${name}_audit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO ${name}_audit VALUES (NEW.id, NEW.v); RETURN NULL; END $$`);
  await green.query(
    `CREATE TRIGGER audit AFTER INSERT OR UPDATE ON ${name} FOR EACH ROW EXECUTE FUNCTION ${name}_audit()`,
  );
  await green.query(`ALTER TABLE ${name} ENABLE ALWAYS TRIGGER audit`);

  const config = resolveConfig(
    {
      tables: [`public.${name}`],
      slot,
      publication,
      // One partition: the snapshot rows and C's events meet in the same partition.
      kafka: { topicPrefix: prefix, partitions: 1 },
      heartbeatMs: 60_000,
    },
    {
      env: {
        TEAL_BLUE_URL: scratch.url,
        TEAL_GREEN_URL: greenUrl(),
        TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
      },
    },
  );
  const producer = new Producer(config, { statusIntervalMs: 200, pausePollMs: 200 });
  const consumer = new Consumer(config, { groupId: `${prefix}-g` });
  onTestFinished(async () => {
    await consumer.stop();
    await producer.stop();
    await dropSlotAndPublication(blue, slot, publication).catch(() => undefined);
    await green.query(`DROP TABLE IF EXISTS ${name}, ${name}_audit; DROP FUNCTION IF EXISTS ${name}_audit()`);
    await green.query('DELETE FROM teal.applied_position WHERE topic = $1', [topic]);
    await green.query('DELETE FROM teal.snapshot_progress WHERE "table" = $1', [name]);
    await green.query('DELETE FROM teal.control WHERE key = $1', [`slot:${slot}`]);
    const admin = kafka.admin();
    await admin.deleteTopics(await admin.listTopics(`${prefix}.`)).catch(() => undefined);
    await admin.close();
  });

  const slotWaitsFor = (xid: string, what: string) =>
    waitFor(
      async () =>
        (
          await blue.query(
            `SELECT 1 FROM pg_locks l JOIN pg_stat_activity s USING (pid)
              WHERE l.locktype = 'transactionid' AND l.transactionid::text = $1 AND NOT l.granted
                AND s.backend_type = 'walsender'`,
            [xid],
          )
        ).rowCount === 1,
      { what, timeoutMs: 60_000, intervalMs: 20 },
    );

  await a.query('BEGIN');
  await a.query(`INSERT INTO ${name} VALUES (6, 'a')`);
  const xidA = await xidOf(a);
  const started = producer.start();
  started.catch(() => undefined);
  await slotWaitsFor(xidA, 'slot creation waiting for A (START -> BUILDING_SNAPSHOT)');
  await b.query('BEGIN');
  await b.query(`INSERT INTO ${name} VALUES (7, 'b')`);
  const xidB = await xidOf(b);
  await a.query('COMMIT');
  await slotWaitsFor(xidB, 'slot creation waiting for B (BUILDING_SNAPSHOT -> FULL_SNAPSHOT)');
  await c.query('BEGIN');
  await c.query(`INSERT INTO ${name} VALUES (8, 'c')`);
  await c.query(`UPDATE ${name} SET v = 'c' WHERE id = 1`);
  await b.query('COMMIT');
  const cp = await waitFor(
    async () => {
      const { rows } = await blue.query<{ cp: string | null }>(
        'SELECT confirmed_flush_lsn::text AS cp FROM pg_replication_slots WHERE slot_name = $1',
        [slot],
      );
      return rows[0]?.cp ?? undefined;
    },
    { what: 'slot consistent (FULL_SNAPSHOT -> CONSISTENT at R3)', timeoutMs: 60_000, intervalMs: 20 },
  );
  const { rows: insertRows } = await blue.query<{ l: string }>(
    'SELECT pg_current_wal_insert_lsn()::text AS l',
  );
  expect(insertRows[0].l, 'WAL was written after the consistent point: C cannot commit at it').toBe(cp);
  await c.query('COMMIT');
  await started;
  await consumer.start();

  // C's events are positioned at the consistent point: the edge really happened.
  await waitFor(() => producer.status().snapshot.every((s) => s.state === 'done'), {
    what: 'initial snapshot done',
    timeoutMs: 60_000,
  });
  const events = await waitFor(
    async () => {
      const all = await readAllEvents(kafka, prefix, topic);
      return all.filter((e) => e.op === 'c' || e.op === 'u').length >= 2 ? all : undefined;
    },
    { what: "C's events in Kafka", timeoutMs: 60_000 },
  );
  const snapshotIds = events.filter((e) => e.op === 'r').map((e) => e.key.id);
  expect(snapshotIds.sort()).toEqual(['1', '2', '3', '4', '5', '6', '7']);
  const streamed = events.filter((e) => e.op !== 'r');
  expect(streamed.map((e) => [e.op, e.key.id, formatLsn(e.position.lsn)])).toEqual([
    ['c', '8', cp],
    ['u', '1', cp],
  ]);

  // Green has C's rows, each written exactly once, after the snapshot rows: wait until the
  // consumer covered every record of the topic (applied or skipped), then compare.
  const lastOffset = String(events.length - 1);
  await waitFor(
    async () =>
      (
        await green.query(
          'SELECT 1 FROM teal.applied_position WHERE topic = $1 AND kafka_offset::text = $2',
          [topic, lastOffset],
        )
      ).rowCount === 1,
    { what: 'every record of the topic covered in green', timeoutMs: 60_000 },
  );
  const { rows: greenRows } = await green.query(`SELECT id::text, v FROM ${name} ORDER BY id`);
  const { rows: blueRows } = await blue.query(`SELECT id::text, v FROM ${name} ORDER BY id`);
  expect(greenRows).toEqual(blueRows);
  const { rows: writes } = await green.query(
    `SELECT id::text, v, count(*)::text AS n FROM ${name}_audit WHERE v = 'c' GROUP BY 1, 2 ORDER BY 1`,
  );
  expect(writes).toEqual([
    { id: '1', v: 'c', n: '1' },
    { id: '8', v: 'c', n: '1' },
  ]);
});
