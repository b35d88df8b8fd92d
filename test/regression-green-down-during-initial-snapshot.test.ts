import { parseLsn } from '@teal/change-event';
import { resolveConfig } from '@teal/config';
import { Consumer } from '@teal/consumer';
import { drain } from '@teal/control';
import { KafkaClient } from '@teal/kafka';
import { Producer } from '@teal/producer';
import { abortableDelay, waitFor } from '@teal/runtime';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { startScratchPostgres } from '../soak/scratch-postgres.ts';
import { compareTable } from '../soak/tables.ts';
import { kafkaBrokers, pgClient, uniqueName } from './support/env.ts';
import { dropSlotAndPublication, readAllEvents } from './support/producer-fixture.ts';

// Regression (issue 13 item 1): the producer wrote its snapshot progress to green inside the
// snapshot; green stopping a few seconds after start failed the initial snapshot, and the
// chunk resume that followed needed green too, so nothing resumed when it came back, the slot
// had no walsender and blue's retained WAL grew for as long as green was away. Kafka is the
// buffer while green is away: blue -> Kafka must go on, blue must not keep WAL for green, and
// once green is back and drained it must equal blue.
//
// Blue and green are scratch clusters of the test's own: green is stopped (stopping the shared
// one would break everyone's tests), and blue is quiet, so its WAL is this test's writes only
// and the retained-WAL bound means something.

const DOWN_MS = 60_000;
const WRITES_PER_SECOND = 40;
const ROWS_PER_WRITE = 10;
// Postgres moves a slot's restart_lsn only at xl_running_xacts records, and a step behind:
// with the bgwriter's one every 15 s, ~30 s of the load stays retained however fast teal
// confirms. The test checkpoints every 5 s (a checkpoint logs one too), so what stays is ~10 s
// of load (~7 MB) when teal keeps up, and all of it (~40 MB) when teal is stuck on green.
const CHECKPOINT_EVERY_MS = 5_000;
const RETAINED_BOUND = 16 * 1024 * 1024;
const UNCONFIRMED_BOUND = 4 * 1024 * 1024;

