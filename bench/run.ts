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
  isTransient,
  parseUrl,
  pgbench,
  query,
  TABLES,
  tpsOf,
} from './lib/pg.ts';
import { LagProbe } from './lib/probe.ts';
import {
  gitCommit,
  loadNow,
  type Metrics,
  machine,
  markdown,
  medians,
  type Report,
  type SystemResult,
} from './lib/report.ts';
import { log, ProcSampler, type ProcUsage, percentile, sleep, waitUntil } from './lib/util.ts';
import { DebeziumSystem } from './systems/debezium.ts';
import { NativeSystem } from './systems/native.ts';
import { TealSystem } from './systems/teal.ts';
import type { BenchContext, BenchSystem } from './systems/types.ts';

const USAGE = `usage: tsx bench/run.ts [--quick | --smoke] [--systems teal,native,debezium]
         [--workloads limit,snapshot,catchup,steady,bigtx,cutover] [--runs N] [--scale S] [--out DIR]
  (default)  full sizes: scale 20 (2M accounts), 1M-change backlog, 60 s at --rate 1000, 2M-row tx; <= ~20 min
  --quick    scale 1, 20k-change backlog, 10 s steady, 100k-row tx; <= ~3 min
  --smoke    only proves each system's harness starts (connector RUNNING, subscription, /healthz); exit 0
  env: BENCH_BLUE_URL (default postgres://postgres@127.0.0.1:5433), BENCH_GREEN_URL (:5434),
       BENCH_KAFKA_BROKERS (127.0.0.1:9092); databases bench_blue / bench_green are dropped and recreated.`;

const ALL_SYSTEMS = ['teal', 'native', 'debezium'];
const ALL_WORKLOADS = ['limit', 'snapshot', 'catchup', 'steady', 'bigtx', 'cutover'];

interface Options {
  mode: 'full' | 'quick' | 'smoke';
  systems: string[];
  workloads: string[];
  runs: number;
  scale: number;
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
  const list = (v: string | undefined, all: string[], what: string) => {
    const items = v
      ? v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : all;
    for (const i of items)
      if (!all.includes(i)) throw new Error(`unknown ${what} "${i}": expected some of ${all.join(',')}`);
    return items;
  };
  const quick = mode !== 'full';
  const scale = Number(get('--scale') ?? (quick ? 1 : 20));
  const runs = Number(get('--runs') ?? 1);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs expects a positive integer');
  if (!Number.isInteger(scale) || scale < 1) throw new Error('--scale expects a positive integer');
  return {
    mode,
    systems: list(get('--systems'), ALL_SYSTEMS, 'system'),
    workloads: list(get('--workloads'), ALL_WORKLOADS, 'workload'),
    runs,
    scale,
    catchupChanges: quick ? 20_000 : 1_000_000,
    steadySeconds: quick ? 10 : 60,
    rate: 1000,
    bigTxRows: Math.min(scale * 100_000, quick ? 100_000 : 2_000_000),
    budgetMinutes: quick ? 3 : 20,
    out: resolve(get('--out') ?? join(dirname(fileURLToPath(import.meta.url)), 'results')),
  };
}

function makeSystem(name: string): BenchSystem {
  if (name === 'teal') return new TealSystem();
  if (name === 'native') return new NativeSystem();
  return new DebeziumSystem();
}

let deadline = Number.POSITIVE_INFINITY;
/** A workload's timeout: its own cap, never past the run's budget (plus a grace for cleanup). */
const timeout = (capMs: number) => Math.max(30_000, Math.min(capMs, deadline - Date.now()));

let stallMs = 90_000;

/**
 * Waits until green's fingerprint equals blue's. Fails early when green has not changed
 * for `stallMs` (a pipeline that lost or stopped applying rows), saying what differs.
 */
async function waitConverged(
  system: BenchSystem,
  ctx: BenchContext,
  what: string,
  capMs: number,
): Promise<void> {
  const target = await fingerprint(ctx.blue);
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
        now = await fingerprint(ctx.green);
      } catch (err) {
        // Shared env: another engineer may restart green; keep waiting (teal retries too).
        if (!isTransient(err)) throw err;
        if (Date.now() - lastOutageLog > 5000) {
          log(`${what}: green unreachable (${(err as Error).message}); still waiting`);
          lastOutageLog = Date.now();
        }
        return false;
      }
      if (now === target) return true;
      if (now !== last) {
        moved = last !== '';
        last = now;
        since = Date.now();
      } else if (moved && Date.now() - since > stallMs) {
        throw new Error(
          `${what}: green stopped changing for ${stallMs / 1000} s and differs from blue ` +
            `(count:sum per table; green ${now} vs blue ${target})`,
        );
      }
      return false;
    },
    timeout(capMs),
    500,
  );
}

