// `npm run bench` (tsx bench/run.ts): teal vs native logical replication vs Debezium,
// one system after another on fresh data, one report. See bench/README.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cutoverWorkload } from './cutover.ts';
import {
  copyLimit,
  dropLeftoverSlots,
  dropLeftoverSubscriptions,
  type Endpoint,
  fingerprint,
  freshData,
  freshGreen,
  isTransient,
  parseUrl,
  pgbench,
  query,
  TABLES,
  tableBytes,
  tpsOf,
} from './lib/pg.ts';
import { LagProbe } from './lib/probe.ts';
import { brokerPid, SessionLister } from './lib/procs.ts';
import {
  gitCommit,
  loadNow,
  type Metrics,
  machine,
  markdown,
  medians,
  type Report,
  type ScalingResult,
  type SystemResult,
} from './lib/report.ts';
import {
  log,
  meanLatencyMs,
  type ProcRef,
  ProcSampler,
  type ProcUsage,
  percentile,
  sleep,
  waitUntil,
} from './lib/util.ts';
import { DebeziumSystem } from './systems/debezium.ts';
import { NativeSystem } from './systems/native.ts';
import { type SnapshotVia, TealSystem } from './systems/teal.ts';
import type { BenchContext, BenchSystem } from './systems/types.ts';

const USAGE = `usage: tsx bench/run.ts [--quick | --smoke] [--systems teal,native,debezium]
         [--workloads limit,snapshot,catchup,steady,bigtx,cutover,scaling] [--runs N] [--scale S]
         [--scales 10,40,160] [--out DIR]
  (default)  full sizes: scale 20 (2M accounts), 1M-change backlog, 60 s at --rate 1000, 2M-row tx;
             snapshot (teal: direct copy and via Kafka), catch-up, big tx and the COPY pipe 3 times
             (median and min-max), steady and cutover once; every workload but scaling
  --quick    scale 1, 20k-change backlog, 10 s steady, 100k-row tx, one run; <= ~4 min
  --smoke    only proves each system's harness starts (connector RUNNING, subscription, /healthz); exit 0
  --runs N   runs of the short workloads (default 3, --quick 1)
  scaling    (only when named) a snapshot at each of --scales (default 10,40,160: 1M, 4M, 16M rows)
             for the COPY pipe, native, teal direct, teal via Kafka and Debezium, one run each
  env: BENCH_BLUE_URL (default postgres://postgres@127.0.0.1:5433), BENCH_GREEN_URL (:5434),
       BENCH_KAFKA_BROKERS (127.0.0.1:9092); databases bench_blue / bench_green are dropped and recreated
       (BENCH_DB_SUFFIX=_x: bench_blue_x / bench_green_x; with BENCH_TEAL_API_PORT and BENCH_CONNECT_PORT
       of its own, a second bench can run beside another); BENCH_BUDGET_MINUTES caps the run
       (default 60, --quick 12, plus the scaling's share).`;

const ALL_SYSTEMS = ['teal', 'native', 'debezium'];
const ALL_WORKLOADS = ['limit', 'snapshot', 'catchup', 'steady', 'bigtx', 'cutover', 'scaling'];
/** scaling copies 16M rows per system (Debezium alone ~15 min): only when asked for. */
const DEFAULT_WORKLOADS = ALL_WORKLOADS.filter((w) => w !== 'scaling');
const PIPELINE_WORKLOADS = ['snapshot', 'catchup', 'steady', 'bigtx', 'cutover'];

interface Options {
  mode: 'full' | 'quick' | 'smoke';
  systems: string[];
  workloads: string[];
  runs: number;
  scale: number;
  scales: number[];
  catchupChanges: number;
  steadySeconds: number;
  rate: number;
  bigTxRows: number;
  budgetMinutes: number;
  out: string;
}

