import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { portOf, terminateSessions } from '../soak/faults.ts';
import { TealChild } from '../soak/processes.ts';
import { type ScratchPostgres, startScratchPostgres } from '../soak/scratch-postgres.ts';
import { ROOT } from '../soak/soak.ts';
import { compareTable } from '../soak/tables.ts';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// Brief item 7 / issue 7 part 2: what happens to the slot behind teal's back. teal runs as
// real child processes (the producer exits 1 on a fatal slot error, as a supervisor sees it).
// The invalidation runs on a scratch cluster: max_slot_wal_keep_size on the shared blue
// would invalidate every other lagging slot there too.

interface Setup {
  name: string;
  child: (role: 'producer' | 'consumer', restart?: number) => TealChild;
  log: (role: 'producer' | 'consumer') => string;
}

function setup(name: string, blue: string, tables: string[]): Setup {
  const dir = mkdtempSync(path.join(tmpdir(), `teal-${name}-`));
  const configPath = path.join(dir, 'teal.config.ts');
  writeFileSync(
    configPath,
    `export default ${JSON.stringify({
      tables,
      slot: name,
      publication: name,
      kafka: { topicPrefix: name, partitions: 2 },
      heartbeatMs: 300,
    })};\n`,
  );
  const env = {
    ...process.env,
    TEAL_BLUE_URL: blue,
    TEAL_GREEN_URL: greenUrl(),
    TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
    TEAL_LOG_LEVEL: 'info',
  };
  const children: TealChild[] = [];
  onTestFinished(async () => {
    await Promise.all(children.map((c) => c.stop()));
    const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: name });
    const admin = kafka.admin();
    await admin.deleteTopics(await admin.listTopics(`${name}.`)).catch(() => {});
    await admin.close();
    await kafka.close();
    const green = new pg.Client({ connectionString: greenUrl() });
    await green.connect();
    await green.query('DELETE FROM teal.control WHERE key = $1', [`slot:${name}`]);
    await green.query('DELETE FROM teal.snapshot_progress WHERE starts_with("table", $1)', [name]);
    await green.query('DELETE FROM teal.applied_position WHERE starts_with(topic, $1)', [`${name}.`]);
    await green.end();
  });
  return {
    name,
    child: (role, restart) => {
      const c = new TealChild(
        role,
        [`services/${role}/src/main.ts`, '--config', configPath],
        env,
        path.join(dir, `${role}.log`),
        ROOT,
        restart,
      );
      children.push(c);
      return c;
    },
    log: (role) => readFileSync(path.join(dir, `${role}.log`), 'utf8'),
  };
}

const slotActive = async (db: pg.Client, slot: string) =>
  (await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [slot])).rowCount ===
  1;