async function measured<T extends Metrics>(
  system: BenchSystem,
  ctx: BenchContext,
  fn: () => Promise<T>,
): Promise<{ metrics: T; procs: ProcUsage[] }> {
  const sampler = new ProcSampler(() => system.processes(ctx), 250);
  await sampler.start();
  try {
    const metrics = await fn();
    const procs = await sampler.stop();
    const pipeline = procs;
    const biggest = pipeline
      .filter((p) => p.label !== 'blue walsender')
      .reduce<ProcUsage | undefined>((a, p) => (a && a.peakRssMiB >= p.peakRssMiB ? a : p), undefined);
    Object.assign(metrics, {
      peakRssMiB: biggest?.peakRssMiB ?? 0,
      // Flat memory = the largest pipeline process grows little from the workload's start.
      rssGrowthMiB: biggest ? Math.round((biggest.peakRssMiB - biggest.startRssMiB) * 10) / 10 : 0,
      cpuSeconds: Math.round(pipeline.reduce((s, p) => s + p.cpuSeconds, 0) * 100) / 100,
    });
    return { metrics, procs };
  } catch (err) {
    await sampler.stop();
    throw err;
  }
}

async function benchSystem(
  system: BenchSystem,
  ctx: BenchContext,
  o: Options,
  result: SystemResult,
): Promise<Record<string, Metrics | { error: string }>> {
  const out: Record<string, Metrics | { error: string }> = {};
  const record = (w: string, procs: ProcUsage[]) => {
    result.processes[w] = Object.fromEntries(
      procs.map((p) => [p.label, { peakRssMiB: p.peakRssMiB, cpuSeconds: p.cpuSeconds }]),
    );
  };
  const wants = (w: string) => o.workloads.includes(w);
  log(`${system.name}: fresh data (scale ${o.scale})`);
  await freshData(ctx.blue, ctx.green, o.scale);
  const blueRows = (
    await query<{ n: string }>(
      ctx.blue,
      `SELECT sum(n_live_tup)::bigint AS n FROM pg_stat_user_tables WHERE relname = ANY($1)`,
      [TABLES],
    )
  )[0].n;
  try {
    // snapshot: start the pipeline on a loaded blue; done when green's fingerprint equals blue's.
    log(`${system.name}: snapshot`);
    const snap = await measured(system, ctx, async () => {
      const t0 = performance.now();
      await system.start(ctx);
      const startupSeconds = (performance.now() - t0) / 1000;
      await waitConverged(system, ctx, `${system.name} snapshot`, 15 * 60_000);
      const seconds = (performance.now() - t0) / 1000;
      return { rows: Number(blueRows), seconds, startupSeconds, rowsPerSec: Number(blueRows) / seconds };
    });
    if (wants('snapshot')) {
      out.snapshot = snap.metrics;
      record('snapshot', snap.procs);
    }
    log(`${system.name}: snapshot ${snap.metrics.seconds.toFixed(1)} s`);

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
        await probe.start();
        let pgOut = '';
        let lags: number[] = [];
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
        }
        const t0 = performance.now();
        await waitConverged(system, ctx, `${system.name} steady drain`, 10 * 60_000);
        return {
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
    log(`${system.name}: FAILED: ${msg}`);
    const next = ['snapshot', 'catchup', 'steady', 'bigtx', 'cutover'].find((w) => wants(w) && !out[w]);
    if (next) out[next] = { error: msg };
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

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const startedAt = Date.now();
  deadline = startedAt + o.budgetMinutes * 60_000;
  if (o.mode !== 'full') stallMs = 45_000;
  const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const blue: Endpoint = parseUrl(
    process.env.BENCH_BLUE_URL ?? 'postgres://postgres@127.0.0.1:5433/postgres',
    'bench_blue',
  );
  const green: Endpoint = parseUrl(
    process.env.BENCH_GREEN_URL ?? 'postgres://postgres@127.0.0.1:5434/postgres',
    'bench_green',
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
  const limits: Metrics[] = [];
  for (let run = 1; run <= o.runs; run++) {
    if (o.workloads.includes('limit')) {
      log(`limit: COPY blue -> green (scale ${o.scale})`);
      await freshData(blue, green, o.scale);
      const l = await copyLimit(blue, green);
      limits.push({ rows: l.rows, seconds: l.seconds, rowsPerSec: l.rows / l.seconds });
      log(`limit: ${l.rows} rows in ${l.seconds.toFixed(1)} s`);
    }
    for (const s of systems) {
      const res = report.systems[s.name];
      if (
        res.runs.some((r) =>
          Object.values(r).some((m) => typeof m.error === 'string' && m.error.startsWith('not available')),
        )
      )
        continue;
      const ctx = ctxFor();
      active.system = s.system;
      active.ctx = ctx;
      log(`=== ${s.name}, run ${run}/${o.runs}`);
      res.runs.push(await benchSystem(s.system, ctx, o, res));
      res.median = medians(res.runs);
      active.system = undefined;
    }
  }
  if (limits.length) report.limit = medians(limits.map((l) => ({ limit: l }))).limit;
  report.load = { start: report.load?.start ?? [], end: loadNow() };
  // Leave the bench databases small: the next run recreates them anyway.
  await query({ ...blue, database: 'postgres' }, 'DROP DATABASE IF EXISTS bench_blue WITH (FORCE)').catch(
    () => {},
  );
  await query({ ...green, database: 'postgres' }, 'DROP DATABASE IF EXISTS bench_green WITH (FORCE)').catch(
    () => {},
  );

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