function parseArgs(argv: string[]): Options {
  const get = (name: string) => {
    const i = argv.indexOf(name);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value\n${USAGE}`);
    return v;
  };
  const known = new Set([
    '--quick',
    '--smoke',
    '--systems',
    '--workloads',
    '--runs',
    '--scale',
    '--scales',
    '--out',
    '--help',
    '-h',
  ]);
  for (const a of argv)
    if (a.startsWith('-') && !known.has(a)) throw new Error(`unknown option ${a}\n${USAGE}`);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const mode = argv.includes('--smoke') ? 'smoke' : argv.includes('--quick') ? 'quick' : 'full';
  const list = (v: string | undefined, all: string[], what: string, byDefault = all) => {
    const items = v
      ? v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : byDefault;
    for (const i of items)
      if (!all.includes(i)) throw new Error(`unknown ${what} "${i}": expected some of ${all.join(',')}`);
    return items;
  };
  const quick = mode !== 'full';
  const scale = Number(get('--scale') ?? (quick ? 1 : 20));
  const runs = Number(get('--runs') ?? (quick ? 1 : 3));
  const scales = (get('--scales') ?? '10,40,160').split(',').map(Number);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs expects a positive integer');
  if (!Number.isInteger(scale) || scale < 1) throw new Error('--scale expects a positive integer');
  if (!scales.every((s) => Number.isInteger(s) && s > 0))
    throw new Error('--scales expects positive integers, e.g. 10,40,160');
  const workloads = list(get('--workloads'), ALL_WORKLOADS, 'workload', DEFAULT_WORKLOADS);
  return {
    mode,
    systems: list(get('--systems'), ALL_SYSTEMS, 'system'),
    workloads,
    runs,
    scale,
    scales,
    catchupChanges: quick ? 20_000 : 1_000_000,
    steadySeconds: quick ? 10 : 60,
    rate: 1000,
    bigTxRows: Math.min(scale * 100_000, quick ? 100_000 : 2_000_000),
    // Full: Debezium's three runs alone take ~15 min here. Scaling adds ~1.5 h at 1M/4M/16M.
    budgetMinutes:
      Number(process.env.BENCH_BUDGET_MINUTES ?? 0) ||
      // A cap, not a target: on a loaded machine (load average 20 here) --quick took 8 min.
      (quick ? 12 : 60) + (workloads.includes('scaling') ? scales.reduce((m, s) => m + s * 0.6, 10) : 0),
    out: resolve(get('--out') ?? join(dirname(fileURLToPath(import.meta.url)), 'results')),
  };
}

function makeSystem(name: string): BenchSystem {
  if (name === 'teal') return new TealSystem();
  if (name === 'native') return new NativeSystem();
  return new DebeziumSystem();
}

/** Two benches at once (two engineers, one env) must not drop each other's databases. */
const DB_SUFFIX = process.env.BENCH_DB_SUFFIX ?? '';
if (!/^[a-z0-9_]*$/.test(DB_SUFFIX))
  throw new Error('BENCH_DB_SUFFIX: lower-case letters, digits and _ only');

let deadline = Number.POSITIVE_INFINITY;
/** A workload's timeout: its own cap, never past the run's budget (plus a grace for cleanup). */
const timeout = (capMs: number) => Math.max(30_000, Math.min(capMs, deadline - Date.now()));

let stallMs = 90_000;

/** Keys of pgbench_accounts spread over the table: all present in green = the copy is about done. */
const SAMPLED_KEYS = 1024;

/**
 * Waits until green's fingerprint equals blue's (`target`, blue's own when not given). Fails
 * early when green has not changed for `stallMs` (a pipeline that lost or stopped applying
 * rows), saying what differs. With `sampleUpTo` (a copy into an empty green) it first waits
 * until sampled keys of the 1..N accounts are all in green: index lookups instead of a full
 * fingerprint every 0.5 s, which at 16M rows would take a core away from the system measured.
 */
async function waitConverged(
  system: BenchSystem,
  ctx: BenchContext,
  what: string,
  capMs: number,
  opts: { target?: string; sampleUpTo?: number } = {},
): Promise<void> {
  const target = opts.target ?? (await fingerprint(ctx.blue));
  const n = opts.sampleUpTo;
  const keys = n
    ? Array.from(
        { length: Math.min(SAMPLED_KEYS, n) },
        (_, i) => 1 + Math.floor((i * n) / Math.min(SAMPLED_KEYS, n)),
      )
    : [];
  let gateOpen = keys.length === 0;
  let last = '';
  let since = Date.now();
  // Only once green has started to move: a sink may take a while to write its first row.
  let moved = false;
  let lastOutageLog = 0;
  await waitUntil(
    what,
    async () => {
      system.check?.();
      let now: string;
      try {
        if (!gateOpen) {
          const present = await query<{ n: string }>(
            ctx.green,
            'SELECT count(*) AS n FROM pgbench_accounts WHERE aid = ANY($1::int[])',
            [keys],
          );
          gateOpen = Number(present[0].n) === keys.length;
          now = `sampled keys present: ${present[0].n} of ${keys.length}`;
        }
        if (gateOpen) now = await fingerprint(ctx.green);
      } catch (err) {
        // Shared env: another engineer may restart green; keep waiting (teal retries too).
        if (!isTransient(err)) throw err;
        if (Date.now() - lastOutageLog > 5000) {
          log(`${what}: green unreachable (${(err as Error).message}); still waiting`);
          lastOutageLog = Date.now();
        }
        return false;
      }
      if (now! === target) return true;
      if (now! !== last) {
        moved = last !== '';
        last = now!;
        since = Date.now();
      } else if (moved && Date.now() - since > stallMs) {
        throw new Error(
          `${what}: green stopped changing for ${stallMs / 1000} s and differs from blue ` +
            `(count:sum per table; green ${now!} vs blue ${target})`,
        );
      }
      return false;
    },
    timeout(capMs),
    500,
  ).catch((err: Error) => {
    if (Date.now() < deadline) throw err;
    throw new Error(`${err.message}: the run's budget is spent (BENCH_BUDGET_MINUTES to allow more)`);
  });
}