describe('green down during the initial snapshot', () => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-green-down-test' });
  afterAll(() => kafka.close());

  test('green stopped mid-snapshot for a minute under writes: blue keeps little WAL, and after green returns and a drain green equals blue', {
    timeout: 300_000,
  }, async () => {
    const name = uniqueName('green_down');
    const prefix = `${name}_t`;
    const slot = `${name}_slot`;
    const publication = `${name}_pub`;
    const topic = `${prefix}.public.${name}`;
    const rows = 2_000;
    const [blueCluster, greenCluster] = await Promise.all([
      startScratchPostgres({ autovacuum: 'off' }),
      startScratchPostgres(),
    ]);
    onTestFinished(() => greenCluster.destroy());
    onTestFinished(() => blueCluster.destroy());
    let greenDown = false;
    const blue = await pgClient(blueCluster.url);
    const writer = await pgClient(blueCluster.url);
    const shape = `CREATE TABLE ${name} (id int PRIMARY KEY, v text NOT NULL, pad text NOT NULL)`;
    await blue.query(shape);
    // 1.6 kB of random hex per row: not compressed, so the load's WAL is what it says.
    const pad = `(SELECT string_agg(md5(random()::text || g::text || x::text), '') FROM generate_series(1, 50) x)`;
    await blue.query(`INSERT INTO ${name} SELECT g, 'seed', ${pad} FROM generate_series(1, ${rows}) g`);
    {
      const green = await pgClient(greenCluster.url);
      await green.query(shape);
      await green.end();
    }
    const config = resolveConfig(
      {
        tables: [`public.${name}`],
        slot,
        publication,
        kafka: { topicPrefix: prefix, partitions: 2 },
        heartbeatMs: 300,
        snapshot: { chunkRows: 50 },
      },
      {
        env: {
          TEAL_BLUE_URL: blueCluster.url,
          TEAL_GREEN_URL: greenCluster.url,
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
        greenCluster.stop();
        greenDown = true;
      },
    });
    // The consumer runs throughout, as in a deployment: it must wait out green too.
    const consumer = new Consumer(config, { groupId: `${prefix}-g` });
    onTestFinished(async () => {
      await consumer.stop();
      await producer.stop();
      await dropSlotAndPublication(blue, slot, publication);
      const admin = kafka.admin();
      await admin.deleteTopics(await admin.listTopics(`${prefix}.`)).catch(() => undefined);
      await admin.close();
    });
    await consumer.start();
    await producer.start();
    await waitFor(() => greenDown, { what: 'green stopped after the first chunk', timeoutMs: 60_000 });
    const downSince = Date.now();

    // A minute of writes with green stopped; blue's WAL behind the slot sampled throughout.
    const lsnNow = async () =>
      parseLsn((await writer.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l);
    const startLsn = await lsnNow();
    let maxRetained = 0n;
    let maxUnconfirmed = 0n;
    let writes = 0;
    const sample = async () => {
      const r = await blue.query<{ retained: string | null; unconfirmed: string | null }>(
        `SELECT (pg_current_wal_lsn() - restart_lsn)::text AS retained,
                (pg_current_wal_lsn() - confirmed_flush_lsn)::text AS unconfirmed
           FROM pg_replication_slots WHERE slot_name = $1`,
        [slot],
      );
      const row = r.rows[0];
      if (row?.retained)
        maxRetained = BigInt(row.retained) > maxRetained ? BigInt(row.retained) : maxRetained;
      if (row?.unconfirmed)
        maxUnconfirmed = BigInt(row.unconfirmed) > maxUnconfirmed ? BigInt(row.unconfirmed) : maxUnconfirmed;
    };
    let lastSample = 0;
    let lastCheckpoint = Date.now();
    while (Date.now() - downSince < DOWN_MS) {
      const started = Date.now();
      const first = rows + writes * ROWS_PER_WRITE + 1;
      await writer.query('BEGIN');
      await writer.query(
        `INSERT INTO ${name} SELECT g, 'w', ${pad} FROM generate_series($1::int, $2::int) g`,
        [first, first + ROWS_PER_WRITE - 1],
      );
      await writer.query(`UPDATE ${name} SET v = 'u' || $1::text WHERE id = $2`, [
        writes,
        (writes % rows) + 1,
      ]);
      await writer.query('COMMIT');
      writes++;
      // Sampling 2x a second is a schedule of the load, not a synchronization.
      if (Date.now() - lastSample >= 500) {
        await sample();
        lastSample = Date.now();
      }
      if (Date.now() - lastCheckpoint >= CHECKPOINT_EVERY_MS) {
        await blue.query('CHECKPOINT');
        lastCheckpoint = Date.now();
      }
      await abortableDelay(Math.max(0, 1000 / WRITES_PER_SECOND - (Date.now() - started)));
    }
    const afterWrites = await lsnNow();
    const written = afterWrites - startLsn;

    // Still down: the snapshot finished and the slot is confirmed past every write, so blue
    // keeps no WAL for teal beyond what Kafka does not hold yet; /status warns.
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
    const figures = `green down ${Date.now() - downSince} ms, ${writes} writes, ${written} bytes of WAL written, max retained ${maxRetained}, max unconfirmed ${maxUnconfirmed}`;
    expect(written, figures).toBeGreaterThan((3n * BigInt(RETAINED_BOUND)) / 2n);
    expect(maxRetained, figures).toBeLessThan(BigInt(RETAINED_BOUND));
    expect(maxUnconfirmed, figures).toBeLessThan(BigInt(UNCONFIRMED_BOUND));
    const during = producer.status();
    expect(during.state).toBe('streaming');
    expect(during.green?.reachable).toBe(false);
    expect(greenDown).toBe(true);
    const events = await readAllEvents(kafka, prefix, topic);
    expect(new Set(events.filter((e) => e.op === 'r').map((e) => e.key.id)).size).toBe(rows);
    expect(events.filter((e) => e.op === 'c').length).toBe(writes * ROWS_PER_WRITE);

    // Green comes back: the consumer catches up, a drain proves it, and green equals blue.
    greenCluster.start();
    greenDown = false;
    const green = await pgClient(greenCluster.url);
    const admin = kafka.admin();
    onTestFinished(() => admin.close());
    const result = await drain(
      { blue, green, admin, slot, topicPrefix: prefix, pollMs: 250, tables: [`public.${name}`] },
      { timeoutMs: 120_000, fence: false },
    );
    expect(result.drained).toBe(true);
    const comparison = await compareTable(blue, green, name, ['id']);
    expect(comparison.blue.rows).toBe(rows + writes * ROWS_PER_WRITE);
    expect(comparison, JSON.stringify(comparison)).toMatchObject({
      onlyInBlue: 0,
      onlyInGreen: 0,
      different: 0,
    });
    expect(comparison.green.md5).toBe(comparison.blue.md5);
    await waitFor(() => producer.status().green?.reachable === true, { what: 'producer sees green again' });
    const slotRow = await green.query('SELECT 1 FROM teal.control WHERE key = $1', [`slot:${slot}`]);
    expect(slotRow.rows.length).toBe(1);
    console.log(figures);
  });
});
