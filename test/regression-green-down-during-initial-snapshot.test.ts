import { parseLsn } from '@teal/change-event';
import { resolveConfig } from '@teal/config';
import { KafkaClient } from '@teal/kafka';
import { Producer } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { startScratchPostgres } from '../soak/scratch-postgres.ts';
import { blueUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';
import { dropSlotAndPublication, readAllEvents } from './support/producer-fixture.ts';

// Regression: the producer wrote its snapshot progress to green inside the snapshot; green
// stopping a few seconds after start failed the initial snapshot, and the chunk resume that
// followed needed green too, so nothing resumed when it came back and the progress never
// reached green. Kafka is the buffer while green is away: blue -> Kafka must go on, and the
// state must reach green once it answers. Green here is a scratch cluster of this test's
// own (stopping the shared green would break everyone else's tests).

describe('green down during the initial snapshot', () => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-green-down-test' });
  afterAll(() => kafka.close());

  test('blue -> Kafka goes on while green is stopped mid-snapshot, and the state reaches green when it is back', async () => {
    const name = uniqueName('green_down');
    const prefix = `${name}_t`;
    const slot = `${name}_slot`;
    const topic = `${prefix}.public.${name}`;
    const rows = 2_000;
    const scratch = await startScratchPostgres();
    let greenDown = false;
    onTestFinished(() => scratch.destroy());
    const blue = await pgClient(blueUrl());
    const writer = await pgClient(blueUrl());
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    await blue.query(`INSERT INTO ${name} SELECT g, 'v' || g FROM generate_series(1, ${rows}) g`);
    const config = resolveConfig(
      {
        tables: [`public.${name}`],
        slot,
        publication: `${name}_pub`,
        kafka: { topicPrefix: prefix, partitions: 2 },
        heartbeatMs: 300,
        snapshot: { chunkRows: 50 },
      },
      {
        env: {
          TEAL_BLUE_URL: blueUrl(),
          TEAL_GREEN_URL: scratch.url,
          TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
        },
      },
    );
    let chunksRead = 0;
    const producer = new Producer(config, {
      statusIntervalMs: 100,
      pausePollMs: 100,
      greenRetryDelayMs: { initial: 50, max: 500 },
      // Green goes away right after the first chunk: the snapshot has 39 chunks to go.
      afterChunkRead: async (table) => {
        if (table !== `public.${name}` || chunksRead++ !== 0) return;
        scratch.stop();
        greenDown = true;
      },
    });
    onTestFinished(async () => {
      await producer.stop();
      await dropSlotAndPublication(blue, slot, `${name}_pub`);
      await blue.query(`DROP TABLE IF EXISTS ${name}`);
    });
    await producer.start();
    await waitFor(() => greenDown, { what: 'green stopped after the first chunk', timeoutMs: 60_000 });

    // Green stays down from here until the end of the Kafka checks; blue keeps taking writes.
    const written = 300;
    for (let i = 1; i <= written; i++) await writer.query(`INSERT INTO ${name} VALUES ($1, 'w')`, [rows + i]);
    await writer.query(`UPDATE ${name} SET v = 'updated' WHERE id = 1`);
    const { rows: lsnRows } = await writer.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l');
    const afterWrites = parseLsn(lsnRows[0].l);

    // The snapshot finishes and the slot streams and is confirmed past every write: blue
    // retains no WAL for teal beyond what Kafka does not hold yet.
    await waitFor(() => producer.status().snapshot.every((s) => s.state === 'done'), {
      what: 'initial snapshot done while green is down',
      timeoutMs: 60_000,
    });
    await waitFor(
      async () => {
        const r = await blue.query<{ active: string; confirmed: string | null }>(
          'SELECT active::text AS active, confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1',
          [slot],
        );
        const row = r.rows[0];
        return row?.active === 'true' && row.confirmed !== null && parseLsn(row.confirmed) >= afterWrites;
      },
      { what: 'slot active and confirmed past the writes while green is down', timeoutMs: 60_000 },
    );
    const during = producer.status();
    expect(during.state).toBe('streaming');
    expect(during.green?.reachable).toBe(false);
    expect(during.green?.pendingWrites).toBeGreaterThan(0);

    const events = await readAllEvents(kafka, prefix, topic);
    const snapshotIds = new Set(events.filter((e) => e.op === 'r').map((e) => e.key.id));
    const insertedIds = new Set(events.filter((e) => e.op === 'c').map((e) => e.key.id));
    expect(snapshotIds.size).toBe(rows);
    expect([...insertedIds].sort()).toEqual(
      Array.from({ length: written }, (_, i) => String(rows + i + 1)).sort(),
    );
    expect(events.some((e) => e.op === 'u' && e.key.id === '1' && e.after?.v === 'updated')).toBe(true);
    expect(greenDown).toBe(true);

    // Green comes back: the progress and the status the producer kept reach it.
    scratch.start();
    greenDown = false;
    const green = await pgClient(scratch.url);
    await waitFor(
      async () => {
        const r = await green.query<{ state: string; rows_done: string }>(
          'SELECT state, rows_done::text AS rows_done FROM teal.snapshot_progress WHERE schema = $1 AND "table" = $2',
          ['public', name],
        );
        return r.rows[0]?.state === 'done' && r.rows[0].rows_done === String(rows);
      },
      { what: 'snapshot progress written to green', timeoutMs: 60_000 },
    );
    await waitFor(
      async () => {
        const r = await green.query<{ state: string | null; reachable: string | null }>(
          `SELECT value->>'state' AS state, value->'green'->>'reachable' AS reachable FROM teal.control WHERE key = $1`,
          [`producer:${prefix}`],
        );
        return r.rows[0]?.state === 'streaming' && r.rows[0].reachable === 'true';
      },
      { what: 'status row written to green', timeoutMs: 60_000 },
    );
    const slotRow = await green.query('SELECT 1 FROM teal.control WHERE key = $1', [`slot:${slot}`]);
    expect(slotRow.rows.length).toBe(1);
    await waitFor(() => producer.status().green?.reachable === true, { what: 'producer sees green again' });
  });
});
