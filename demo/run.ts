import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { table } from '@teal/cli';
import { loadConfig, type ResolvedConfig } from '@teal/config';
import { Consumer } from '@teal/consumer';
import { type SequenceCopy, startApi, TealControl } from '@teal/control';
import { Producer } from '@teal/producer';
import { createMetrics, waitFor } from '@teal/runtime';
import pg from 'pg';
import { deleteTopics, dropSlot, type RollbackLeg, resetReverseState, runRollbackLeg } from './rollback.ts';

// `npm run demo`: the article's migration end to end on the local environment. blue gets
// users and orders with realistic volume; green has the new shape (email_domain derived,
// name renamed to full_name); teal snapshots and streams while a write workload runs, then
// cuts over: fence blue, drain to an LSN, copy sequences, verify, report.

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

export interface DemoOptions {
  users?: number;
  orders?: number;
  workloadMs?: number;
  /** Print progress and the summary (the CLI); tests keep it quiet. */
  print?: boolean;
  /** Bring the local environment up first (the CLI); tests already have it. */
  envUp?: boolean;
  apiPort?: number;
  /** Databases to use instead of the local defaults (the e2e test uses its own). */
  blueUrl?: string;
  greenUrl?: string;
  /** After the cutover (with rollback): writes on green, teal reverse, teal rollback (issue 17). */
  rollback?: boolean;
  /** How long the application writes on green before the rollback, ms (default 10 s). */
  greenWritesMs?: number;
  /** Rows in green per table during the snapshot, every ~250 ms (the CLI draws progress bars). */
  onSnapshotProgress?: (tables: Array<{ table: string; done: number; total: number }>) => void;
}

export interface DemoSummary {
  rows: { blue: Record<string, number>; green: Record<string, number> };
  snapshotMs: number;
  workload: { transactions: number; ms: number };
  lagMs: { samples: number; p50: number; p95: number; max: number };
  cutover: {
    safeToSwitch: boolean;
    drainLsn: string | undefined;
    drainMs: number | undefined;
    sequences: SequenceCopy[];
    verifyOk: boolean | undefined;
  };
  api: { url: string; status: string; metrics: string };
  domains: Array<{ email_domain: string; users: number }>;
  rollback?: RollbackLeg;
}

const textTypes = { getTypeParser: () => (v: string) => v };

/** `writable`: the session starts writable on a fenced blue, as teal's own do (SESSION_OPTIONS). */
function client(url: string, writable = false): pg.Client {
  const c = new pg.Client({
    connectionString: url,
    types: textTypes,
    application_name: 'teal-demo',
    ...(writable ? { options: '-c default_transaction_read_only=off' } : {}),
  });
  // A server that goes away fails the next query with a clear error; without a listener the
  // 'error' event would end the process instead.
  c.on('error', () => {});
  return c;
}