/** Harness-wide: the sessions lister (one client per database) and the broker's pid. */
let sessions: SessionLister | undefined;
let broker: number | undefined;

async function measured<T extends Metrics>(
  system: BenchSystem,
  ctx: BenchContext,
  fn: () => Promise<T>,
): Promise<{ metrics: T; procs: ProcUsage[] }> {
  const all = async (): Promise<ProcRef[]> => [
    ...(await system.processes(ctx)),
    ...((await sessions?.list()) ?? []),
    ...(system.usesKafka && broker ? [{ label: 'kafka broker', pid: broker, kind: 'support' as const }] : []),
  ];
  const sampler = new ProcSampler(all, 250);
  await sampler.start();
  try {
    const metrics = await fn();
    const { procs, allPeakRssMiB } = await sampler.stop();
    const own = procs.filter((p) => p.kind === 'own');
    const biggest = own.reduce<ProcUsage | undefined>(
      (a, p) => (a && a.peakRssMiB >= p.peakRssMiB ? a : p),
      undefined,
    );
    const cpu = (ps: ProcUsage[]) => Math.round(ps.reduce((s, p) => s + p.cpuSeconds, 0) * 100) / 100;
    Object.assign(metrics, {
      peakRssMiB: biggest?.peakRssMiB ?? 0,
      // Flat memory = the largest own process grows little from the workload's start.
      rssGrowthMiB: biggest ? Math.round((biggest.peakRssMiB - biggest.startRssMiB) * 10) / 10 : 0,
      cpuSeconds: cpu(own),
      allCpuSeconds: cpu(procs),
      allPeakRssMiB,
      brokerCpuSeconds: cpu(procs.filter((p) => p.label === 'kafka broker')),
    });
    return { metrics, procs };
  } catch (err) {
    await sampler.stop();
    throw err;
  }
}

const processRecord = (procs: ProcUsage[]) =>
  Object.fromEntries(
    procs.map((p) => [p.label, { kind: p.kind, peakRssMiB: p.peakRssMiB, cpuSeconds: p.cpuSeconds }]),
  );

