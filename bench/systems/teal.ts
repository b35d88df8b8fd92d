import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kafkaClientFromEnv } from '@teal/config';
import { deleteTopics, topicRecordCount } from '../lib/kafka.ts';
import { query, url } from '../lib/pg.ts';
import { log, type ProcRef, sleep, stopChild, waitUntil } from '../lib/util.ts';
import { type BenchContext, type BenchSystem, walsenderSql } from './types.ts';

export const API_PORT = Number(process.env.BENCH_TEAL_API_PORT ?? 18090);

/**
 * teal as a child process: `node bin/teal.mjs run` (producer + consumer + API in one
 * process), configured by TEAL_* env only (no teal.config.ts: every blue table into the
 * same-named green table). BENCH_TEAL_MODE=split runs the producer and consumer mains as
 * two processes instead. Pause/resume: the API's /pause and /resume when it answers
 * (BENCH_TEAL_PAUSE=restart stops and restarts the processes instead).
 */
export type SnapshotVia = 'direct' | 'kafka';

export class TealSystem implements BenchSystem {
  readonly name = 'teal';
  readonly usesKafka = true;
  /** The initial copy's path (TEAL_SNAPSHOT_VIA); undefined: teal's default. */
  via?: SnapshotVia;
  /** What the harness saw of teal's snapshot paths (for the report's notes). */
  readonly seen = new Set<string>();
  private children: { label: string; child: ChildProcess }[] = [];
  private id = '';
  private readonly split = process.env.BENCH_TEAL_MODE === 'split';
  private readonly pauseByRestart = process.env.BENCH_TEAL_PAUSE === 'restart';
  private pausedBy?: 'api' | 'restart';

  async prepare(ctx: BenchContext): Promise<void> {
    const entry = this.split
      ? join(ctx.repoRoot, 'services', 'producer', 'src', 'main.ts')
      : join(ctx.repoRoot, 'services', 'cli', 'src', 'main.ts');
    if (!existsSync(entry)) throw new Error(`teal is not runnable yet: ${entry} is missing`);
  }

  private env(ctx: BenchContext): NodeJS.ProcessEnv {
    return {
      ...process.env,
      TEAL_BLUE_URL: url(ctx.blue),
      TEAL_GREEN_URL: url(ctx.green),
      TEAL_KAFKA_BROKERS: ctx.kafkaBrokers,
      TEAL_SLOT: this.id,
      TEAL_PUBLICATION: this.id,
      TEAL_TOPIC_PREFIX: this.id,
      TEAL_CONSUMER_GROUP: this.id,
      TEAL_API_HOST: '127.0.0.1',
      TEAL_API_PORT: String(API_PORT),
      TEAL_LOG_LEVEL: process.env.TEAL_LOG_LEVEL ?? 'info',
      ...(this.via ? { TEAL_SNAPSHOT_VIA: this.via } : {}),
      NODE_ENV: 'production',
    };
  }