describe('slot faults', () => {
  test('a slot dropped behind a running producer: TEAL_SLOT_MISSING naming the slot, exit 1, never recreated', async () => {
    const name = uniqueName('slot_dropped');
    const blue = await pgClient(blueUrl());
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    onTestFinished(async () => {
      await blue.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [
        name,
      ]);
      await blue.query(`DROP PUBLICATION IF EXISTS ${name}; DROP TABLE IF EXISTS ${name}`);
    });
    const s = setup(name, blueUrl(), [`public.${name}`]);
    const producer = s.child('producer', undefined);
    producer.start();
    await waitFor(() => slotActive(blue, name), { what: 'producer streaming', timeoutMs: 60_000 });
    await blue.query(`INSERT INTO ${name} VALUES (1, 'a')`);

    // Frozen, the producer cannot take the slot back between the walsender's end and the drop.
    process.kill(producer.pid!, 'SIGSTOP');
    try {
      await terminateSessions(blue, portOf(blueUrl()), [], name);
      await waitFor(async () => !(await slotActive(blue, name)), { what: 'walsender gone' });
      await blue.query('SELECT pg_drop_replication_slot($1)', [name]);
    } finally {
      process.kill(producer.pid!, 'SIGCONT');
    }
    const exit = await producer.exited();
    expect(exit?.code).toBe(1);
    const log = s.log('producer');
    expect(log).toContain('TEAL_SLOT_MISSING');
    expect(log).toContain(`\\"${name}\\"`);
    const slots = await blue.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [name]);
    expect(slots.rowCount, 'the producer must not create a new slot').toBe(0);

    // A restart refuses too (green remembers the slot), with the way to start over on purpose.
    const again = s.child('producer', undefined);
    again.start();
    expect((await again.exited())?.code).toBe(1);
    expect(s.log('producer')).toMatch(/TEAL_SLOT_MISSING[\s\S]*pg_drop_replication_slot|start over/);
    expect(
      (await blue.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [name])).rowCount,
    ).toBe(0);
  });

  test('a slot invalidated by max_slot_wal_keep_size: TEAL_SLOT_INVALIDATED, exit 1, running and on restart', async () => {
    let scratch: ScratchPostgres | undefined;
    onTestFinished(() => scratch?.destroy());
    scratch = await startScratchPostgres({ max_slot_wal_keep_size: "'1MB'" });
    const name = uniqueName('slot_lost');
    const blue = new pg.Client({ connectionString: scratch.url });
    await blue.connect();
    onTestFinished(() => blue.end());
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    await blue.query(`INSERT INTO ${name} SELECT g, 'x' FROM generate_series(1, 10) g`);
    const s = setup(name, scratch.url, [`public.${name}`]);
    const producer = s.child('producer', undefined);
    producer.start();
    await waitFor(() => slotActive(blue, name), { what: 'producer streaming', timeoutMs: 60_000 });

    // A stalled producer (frozen) falls behind by more than max_slot_wal_keep_size.
    process.kill(producer.pid!, 'SIGSTOP');
    try {
      await waitFor(
        async () => {
          await blue.query(
            `INSERT INTO ${name} SELECT g, repeat('y', 1000) FROM generate_series(1000, 3000) g ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v || '.'`,
          );
          await blue.query('SELECT pg_switch_wal()');
          await blue.query('CHECKPOINT');
          const r = await blue.query<{ w: string }>(
            'SELECT wal_status AS w FROM pg_replication_slots WHERE slot_name = $1',
            [name],
          );
          return r.rows[0]?.w === 'lost';
        },
        { what: "wal_status = 'lost'", timeoutMs: 60_000, intervalMs: 10 },
      );
    } finally {
      process.kill(producer.pid!, 'SIGCONT');
    }
    const exit = await producer.exited();
    expect(exit?.code).toBe(1);
    expect(s.log('producer')).toContain('TEAL_SLOT_INVALIDATED');
    expect(s.log('producer')).toContain(name);

    const again = s.child('producer', undefined);
    again.start();
    expect((await again.exited())?.code).toBe(1);
    const lines = s
      .log('producer')
      .split('\n')
      .filter((l) => l.includes('TEAL_SLOT_INVALIDATED'));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    // teal never drops or recreates the slot: it is still there, lost, for the operator to see.
    const slot = await blue.query<{ w: string }>(
      'SELECT wal_status AS w FROM pg_replication_slots WHERE slot_name = $1',
      [name],
    );
    expect(slot.rows).toEqual([{ w: 'lost' }]);
  });

  test('green unreachable for a while (its sessions ended again and again): teal retries and catches up', async () => {
    const name = uniqueName('green_down');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    for (const db of [blue, green])
      await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, n int NOT NULL, v text)`);
    onTestFinished(async () => {
      await blue.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [
        name,
      ]);
      await blue.query(`DROP PUBLICATION IF EXISTS ${name}; DROP TABLE IF EXISTS ${name}`);
      await green.query(`DROP TABLE IF EXISTS ${name}`);
    });
    const s = setup(name, blueUrl(), [`public.${name}`]);
    const producer = s.child('producer', undefined);
    const consumer = s.child('consumer', undefined);
    producer.start();
    consumer.start();
    await blue.query(`INSERT INTO ${name} VALUES (0, 0, 'start')`);
    await waitFor(async () => (await green.query(`SELECT 1 FROM ${name} WHERE id = 0`)).rowCount === 1, {
      what: 'pipeline running',
      timeoutMs: 90_000,
    });

    // For 8 s every green session of teal's consumer and producer is ended as soon as it
    // appears, while blue keeps changing.
    const greenAdmin = await pgClient(greenUrl());
    const until = Date.now() + 8000;
    let ended = 0;
    let i = 1;
    while (Date.now() < until) {
      await blue.query(
        `INSERT INTO ${name} VALUES ($1, 0, 'v') ON CONFLICT (id) DO UPDATE SET n = ${name}.n + 1`,
        [i % 50],
      );
      ended += await terminateSessions(greenAdmin, portOf(greenUrl()), [consumer, producer]);
      i++;
    }
    expect(ended).toBeGreaterThan(0);
    await blue.query(`INSERT INTO ${name} VALUES (1000, 0, 'after')`);
    await waitFor(async () => (await green.query(`SELECT 1 FROM ${name} WHERE id = 1000`)).rowCount === 1, {
      what: 'green caught up',
      timeoutMs: 120_000,
    });
    const cmp = await waitFor(
      async () => {
        const c = await compareTable(blue, green, name, ['id']);
        return c.blue.md5 === c.green.md5 ? c : undefined;
      },
      { what: 'green equal to blue', timeoutMs: 60_000 },
    );
    expect(cmp.green.rows).toBe(cmp.blue.rows);
    expect(producer.running && consumer.running, 'neither process gave up').toBe(true);
  });
});