function sections(sql: string): { blue: string; green: string } {
  const [, blue = '', green = ''] = sql.split(/--\s*\{\{(?:blue|green)\}\}/);
  return { blue, green };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Drops what an earlier demo run left: slot, publication, teal's state in green, topics. */
async function resetDemoState(config: ResolvedConfig, blue: pg.Client, green: pg.Client): Promise<void> {
  await blue.query(
    `ALTER DATABASE ${pg.escapeIdentifier(new URL(config.blue.url).pathname.slice(1) || 'app')} RESET default_transaction_read_only`,
  );
  await dropSlot(blue, config.slot, 'the old demo slot to be released');
  await blue.query(`DROP PUBLICATION IF EXISTS ${pg.escapeIdentifier(config.publication)}`);
  await green.query('DROP SCHEMA IF EXISTS teal CASCADE');
  await resetReverseState(config, blue, green);
  await deleteTopics(config, `${config.kafka.topicPrefix}.`, 'old demo topics to be deleted');
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoSummary> {
  const users = options.users ?? 100_000;
  const orders = options.orders ?? 300_000;
  const workloadMs = options.workloadMs ?? 20_000;
  const say = (line: string) => {
    if (options.print) process.stdout.write(`${line}\n`);
  };

  if (options.envUp)
    execFileSync(process.execPath, [join(root, 'infra/local/env.mjs'), 'up'], { stdio: 'inherit' });
  const config = await loadConfig({
    configPath: join(here, 'teal.config.ts'),
    env: {
      ...process.env,
      ...(options.apiPort ? { TEAL_API_PORT: String(options.apiPort) } : {}),
      ...(options.blueUrl ? { TEAL_BLUE_URL: options.blueUrl } : {}),
      ...(options.greenUrl ? { TEAL_GREEN_URL: options.greenUrl } : {}),
    },
  });

  // Writable even when an interrupted run left blue fenced. The fence terminates it like any
  // application's session (only the control plane's own are kept), so `blue` is replaced
  // by a fresh session after the cutover.
  let blue = client(config.blue.url, true);
  // Writable too: a --rollback run fences green at its end.
  const green = client(config.green.url, true);
  await blue.connect();
  await green.connect();
  const probe = client(config.green.url);
  await probe.connect();

  let producer: Producer | undefined;
  let consumer: Consumer | undefined;
  let api: { url: string; close(): Promise<unknown> } | undefined;
  try {
    say('teal demo: resetting the demo tables, slot, topics and green state');
    await resetDemoState(config, blue, green);
    const schema = sections(readFileSync(join(here, 'schema.sql'), 'utf8'));
    await blue.query(schema.blue);
    await green.query(schema.green);

    say(`loading blue: ${users} users, ${orders} orders`);
    await blue.query(
      `INSERT INTO users (name, email, created_at)
       SELECT 'User ' || g, 'user' || g || '@' || (ARRAY['example.com','Mail.test','corp.example','acme.io'])[1 + g % 4],
              now() - (g || ' minutes')::interval
       FROM generate_series(1, $1::int) g`,
      [users],
    );
    await blue.query(
      `INSERT INTO orders (user_id, amount, created_at)
       SELECT 1 + (g::bigint * 7919) % $1::int, round((random() * 500)::numeric, 2), now() - (g || ' seconds')::interval
       FROM generate_series(1, $2::int) g`,
      [users, orders],
    );
    await blue.query('ANALYZE users; ANALYZE orders');

    const metrics = createMetrics();
    producer = new Producer(config, { metrics });
    consumer = new Consumer(config, { metrics });
    const control = new TealControl(config, { producer, consumer, metrics });
    const started = Date.now();
    await producer.start();
    await consumer.start();
    api = await startApi(config, control, metrics);
    const apiUrl = api.url;
    say(`teal is running: status ${apiUrl}/status, metrics ${apiUrl}/metrics`);

    // The snapshot is done when green holds every row blue had before the stream began.
    await waitFor(
      async () => {
        const { rows } = await green.query(
          'SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM orders) AS orders',
        );
        const inGreen = { users: Number(rows[0].users), orders: Number(rows[0].orders) };
        options.onSnapshotProgress?.([
          { table: 'public.users', done: inGreen.users, total: users },
          { table: 'public.orders', done: inGreen.orders, total: orders },
        ]);
        return inGreen.users + inGreen.orders >= users + orders;
      },
      { what: 'the initial snapshot to reach green', timeoutMs: 15 * 60_000, intervalMs: 250 },
    );
    const snapshotMs = Date.now() - started;
    say(`snapshot: ${users + orders} rows in green after ${(snapshotMs / 1000).toFixed(1)} s`);

    // A write workload while teal streams, and a probe that measures commit-to-visible lag.
    say(`write workload on blue for ${workloadMs / 1000} s (inserts, email changes, deletes)`);
    const writer = client(config.blue.url);
    const prober = client(config.blue.url);
    await writer.connect();
    await prober.connect();
    let transactions = 0;
    const lagSamples: number[] = [];
    const workloadStart = Date.now();
    const until = workloadStart + workloadMs;
    const workload = (async () => {
      while (Date.now() < until) {
        const n = transactions++;
        await writer.query('BEGIN');
        const { rows } = await writer.query(`INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id`, [
          `New ${n}`,
          `new${n}@${n % 2 ? 'example.com' : 'fresh.example'}`,
        ]);
        await writer.query('INSERT INTO orders (user_id, amount) VALUES ($1, $2)', [
          rows[0].id,
          (n % 997) + 0.5,
        ]);
        await writer.query(`UPDATE users SET email = 'moved' || id || '@moved.example' WHERE id = $1`, [
          1 + ((n * 31) % users),
        ]);
        await writer.query('DELETE FROM orders WHERE id = $1', [1 + ((n * 17) % orders)]);
        await writer.query('COMMIT');
      }
    })();
    const lagProbe = (async () => {
      let i = 0;
      while (Date.now() < until) {
        const marker = `probe-${Date.now()}-${i++}`;
        const t0 = Date.now();
        const { rows } = await prober.query('INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id', [
          marker,
          `${marker}@probe.example`,
        ]);
        await waitFor(
          async () => (await probe.query('SELECT 1 FROM users WHERE id = $1', [rows[0].id])).rowCount === 1,
          {
            what: 'a probe row in green',
            timeoutMs: 120_000,
            intervalMs: 10,
          },
        );
        lagSamples.push(Date.now() - t0);
      }
    })();
    await Promise.all([workload, lagProbe]);
    const workloadActualMs = Date.now() - workloadStart;
    await writer.end();
    await prober.end();
    lagSamples.sort((a, b) => a - b);
    say(
      `workload: ${transactions} transactions in ${(workloadActualMs / 1000).toFixed(1)} s; lag commit->green p50 ${percentile(lagSamples, 50)} ms, p95 ${percentile(lagSamples, 95)} ms`,
    );

    say(
      options.rollback
        ? 'cutover with rollback: fence blue, drain, copy sequences, verify, prepare the way back on green'
        : 'cutover: fence blue, drain, copy sequences, verify',
    );
    const report = await control.cutover({
      fence: true,
      verify: true,
      timeoutMs: 300_000,
      unfenceOnFailure: true,
      ...(options.rollback ? { withRollback: true } : {}),
    });
    const drainStep = report.steps.find((s: { name: string }) => s.name === 'drain');
    await blue.end().catch(() => undefined);
    blue = client(config.blue.url, true);
    await blue.connect();

    const count = async (c: pg.Client, table: string) =>
      Number((await c.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
    const summary: DemoSummary = {
      rows: {
        blue: { users: await count(blue, 'users'), orders: await count(blue, 'orders') },
        green: { users: await count(green, 'users'), orders: await count(green, 'orders') },
      },
      snapshotMs,
      workload: { transactions, ms: workloadActualMs },
      lagMs: {
        samples: lagSamples.length,
        p50: percentile(lagSamples, 50),
        p95: percentile(lagSamples, 95),
        max: lagSamples[lagSamples.length - 1] ?? 0,
      },
      cutover: {
        safeToSwitch: report.safeToSwitch,
        drainLsn: report.drainLsn ?? undefined,
        drainMs: drainStep?.ms,
        sequences: report.sequences,
        verifyOk: report.verify?.ok,
      },
      api: { url: apiUrl, status: `${apiUrl}/status`, metrics: `${apiUrl}/metrics` },
      domains: (
        await green.query(
          'SELECT email_domain, count(*)::int AS users FROM users GROUP BY 1 ORDER BY 2 DESC LIMIT 5',
        )
      ).rows.map((r) => ({ email_domain: r.email_domain, users: Number(r.users) })),
    };
    if (options.rollback && report.safeToSwitch) {
      // As an operator would: the forward teal run stops, teal reverse takes over (same API port).
      await api.close();
      await consumer.stop();
      await producer.stop();
      api = undefined;
      summary.rollback = await runRollbackLeg({
        config,
        client: () => client(config.blue.url),
        writeMs: options.greenWritesMs ?? 10_000,
        say,
      });
    }
    if (options.print) printSummary(summary);
    return summary;
  } finally {
    await api?.close().catch(() => undefined);
    await consumer?.stop().catch(() => undefined);
    await producer?.stop().catch(() => undefined);
    // Nothing streams the demo's slot once it is over: left, it would hold blue's WAL until the
    // next demo (24 GB on a machine that ran many). A real cutover drops it once green is live.
    await dropSlot(blue, config.slot, 'the demo slot to be released').catch(() => undefined);
    // The demo gives blue back: a real cutover would now point the application at green.
    await blue
      .query(
        `ALTER DATABASE ${pg.escapeIdentifier(new URL(config.blue.url).pathname.slice(1) || 'app')} RESET default_transaction_read_only`,
      )
      .catch(() => undefined);
    if (options.rollback)
      await green
        .query(
          `ALTER DATABASE ${pg.escapeIdentifier(new URL(config.green.url).pathname.slice(1) || 'app')} RESET default_transaction_read_only`,
        )
        .catch(() => undefined);
    await Promise.allSettled([blue.end(), green.end(), probe.end()]);
  }
}

function printSummary(s: DemoSummary): void {
  const line = (label: string, value: string) => process.stdout.write(`  ${label.padEnd(22)} ${value}\n`);
  process.stdout.write('\n== teal demo summary ==\n');
  line(
    'rows moved',
    `users ${s.rows.green.users} (blue ${s.rows.blue.users}), orders ${s.rows.green.orders} (blue ${s.rows.blue.orders})`,
  );
  line('snapshot', `${(s.snapshotMs / 1000).toFixed(1)} s`);
  line('workload', `${s.workload.transactions} transactions in ${(s.workload.ms / 1000).toFixed(1)} s`);
  line(
    'lag commit->green',
    `p50 ${s.lagMs.p50} ms, p95 ${s.lagMs.p95} ms, max ${s.lagMs.max} ms (${s.lagMs.samples} probes)`,
  );
  line('drain', `to LSN ${s.cutover.drainLsn ?? '-'} in ${s.cutover.drainMs ?? '-'} ms`);
  const sequences = s.cutover.sequences as SequenceCopy[];
  line('sequences copied', sequences.length === 0 ? 'none' : '');
  if (sequences.length > 0)
    process.stdout.write(
      `${table(
        ['    blue', 'green', 'value', 'ok'],
        sequences.map((q) => [
          `    ${q.blue}`,
          q.green,
          q.value,
          q.ok ? 'yes' : `NO${q.note ? `: ${q.note}` : ''}`,
        ]),
      )}\n`,
    );
  line('verify', s.cutover.verifyOk ? 'OK: green equals blue (transforms applied)' : 'MISMATCH');
  line('email_domain in green', s.domains.map((d) => `${d.email_domain}=${d.users}`).join(', '));
  line('safe to switch', s.cutover.safeToSwitch ? 'yes' : 'NO');
  line('API (while running)', `${s.api.status}, ${s.api.metrics}`);
  const r = s.rollback;
  if (r) {
    process.stdout.write('\n== the way back (cutover --with-rollback, teal reverse, teal rollback) ==\n');
    line('writes on green', `${r.writes.transactions} transactions in ${(r.writes.ms / 1000).toFixed(1)} s`);
    line(
      'rollback steps',
      r.rollback.steps.map((x) => `${x.name} ${x.ok ? 'ok' : 'FAILED'} (${x.ms} ms)`).join(', '),
    );
    line('drain', `green to LSN ${r.rollback.drainLsn ?? '-'}`);
    line(
      'sequences copied back',
      r.rollback.sequences.map((q) => `${q.green} ${q.value}${q.ok ? '' : ' NOT OK'}`).join(', ') || 'none',
    );
    line('verify', r.rollback.verifyOk ? 'OK: blue equals green (inverse mapping)' : 'MISMATCH');
    for (const d of r.digests)
      line(
        `digest ${d.table}`,
        `blue ${d.blueRows} rows, green ${d.greenRows} rows: ${d.same ? 'identical (md5 of every row, in SQL)' : 'DIFFERENT'}`,
      );
    const all = r.rollback.safeToSwitch && r.digests.every((d) => d.same);
    line('blue has every write', all ? 'yes: safe to switch back to blue' : 'NO');
    process.stdout.write(
      '  blue was unfenced by the rollback; green, fenced by it, is writable again now the demo is over.\n',
    );
    return;
  }
  process.stdout.write('  blue was fenced for the cutover and is writable again now the demo is over.\n');
}