  private spawnAll(ctx: BenchContext): void {
    const logFile = join(ctx.workDir, `teal-${this.id}.log`);
    const out = openSync(logFile, 'a');
    const node = process.execPath;
    // BENCH_TEAL_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" profiles teal on a workload
    // (NODE_OPTIONS refuses --cpu-prof).
    const nodeArgs = (process.env.BENCH_TEAL_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
    const { flags: shebangFlags, env: shebangEnv } = tealShebang(ctx.repoRoot);
    const specs = this.split
      ? [
          { label: 'teal producer', args: ['--import', 'tsx', 'services/producer/src/main.ts'] },
          { label: 'teal consumer', args: ['--import', 'tsx', 'services/consumer/src/main.ts'] },
        ]
      : [{ label: 'teal run', args: ['bin/teal.mjs', 'run'] }];
    for (const s of specs) {
      // `teal run` is started as `npx teal run` starts it: the executable, so its shebang's
      // V8 flags apply; with BENCH_TEAL_NODE_ARGS through node, those flags added by hand.
      const direct = !this.split && nodeArgs.length === 0;
      const [command, args] = direct
        ? [join(ctx.repoRoot, 'bin', 'teal.mjs'), s.args.slice(1)]
        : [node, [...shebangFlags, ...nodeArgs, ...s.args]];
      const child = spawn(command, args, {
        cwd: ctx.repoRoot,
        env: direct ? this.env(ctx) : { ...shebangEnv, ...this.env(ctx) },
        stdio: ['ignore', out, out],
      });
      child.once('exit', (code, signal) => {
        if (code !== 0 && signal === null) log(`teal: ${s.label} exited ${code}; see ${logFile}`);
      });
      this.children.push({ label: s.label, child });
      log(`teal: ${s.label} pid ${child.pid}, log ${logFile}`);
    }
  }

  private async api(method: string, path: string): Promise<Response> {
    return fetch(`http://127.0.0.1:${API_PORT}${path}`, {
      method,
      headers: method === 'POST' ? { 'content-type': 'application/json' } : {},
      body: method === 'POST' ? '{}' : undefined,
    });
  }

  async streamLatency(): Promise<Record<string, { sum: number; count: number }>> {
    if (this.split) return {}; // the split mains serve no merged /metrics on API_PORT
    const res = await this.api('GET', '/metrics');
    if (!res.ok) throw new Error(`teal /metrics answered ${res.status}`);
    return latencySums(await res.text());
  }

  private async healthy(): Promise<boolean> {
    if (this.children.some((c) => c.child.exitCode !== null))
      throw new Error('a teal process exited; see its log');
    if (this.split) return true;
    try {
      return (await this.api('GET', '/healthz')).ok;
    } catch {
      return false;
    }
  }

  async start(ctx: BenchContext): Promise<void> {
    this.id = `bench_teal_${ctx.runId}`;
    this.spawnAll(ctx);
    await waitUntil('teal /healthz', () => this.healthy(), 90_000, 300);
  }

  async pause(ctx: BenchContext): Promise<void> {
    if (!this.pauseByRestart && !this.split) {
      const res = await this.api('POST', '/pause');
      if (res.ok) {
        // The producer and consumer poll the pause flag (<= 500 ms): the backlog must not
        // start before both have stopped, or part of it streams while "paused".
        const t0 = performance.now();
        await waitUntil('teal producer and consumer to report paused', () => this.bothPaused(), 15_000, 100);
        log(`teal: paused (POST /pause, both sides paused after ${Math.round(performance.now() - t0)} ms)`);
        this.pausedBy = 'api';
        return;
      }
      log(`teal: POST /pause answered ${res.status}; stopping the process instead`);
    }
    this.pausedBy = 'restart';
    await this.stopAll();
    await waitUntil(
      'teal walsender to stop',
      async () => (await query(ctx.blue, walsenderSql, [this.id])).length === 0,
      30_000,
    ).catch(() => {});
  }

  private async bothPaused(): Promise<boolean> {
    const res = await this.api('GET', '/status');
    if (!res.ok) return false;
    const st = (await res.json()) as {
      producer?: { state?: string } | null;
      consumer?: { state?: string | null };
    };
    return st.producer?.state === 'paused' && st.consumer?.state === 'paused';
  }

  check(): void {
    const dead = this.children.find((c) => c.child.exitCode !== null || c.child.signalCode !== null);
    if (dead)
      throw new Error(
        `${dead.label} exited (code ${dead.child.exitCode}, signal ${dead.child.signalCode}); see its log in the run folder`,
      );
  }

  note(): string {
    const pause =
      this.pausedBy === 'api'
        ? 'catch-up paused with POST /pause (waited for producer and consumer to report paused), resumed with POST /resume; '
        : this.pausedBy === 'restart'
          ? 'catch-up paused by stopping the teal process, resumed by restarting it; '
          : '';
    let client = 'unknown';
    try {
      client = kafkaClientFromEnv();
    } catch {}
    return [
      `${pause}Kafka client ${client} for every role (TEAL_KAFKA_CLIENT: publisher and consumer group); ` +
        "the other workloads after the snapshot along teal's default path, the other snapshot row a pass of its own (TEAL_SNAPSHOT_VIA)",
      ...this.seen,
    ].join('; ');
  }

  async resume(ctx: BenchContext): Promise<void> {
    if (this.children.length) {
      const res = await this.api('POST', '/resume');
      if (!res.ok) throw new Error(`teal: POST /resume answered ${res.status}: ${await res.text()}`);
      return;
    }
    this.spawnAll(ctx);
  }

  private async stopAll(): Promise<void> {
    await Promise.all(this.children.map((c) => stopChild(c.child, 15_000)));
    this.children = [];
  }

  async processes(): Promise<ProcRef[]> {
    return this.children
      .filter((c) => c.child.pid && c.child.exitCode === null)
      .map((c) => ({ label: c.label, pid: c.child.pid!, kind: 'own' as const }));
  }

  /**
   * Records in a table's topic: which path the initial copy took, seen from the outside (a
   * copy through Kafka leaves at least one record per row; a direct copy only the stream's).
   */
  async topicRecords(ctx: BenchContext, table: string): Promise<number> {
    return topicRecordCount(ctx.kafkaBrokers, `${this.id}.public.${table}`);
  }

  async smoke(ctx: BenchContext): Promise<string> {
    const t0 = performance.now();
    await this.start(ctx);
    return `teal answers /healthz after ${((performance.now() - t0) / 1000).toFixed(1)} s`;
  }

  async teardown(ctx: BenchContext): Promise<void> {
    await this.stopAll();
    if (this.id) {
      await sleep(300);
      await query(
        ctx.blue,
        'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1',
        [this.id],
      ).catch((err) => log(`teal: could not drop slot ${this.id}: ${(err as Error).message}`));
      await query(ctx.blue, `DROP PUBLICATION IF EXISTS ${this.id}`).catch(() => {});
      const prefix = this.id;
      await deleteTopics(ctx.kafkaBrokers, (t) => t.startsWith(`${prefix}.`));
    }
    this.id = '';
  }
}

/** The _sum and _count of teal's latency histograms in Prometheus text, by point ('applied' for replication lag). */
export function latencySums(text: string): Record<string, { sum: number; count: number }> {
  const out: Record<string, { sum: number; count: number }> = {};
  const line =
    /^teal_(stream_latency|replication_lag)_seconds_(sum|count)(?:\{[^}]*?point="([a-z]+)"[^}]*\})?\s+(\S+)$/gm;
  for (const m of text.matchAll(line)) {
    const point = m[1] === 'replication_lag' ? 'applied' : m[3];
    if (point === undefined) continue;
    out[point] ??= { sum: 0, count: 0 };
    out[point][m[2] as 'sum' | 'count'] += Number(m[4]);
  }
  return out;
}

/**
 * How bin/teal.mjs's shebang line (`#!/usr/bin/env -S NAME=value node --flag ...`) starts node:
 * its V8 flags and its environment, for whatever starts node by hand (the bench with
 * BENCH_TEAL_NODE_ARGS; the Helm chart's pods, which test/deploy-files.test.ts holds to it).
 */
export function tealShebang(repoRoot: string): { flags: string[]; env: Record<string, string> } {
  const words = readFileSync(join(repoRoot, 'bin', 'teal.mjs'), 'utf8')
    .split('\n', 1)[0]!
    .split(/\s+/);
  const env: Record<string, string> = {};
  for (const w of words.filter((word) => /^[A-Z_]+=/.test(word)))
    env[w.slice(0, w.indexOf('='))] = w.slice(w.indexOf('=') + 1);
  return { flags: words.filter((word) => word.startsWith('--')), env };
}