interface Blue {
  rows: number;
  bytes: number;
  fingerprint: string;
}

async function blueNow(blue: Endpoint): Promise<Blue> {
  const rows = await query<{ n: string }>(
    blue,
    `SELECT sum(n_live_tup)::bigint AS n FROM pg_stat_user_tables WHERE relname = ANY($1)`,
    [TABLES],
  );
  return { rows: Number(rows[0].n), bytes: await tableBytes(blue), fingerprint: await fingerprint(blue) };
}

/**
 * The snapshot: start the pipeline on a loaded blue and an empty green; done when green's
 * fingerprint equals blue's. For teal, also how many records the accounts topic holds (a
 * direct copy leaves only the stream's).
 */
async function snapshotWorkload(
  system: BenchSystem,
  ctx: BenchContext,
  b: Blue,
  accounts: number,
  capMs: number,
) {
  const r = await measured(system, ctx, async () => {
    const t0 = performance.now();
    await system.start(ctx);
    const startupSeconds = (performance.now() - t0) / 1000;
    await waitConverged(system, ctx, `${label(system)} snapshot`, capMs, {
      target: b.fingerprint,
      sampleUpTo: accounts,
    });
    const seconds = (performance.now() - t0) / 1000;
    return {
      rows: b.rows,
      bytes: b.bytes,
      seconds,
      startupSeconds,
      rowsPerSec: b.rows / seconds,
      mbPerSec: b.bytes / 1e6 / seconds,
    } as Metrics;
  });
  if (system instanceof TealSystem) {
    const records = await system.topicRecords(ctx, 'pgbench_accounts').catch(() => Number.NaN);
    r.metrics.topicRecords = records;
    if (system.via === 'direct' && records >= accounts)
      system.seen.add(
        `the "direct" snapshot left ${records} records in the accounts topic (>= its ${accounts} rows): ` +
          'TEAL_SNAPSHOT_VIA=direct was not honoured, that row measured the copy through Kafka',
      );
    if (system.via === 'kafka' && records < accounts)
      system.seen.add(
        `the "via Kafka" snapshot left only ${records} records in the accounts topic (< its ${accounts} rows)`,
      );
  }
  return r;
}

/**
 * Where a snapshot's figures go: teal's through Kafka under 'snapshotKafka' (its own row),
 * every other under 'snapshot'. teal's default path is read from the accounts topic.
 */
function snapshotKeyOf(system: BenchSystem, m: Metrics, accounts: number): string {
  if (!(system instanceof TealSystem)) return 'snapshot';
  if (system.via) return system.via === 'kafka' ? 'snapshotKafka' : 'snapshot';
  if (!Number.isFinite(m.topicRecords)) {
    system.seen.add(
      "the default path's topic could not be read: its snapshot is reported as the direct copy",
    );
    return 'snapshot';
  }
  const key = m.topicRecords >= accounts ? 'snapshotKafka' : 'snapshot';
  system.seen.add(
    `teal's default snapshot path was ${key === 'snapshot' ? 'the direct copy' : 'via Kafka'} (${m.topicRecords} records in the accounts topic)`,
  );
  return key;
}

const label = (s: BenchSystem) => (s instanceof TealSystem && s.via ? `teal ${s.via}` : s.name);

