import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const PG_BIN = process.env.BENCH_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const started = Date.now();
export function log(msg: string): void {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${t}s] ${msg}\n`);
}

/** Polls `check` every `everyMs` until it returns true; throws after `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 200,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (stdin closed); rejects on a non-zero exit unless `allowFail`. */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; allowFail?: boolean; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          child.kill('SIGTERM');
        }, opts.timeoutMs)
      : undefined;
    child.on('error', reject);
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      if (code !== 0 && !opts.allowFail) {
        reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
      } else resolve({ code, stdout, stderr });
    });
  });
}

/** Stops a child we started, by its pid: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(child: ChildProcess | undefined, graceMs = 10_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

const CLK_TCK = 100; // getconf CLK_TCK on Linux

export interface ProcSample {
  rssBytes: number;
  /** RssShmem: shared memory mapped (Postgres's shared buffers), counted once for the cluster, not per process. */
  shmemBytes: number;
  cpuSeconds: number;
}

/** VmRSS, RssShmem and utime+stime of one process (undefined when it is gone). */
export function readProc(pid: number): ProcSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const shmemKb = Number(/RssShmem:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    const cpu = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    return { rssBytes: rssKb * 1024, shmemBytes: shmemKb * 1024, cpuSeconds: cpu };
  } catch {
    return undefined;
  }
}

/** Direct children (and their children) of a pid: node wrappers (npx, tsx) fork the real worker. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift()!;
    let kids: string[] = [];
    try {
      kids = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      kids = [];
    }
    for (const k of kids) {
      out.push(Number(k));
      queue.push(Number(k));
    }
  }
  return out;
}

export interface ProcRef {
  label: string;
  pid: number;
  /**
   * 'own': the system's own process (teal run, Connect's JVM, native's apply and sync workers);
   * 'support': what it needs besides (blue's walsender and backends, green's backends, the broker).
   */
  kind?: 'own' | 'support';
}

export interface ProcUsage {
  label: string;
  kind: 'own' | 'support';
  /** RSS at the first sample: with the peak it shows whether memory grew during the workload. */
  startRssMiB: number;
  peakRssMiB: number;
  cpuSeconds: number;
}

export interface SampledUsage {
  procs: ProcUsage[];
  /** Largest sum over one sample of every process's RSS (own and support); RSS is always less shared memory. */
  allPeakRssMiB: number;
}

const mib = (bytes: number | undefined) => Math.round(((bytes ?? 0) / 1048576) * 10) / 10;

/**
 * Samples RSS (less shared memory) of a changing set of processes every `everyMs`. CPU seconds of a process
 * seen at the first sample are the difference between its first and last samples; a
 * process that appears later started during the workload, so all its CPU time counts.
 */
export class ProcSampler {
  private timer?: NodeJS.Timeout;
  private started = false;
  private readonly peak = new Map<string, number>();
  private readonly startRss = new Map<string, number>();
  private readonly firstCpu = new Map<number, number>();
  private readonly lastCpu = new Map<number, number>();
  private readonly labelOf = new Map<number, string>();
  private readonly kindOf = new Map<string, 'own' | 'support'>();
  private allPeak = 0;

  constructor(
    private readonly procs: () => Promise<ProcRef[]>,
    private readonly everyMs = 250,
  ) {}

  async start(): Promise<void> {
    await this.sample();
    this.started = true;
    this.timer = setInterval(() => void this.sample().catch(() => {}), this.everyMs);
  }

  private async sample(): Promise<void> {
    const refs = await this.procs();
    const rssByLabel = new Map<string, number>();
    const seen = new Set<number>();
    let all = 0;
    for (const { label, pid, kind } of refs) {
      if (seen.has(pid)) continue;
      seen.add(pid);
      const s = readProc(pid);
      if (!s) continue;
      this.labelOf.set(pid, label);
      this.kindOf.set(label, kind ?? 'own');
      if (!this.firstCpu.has(pid)) this.firstCpu.set(pid, this.started ? 0 : s.cpuSeconds);
      this.lastCpu.set(pid, s.cpuSeconds);
      // Shared memory (Postgres's shared buffers) is the cluster's, not this process's: summing
      // it per backend would count the same pages many times over.
      const own = s.rssBytes - s.shmemBytes;
      rssByLabel.set(label, (rssByLabel.get(label) ?? 0) + own);
      all += own;
    }
    this.allPeak = Math.max(this.allPeak, all);
    for (const [label, rss] of rssByLabel) {
      if (!this.startRss.has(label)) this.startRss.set(label, rss);
      this.peak.set(label, Math.max(this.peak.get(label) ?? 0, rss));
    }
  }

  async stop(): Promise<SampledUsage> {
    if (this.timer) clearInterval(this.timer);
    await this.sample().catch(() => {});
    const cpu = new Map<string, number>();
    for (const [pid, label] of this.labelOf) {
      cpu.set(label, (cpu.get(label) ?? 0) + (this.lastCpu.get(pid)! - this.firstCpu.get(pid)!));
    }
    const labels = new Set([...this.peak.keys(), ...cpu.keys()]);
    const procs = [...labels].map((label) => ({
      label,
      kind: this.kindOf.get(label) ?? 'own',
      startRssMiB: mib(this.startRss.get(label)),
      peakRssMiB: mib(this.peak.get(label)),
      cpuSeconds: Math.round((cpu.get(label) ?? 0) * 100) / 100,
    }));
    return { procs, allPeakRssMiB: mib(this.allPeak) };
  }
}

/** The points of a change's way from blue to green, in order, as `meanLatencyMs` names them. */
export const LATENCY_POINTS = ['decoded', 'sent', 'acknowledged', 'fetched', 'applied'] as const;

type LatencySums = Record<string, { sum: number; count: number }>;

/** The metric key of a point's mean in the steady workload's results: 'latencyDecodedMs', ... */
export const latencyKey = (point: string) => `latency${point[0]!.toUpperCase()}${point.slice(1)}Ms`;

/**
 * Mean milliseconds from blue's commit to each point over a window, from two readings of a
 * system's latency histograms (`BenchSystem.streamLatency`): { latencyDecodedMs, ... }; a
 * point with no observation in the window is left out.
 */
export function meanLatencyMs(
  before: LatencySums | undefined,
  after: LatencySums | undefined,
): Record<string, number> {
  const out: Record<string, number> = {};
  if (!after) return out;
  for (const point of LATENCY_POINTS) {
    const a = after[point];
    const b = before?.[point] ?? { sum: 0, count: 0 };
    if (!a || a.count <= b.count) continue;
    out[latencyKey(point)] = ((a.sum - b.sum) / (a.count - b.count)) * 1000;
  }
  return out;
}
