import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { portOf, terminateSessions } from '../soak/faults.ts';
import { connect } from './support/check-databases.ts';
import { blueUrl, freePort, greenUrl, kafkaBrokers, uniqueName, withDatabase } from './support/env.ts';
import { spawnTeal, type TealChild } from './support/teal-child.ts';

// `teal run` runs the producer in a worker thread and the consumer and the API on the main
// thread: one process, two cores. Seen from outside nothing changes: rows flow, /status
// shows the producer, /metrics counts what it produced, SIGTERM stops it with blue's slot
// released, and a producer that fails inside its thread fails the process, loudly.

interface Setup {
  name: string;
  blue: pg.Client;
  green: pg.Client;
  blueUrl: string;
  greenUrl: string;
  dir: string;
}

/**
 * A blue and a green database of their own named `name`, with `ddl` run in both. Cleaned
 * up when the test finishes, after the child: slot, publication (with the database), topics.
 */
async function setup(prefix: string, ddl: string, children: Child[]): Promise<Setup> {
  const name = uniqueName(prefix);
  const dir = mkdtempSync(join(tmpdir(), `teal-${name}-`));
  const blueAdmin = await connect(blueUrl());
  const greenAdmin = await connect(greenUrl());
  await blueAdmin.query(`CREATE DATABASE ${name}`);
  await greenAdmin.query(`CREATE DATABASE ${name}`);
  const s: Setup = {
    name,
    dir,
    blueUrl: withDatabase(blueUrl(), name),
    greenUrl: withDatabase(greenUrl(), name),
    blue: await connect(withDatabase(blueUrl(), name)),
    green: await connect(withDatabase(greenUrl(), name)),
  };
  onTestFinished(async () => {
    for (const child of children) await child.stop();
    await s.blue.end().catch(() => {});
    await s.green.end().catch(() => {});
    await blueAdmin.query(
      'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active',
      [name],
    );
    await blueAdmin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await greenAdmin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await blueAdmin.end();
    await greenAdmin.end();
    const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: name });
    const admin = kafka.admin();
    await admin.deleteTopics(await admin.listTopics(`${name}.`)).catch(() => {});
    await admin.close();
    await kafka.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await s.blue.query(ddl);
  await s.green.query(ddl);
  return s;
}

type Child = TealChild;

function tealRun(s: Setup, env: Record<string, string>): Child {
  return spawnTeal(['run'], {
    cwd: s.dir,
    env: {
      TEAL_LOG_LEVEL: 'info',
      TEAL_BLUE_URL: s.blueUrl,
      TEAL_GREEN_URL: s.greenUrl,
      TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
      TEAL_SLOT: s.name,
      TEAL_PUBLICATION: s.name,
      TEAL_TOPIC_PREFIX: s.name,
      ...env,
    },
  });
}