async function benchSystem(
  system: BenchSystem,
  ctx: BenchContext,
  o: Options,
  result: SystemResult,
  pass: { run: number; snapshotOnly: boolean },
): Promise<Record<string, Metrics | { error: string }>> {
  const out: Record<string, Metrics | { error: string }> = {};
  const record = (w: string, procs: ProcUsage[]) => {
    result.processes[w] = processRecord(procs);
  };
  // Steady keeps its percentiles over one run, and cutover fences blue: both in run 1 only.
  const once = pass.run === 1;
  const wants = (w: string) =>
    !(pass.snapshotOnly && w !== 'snapshot') &&
    o.workloads.includes(w) &&
    (once || !['steady', 'cutover'].includes(w));
  const name = label(system);
  log(`${name}: fresh data (scale ${o.scale})`);
  await freshData(ctx.blue, ctx.green, o.scale);
  const blue = await blueNow(ctx.blue);
  // Before the snapshot says which path it took: the path asked for, else the default's.
  let snapshotKey = system instanceof TealSystem && system.via === 'kafka' ? 'snapshotKafka' : 'snapshot';
  try {
    log(`${name}: snapshot`);
    const snap = await snapshotWorkload(system, ctx, blue, o.scale * 100_000, 15 * 60_000);
    snapshotKey = snapshotKeyOf(system, snap.metrics, o.scale * 100_000);
    if (wants('snapshot')) {
      out[snapshotKey] = snap.metrics;
      record(snapshotKey, snap.procs);
    }
    log(`${name}: snapshot ${snap.metrics.seconds.toFixed(1)} s`);
    if (wants('catchup')) {
      log(`${system.name}: catch-up: pause, backlog of ${o.catchupChanges} changes`);
      await system.pause(ctx);
      const script = join(ctx.workDir, 'backlog.sql');
      writeFileSync(
        script,
        `\\set aid random(1, ${o.scale * 100_000 - 99})\n` +
          'UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN :aid AND :aid + 99;\n',
      );
      const txs = Math.ceil(o.catchupChanges / 100 / 2);
      await pgbench(ctx.blue, ['-c', '2', '-j', '2', '-t', String(txs)], script);
      const r = await measured(system, ctx, async () => {
        const t0 = performance.now();
        await system.resume(ctx);
        await waitConverged(system, ctx, `${system.name} catch-up`, 15 * 60_000);
        const seconds = (performance.now() - t0) / 1000;
        return { changes: txs * 2 * 100, seconds, rowsPerSec: (txs * 2 * 100) / seconds };
      });
      out.catchup = r.metrics;
      record('catchup', r.procs);
      log(`${system.name}: catch-up ${r.metrics.seconds.toFixed(1)} s`);
    }

    if (wants('steady')) {
      log(`${system.name}: steady lag, ${o.steadySeconds} s at --rate ${o.rate}`);
      const r = await measured(system, ctx, async () => {
        const probe = new LagProbe(ctx.blue, ctx.green);
        const latencyBefore = await system.streamLatency?.();
        await probe.start();
        let pgOut = '';
        let lags: number[] = [];
        let latencyAfter: typeof latencyBefore;
        try {
          pgOut = await pgbench(ctx.blue, [
            '-b',
            'tpcb-like',
            '--rate',
            String(o.rate),
            '-T',
            String(o.steadySeconds),
            '-c',
            '4',
            '-j',
            '2',
          ]);
        } finally {
          await sleep(1000);
          lags = await probe.stop();
          latencyAfter = await system.streamLatency?.();
        }
        const t0 = performance.now();
        await waitConverged(system, ctx, `${system.name} steady drain`, 10 * 60_000);
        return {
          ...meanLatencyMs(latencyBefore, latencyAfter),
          tps: tpsOf(pgOut),
          samples: lags.length,
          lagP50Ms: percentile(lags, 50),
          lagP95Ms: percentile(lags, 95),
          lagP99Ms: percentile(lags, 99),
          lagMaxMs: lags.length ? lags[lags.length - 1] : Number.NaN,
          drainAfterSeconds: (performance.now() - t0) / 1000,
          probeConnectionErrors: probe.errors,
        };
      });
      out.steady = r.metrics;
      record('steady', r.procs);
      log(
        `${system.name}: steady lag p50 ${r.metrics.lagP50Ms.toFixed(0)} ms, p99 ${r.metrics.lagP99Ms.toFixed(0)} ms`,
      );
    }

    if (wants('bigtx')) {
      log(`${system.name}: one transaction of ${o.bigTxRows} rows`);
      const r = await measured(system, ctx, async () => {
        const t0 = performance.now();
        await query(ctx.blue, `UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid <= $1`, [
          o.bigTxRows,
        ]);
        const tCommit = performance.now();
        await waitConverged(system, ctx, `${system.name} big transaction`, 15 * 60_000);
        const tEnd = performance.now();
        return {
          rows: o.bigTxRows,
          commitSeconds: (tCommit - t0) / 1000,
          applySeconds: (tEnd - tCommit) / 1000,
          rowsPerSec: o.bigTxRows / ((tEnd - tCommit) / 1000),
        };
      });
      out.bigtx = r.metrics;
      record('bigtx', r.procs);
      log(`${system.name}: big tx in green ${r.metrics.applySeconds.toFixed(1)} s after commit`);
    }

    // Last: it fences bench_blue (bench/cutover.ts); teal only.
    if (wants('cutover') && system.name === 'teal') {
      log(`${system.name}: cutover under 500 tx/s (online verify, delta cutover, full-verify baseline)`);
      out.cutover = await cutoverWorkload(ctx.blue);
    }
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    log(`${name}: FAILED: ${msg}`);
    const next = PIPELINE_WORKLOADS.find((w) => wants(w) && !out[w === 'snapshot' ? snapshotKey : w]);
    if (next) out[next === 'snapshot' ? snapshotKey : next] = { error: msg };
  } finally {
    const note = system.note?.();
    if (note) result.notes = [...(result.notes ?? []), note];
    log(`${system.name}: teardown`);
    await system
      .teardown(ctx)
      .catch((err) => log(`${system.name}: teardown failed: ${(err as Error).message}`));
    await dropLeftoverSlots(ctx.blue).catch(() => {});
  }
  return out;
}

async function limitWorkload(blue: Endpoint, green: Endpoint): Promise<Metrics> {
  const bytes = await tableBytes(blue, ['pgbench_accounts']);
  const l = await copyLimit(blue, green);
  log(`limit: ${l.rows} rows in ${l.seconds.toFixed(1)} s`);
  const mbPerSec = bytes / 1e6 / l.seconds;
  return {
    rows: l.rows,
    seconds: l.seconds,
    rowsPerSec: l.rows / l.seconds,
    bytes,
    mbPerSec,
    copyMbPerSec: mbPerSec,
  };
}

/**
 * Snapshot-only passes at each of `o.scales`: blue made once per size, then the COPY pipe and
 * each system (teal twice: direct, via Kafka) into a new empty green. One run each.
 */
async function scalingWorkload(
  o: Options,
  blue: Endpoint,
  green: Endpoint,
  systems: BenchSystem[],
  ctxFor: () => BenchContext,
  active: { system?: BenchSystem; ctx?: BenchContext },
): Promise<ScalingResult> {
  const variants: { name: string; system: BenchSystem; via?: SnapshotVia }[] = [];
  for (const s of systems) {
    if (s instanceof TealSystem)
      variants.push(
        { name: 'teal direct', system: s, via: 'direct' },
        { name: 'teal via Kafka', system: s, via: 'kafka' },
      );
    else variants.push({ name: s.name, system: s });
  }
  const result: ScalingResult = { scales: o.scales, systems: { limit: {} } };
  for (const v of variants) result.systems[v.name] = {};
  for (const scale of o.scales) {
    log(`scaling: blue at scale ${scale} (${scale * 100_000} accounts)`);
    await freshData(blue, green, scale);
    result.systems.limit[String(scale)] = await limitWorkload(blue, green);
    const b = await blueNow(blue);
    for (const v of variants) {
      if (v.system instanceof TealSystem) v.system.via = v.via;
      const ctx = ctxFor();
      active.system = v.system;
      active.ctx = ctx;
      log(`scaling: ${v.name} snapshot at scale ${scale}`);
      try {
        await freshGreen(green, scale);
        // Debezium moves ~20k rows/s here: 16M rows take ~15 min.
        const r = await snapshotWorkload(v.system, ctx, b, scale * 100_000, 60 * 60_000);
        result.systems[v.name][String(scale)] = { ...r.metrics };
        log(`scaling: ${v.name} at scale ${scale}: ${Math.round(r.metrics.rowsPerSec)} rows/s`);
      } catch (err) {
        const msg = (err as Error).message.split('\n')[0];
        log(`scaling: ${v.name} at scale ${scale}: FAILED: ${msg}`);
        result.systems[v.name][String(scale)] = { error: msg };
      } finally {
        await v.system
          .teardown(ctx)
          .catch((err) => log(`${v.name}: teardown failed: ${(err as Error).message}`));
        await dropLeftoverSlots(blue).catch(() => {});
        active.system = undefined;
      }
    }
  }
  return result;
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const startedAt = Date.now();
  deadline = startedAt + o.budgetMinutes * 60_000;
  if (o.mode !== 'full') stallMs = 45_000;
  const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const blue: Endpoint = parseUrl(
    process.env.BENCH_BLUE_URL ?? 'postgres://postgres@127.0.0.1:5433/postgres',
    `bench_blue${DB_SUFFIX}`,
  );
  const green: Endpoint = parseUrl(
    process.env.BENCH_GREEN_URL ?? 'postgres://postgres@127.0.0.1:5434/postgres',
    `bench_green${DB_SUFFIX}`,
  );
  const kafkaBrokers = process.env.BENCH_KAFKA_BROKERS ?? '127.0.0.1:9092';
  const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*/, '');
  const workRoot = join(repoRoot, '.teal', 'bench', stamp);
  mkdirSync(workRoot, { recursive: true });
  let seq = 0;
  const ctxFor = (): BenchContext => {
    const runId = `${Date.now().toString(36)}${seq++}`;
    const workDir = join(workRoot, runId);
    mkdirSync(workDir, { recursive: true });
    return { blue, green, kafkaBrokers, runId, workDir, repoRoot };
  };

  // Whatever happens, stop what we started and drop our slots on Ctrl-C.
  const active: { system?: BenchSystem; ctx?: BenchContext } = {};
  let cleaning = false;
  const cleanupAndExit = (why: string, code: number) => {
    if (cleaning) return;
    cleaning = true;
    log(`${why}: cleaning up`);
    void (async () => {
      if (active.system && active.ctx) await active.system.teardown(active.ctx).catch(() => {});
      await dropLeftoverSubscriptions(green).catch(() => {});
      await dropLeftoverSlots(blue).catch(() => {});
      process.exit(code);
    })();
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => cleanupAndExit(sig, 130));
  // An unexpected error anywhere must not leave a subscription, slot or process behind.
  process.on('uncaughtException', (err) => cleanupAndExit(`uncaught: ${err.stack ?? err.message}`, 1));
  process.on('unhandledRejection', (err) =>
    cleanupAndExit(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`, 1),
  );

  if (o.mode === 'smoke') {
    let failed = 0;
    for (const name of o.systems) {
      const system = makeSystem(name);
      const ctx = ctxFor();
      active.system = system;
      active.ctx = ctx;
      try {
        await system.prepare(ctx);
        await freshData(blue, green, 1);
        const what = await system.smoke(ctx);
        log(`smoke ${name}: ok: ${what}`);
      } catch (err) {
        failed++;
        log(`smoke ${name}: FAILED: ${(err as Error).message}`);
      } finally {
        await system.teardown(ctx).catch((err) => log(`${name}: teardown failed: ${(err as Error).message}`));
        await dropLeftoverSlots(blue).catch(() => {});
      }
    }
    log(`smoke: ${o.systems.length - failed} passed, ${failed} failed`);
    return failed ? 1 : 0;
  }

  const report: Report = {
    date: new Date().toISOString(),
    command: (o.mode === 'full' && process.argv.length === 2
      ? 'npm run bench'
      : `npm run bench -- ${process.argv.slice(2).join(' ')}`
    ).trim(),
    commit: gitCommit(repoRoot),
    load: { start: loadNow() },
    machine: machine(),
    options: {
      scale: o.scale,
      catchupChanges: o.catchupChanges,
      steadySeconds: o.steadySeconds,
      rate: o.rate,
      bigTxRows: o.bigTxRows,
      runs: o.runs,
      ...(o.workloads.includes('scaling') ? { scales: o.scales } : {}),
      systems: o.systems,
      workloads: o.workloads,
    },
    systems: {},
  };
  const systems = o.systems.map((n) => ({ name: n, system: makeSystem(n) }));
  for (const s of systems) {
    report.systems[s.name] = { runs: [], median: {}, processes: {} };
    try {
      await s.system.prepare(ctxFor());
    } catch (err) {
      log(`${s.name}: not available: ${(err as Error).message}`);
      report.systems[s.name].runs.push({ snapshot: { error: `not available: ${(err as Error).message}` } });
    }
  }
  sessions = new SessionLister(blue, green);
  broker = brokerPid(repoRoot, kafkaBrokers);
  log(
    broker
      ? `kafka broker: pid ${broker} (sampled for teal and Debezium)`
      : 'kafka broker: pid not found, not sampled',
  );
  const available = (name: string) =>
    !report.systems[name].runs.some((r) =>
      Object.values(r).some((m) => typeof m.error === 'string' && m.error.startsWith('not available')),
    );
  const limits: Metrics[] = [];
  const pipelineRuns = o.workloads.some((w) => w === 'limit' || PIPELINE_WORKLOADS.includes(w));
  for (let run = 1; pipelineRuns && run <= o.runs; run++) {
    if (o.workloads.includes('limit')) {
      log(`limit: COPY blue -> green (scale ${o.scale}), run ${run}/${o.runs}`);
      await freshData(blue, green, o.scale);
      limits.push(await limitWorkload(blue, green));
    }
    for (const s of systems) {
      const res = report.systems[s.name];
      if (!available(s.name)) continue;
      log(`=== ${s.name}, run ${run}/${o.runs}`);
      const outcome: Record<string, Metrics | { error: string }> = {};
      const pass = async (snapshotOnly: boolean) => {
        const ctx = ctxFor();
        active.system = s.system;
        active.ctx = ctx;
        Object.assign(outcome, await benchSystem(s.system, ctx, o, res, { run, snapshotOnly }));
      };
      // teal's default path for the snapshot and every workload after it, then a snapshot-only
      // pass on fresh data along the other path: the table has a row for each.
      if (s.system instanceof TealSystem) s.system.via = undefined;
      await pass(false);
      if (s.system instanceof TealSystem && o.workloads.includes('snapshot')) {
        s.system.via = 'snapshotKafka' in outcome ? 'direct' : 'kafka';
        await pass(true);
        s.system.via = undefined;
      }
      res.runs.push(outcome);
      res.median = medians(res.runs);
      active.system = undefined;
    }
  }
  if (limits.length) {
    report.limit = medians(limits.map((l) => ({ limit: l }))).limit;
    report.limitRuns = limits;
  }
  if (o.workloads.includes('scaling')) {
    report.scaling = await scalingWorkload(
      o,
      blue,
      green,
      systems.filter((s) => available(s.name)).map((s) => s.system),
      ctxFor,
      active,
    );
  }
  await sessions.close();
  report.load = { start: report.load?.start ?? [], end: loadNow() };
  // Leave the bench databases small: the next run recreates them anyway.
  await query(
    { ...blue, database: 'postgres' },
    `DROP DATABASE IF EXISTS ${blue.database} WITH (FORCE)`,
  ).catch(() => {});
  await query(
    { ...green, database: 'postgres' },
    `DROP DATABASE IF EXISTS ${green.database} WITH (FORCE)`,
  ).catch(() => {});

  mkdirSync(o.out, { recursive: true });
  const base = join(
    o.out,
    report.date.replace(/[:]/g, '-').replace(/\..*/, '') + (o.mode === 'quick' ? '-quick' : ''),
  );
  writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + '\n');
  const md = markdown(report);
  writeFileSync(`${base}.md`, md);
  process.stdout.write(
    `\n${md}\nwritten: ${base}.json, ${base}.md (${((Date.now() - startedAt) / 60000).toFixed(1)} min)\n`,
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