/** Resolves with the exit code, or fails the test after `ms`. */
function exitWithin(child: Child, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    child.exited.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no exit within ${ms} ms:\n${child.output()}`)), ms);
    }),
  ]);
}

async function apiUp(child: Child, url: string): Promise<void> {
  await waitFor(
    async () => {
      if (child.proc.exitCode !== null) throw new Error(`teal run exited early:\n${child.output()}`);
      return (await fetch(`${url}/healthz`).catch(() => undefined))?.ok || undefined;
    },
    { what: 'control API up', timeoutMs: 60_000 },
  );
}

const slotActive = async (blue: pg.Client, slot: string) =>
  (await blue.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [slot]))
    .rowCount === 1;

describe('teal run: the producer in a worker thread', () => {
  test.each([
    { threads: '2', what: 'the worker producer' },
    { threads: '1', what: 'the producer (TEAL_RUN_THREADS=1: one thread, as before)' },
  ])(
    'rows flow, /status and /metrics show $what, SIGTERM exits 0 and releases the slot',
    async ({ threads }) => {
      const children: Child[] = [];
      const s = await setup(
        'run_threads',
        'CREATE TABLE items (id int PRIMARY KEY, v text, v_upper text)',
        children,
      );
      // A derive function cannot be cloned to the worker: it loads this file again itself.
      writeFileSync(
        join(s.dir, 'teal.config.ts'),
        `export default {
  tables: ['public.items'],
  kafka: { partitions: 2 },
  heartbeatMs: 500,
  transforms: { 'public.items': { derive: { v_upper: (row: Record<string, unknown>) => row.v === null ? null : String(row.v).toUpperCase() } } },
};
`,
      );
      await s.blue.query("INSERT INTO items (id, v) SELECT g, 'snap' || g FROM generate_series(1, 50) g");
      const port = await freePort();
      // The produced-events count below includes the snapshot's records: the Kafka snapshot path.
      const child = tealRun(s, {
        TEAL_API_PORT: String(port),
        TEAL_RUN_THREADS: threads,
        TEAL_SNAPSHOT_VIA: 'kafka',
      });
      children.push(child);
      const url = `http://127.0.0.1:${port}`;
      await apiUp(child, url);

      await s.blue.query("INSERT INTO items (id, v) VALUES (101, 'one'), (102, 'two')");
      await waitFor(
        async () => {
          const { rows } = await s.green.query(
            'SELECT count(*)::int AS n, count(*) FILTER (WHERE v_upper = upper(v))::int AS derived FROM items',
          );
          return rows[0].n === 52 && rows[0].derived === 52;
        },
        { what: 'snapshot and streamed rows in green, derived', timeoutMs: 60_000 },
      );

      const status = await waitFor(
        async () => {
          const body = (await (await fetch(`${url}/status`)).json()) as {
            producer: {
              source: string;
              state: string;
              confirmedLsn: string | null;
              snapshot: unknown[];
            } | null;
          };
          return body.producer?.state === 'streaming' && body.producer.confirmedLsn !== null
            ? body
            : undefined;
        },
        { what: 'producer streaming in /status', timeoutMs: 30_000 },
      );
      expect(status.producer).toMatchObject({
        source: 'in-process',
        state: 'streaming',
        snapshot: [{ table: 'public.items', state: 'done', rowsDone: 50 }],
      });

      const metrics = await (await fetch(`${url}/metrics`)).text();
      const produced = [...metrics.matchAll(/^teal_events_produced_total\{[^}]*\} (\d+)$/gm)].map((m) =>
        Number(m[1]),
      );
      expect(produced.reduce((a, b) => a + b, 0)).toBe(52);
      expect(metrics).toMatch(/^teal_events_applied_total\{/m);
      expect(metrics).toMatch(/^teal_slot_retained_wal_bytes \d+/m);
      // The process metrics come from the main thread only, once.
      expect(metrics.match(/^teal_process_cpu_user_seconds_total /gm)).toHaveLength(1);
      expect(metrics.match(/^# TYPE teal_events_produced_total /gm)).toHaveLength(1);

      expect(await slotActive(s.blue, s.name)).toBe(true);
      child.proc.kill('SIGTERM');
      expect(await exitWithin(child, 30_000)).toBe(0);
      expect(await slotActive(s.blue, s.name)).toBe(false);
      const out = child.output();
      if (threads === '2') {
        expect(out).toMatch(/"msg":"producer thread started"/);
        expect(out).toMatch(/"config":"reload"/);
      } else expect(out).not.toMatch(/producer thread started/);
      // The worker's own log lines reach stdout in the same JSON form.
      expect(out).toMatch(/\{"level":30,[^\n]*"component":"producer"[^\n]*"msg":"producer starting"\}/);
    },
  );

  test('a producer that cannot start in its thread: teal run exits 1 with the error', async () => {
    const children: Child[] = [];
    const s = await setup('run_threads_nodb', 'CREATE TABLE items (id int PRIMARY KEY)', children);
    const missing = `${s.name}_missing`;
    const child = tealRun(s, { TEAL_BLUE_URL: withDatabase(blueUrl(), missing), TEAL_API_PORT: '0' });
    children.push(child);
    expect(await exitWithin(child, 60_000)).toBe(1);
    const out = child.output();
    expect(out).toMatch(/"config":"resolved"/);
    expect(out).toContain(`teal run: database "${missing}" does not exist`);
    expect(out).not.toMatch(/control API listening/);
  });

  test('a producer that fails for good while running (slot dropped): teal run exits 1, TEAL_SLOT_MISSING', async () => {
    const children: Child[] = [];
    const s = await setup('run_threads_slot', 'CREATE TABLE items (id int PRIMARY KEY)', children);
    const child = tealRun(s, { TEAL_API_PORT: '0' });
    children.push(child);
    await waitFor(
      async () => {
        if (child.proc.exitCode !== null) throw new Error(`teal run exited early:\n${child.output()}`);
        return slotActive(s.blue, s.name);
      },
      { what: 'producer streaming', timeoutMs: 60_000 },
    );
    // Frozen, the producer cannot take the slot back between the walsender's end and the drop.
    process.kill(child.proc.pid!, 'SIGSTOP');
    try {
      const admin = await connect(blueUrl());
      try {
        await terminateSessions(admin, portOf(blueUrl()), [], s.name);
        await waitFor(async () => !(await slotActive(admin, s.name)), { what: 'walsender gone' });
        await admin.query('SELECT pg_drop_replication_slot($1)', [s.name]);
      } finally {
        await admin.end();
      }
    } finally {
      process.kill(child.proc.pid!, 'SIGCONT');
    }
    expect(await exitWithin(child, 60_000)).toBe(1);
    const out = child.output();
    expect(out).toMatch(/teal run: .*replication slot/);
    expect(out).toContain('TEAL_SLOT_MISSING');
    // The worker's last log line (its failure) is not lost when the process exits.
    expect(out).toMatch(/"component":"producer"[^\n]*"msg":"producer failed"/);
  });
});
