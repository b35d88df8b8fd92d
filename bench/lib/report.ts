import { execFileSync } from 'node:child_process';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { LATENCY_POINTS, latencyKey, median } from './util.ts';

export type Metrics = Record<string, number>;
type Outcome = Metrics | { error: string };

export interface SystemResult {
  runs: Record<string, Outcome>[];
  median: Record<string, Metrics>;
  processes: Record<
    string,
    Record<string, { kind?: 'own' | 'support'; peakRssMiB: number; cpuSeconds: number }>
  >;
  notes?: string[];
}

/** Snapshot-only passes at growing sizes, one per system and size (`--workloads scaling`). */
export interface ScalingResult {
  scales: number[];
  /** System ('limit', 'native', 'teal direct', 'teal via Kafka', 'debezium') -> scale -> figures. */
  systems: Record<string, Record<string, Outcome>>;
}

export interface Report {
  date: string;
  command: string;
  /** git HEAD of the checkout the run used (with "+dirty" when it had local changes). */
  commit?: string;
  /** 1/5/15-minute load averages at the start and at the end of the run. */
  load?: { start: number[]; end?: number[] };
  machine: { cpus: number; model: string; memGiB: number; kernel: string; node: string };
  options: Record<string, unknown>;
  limit?: Metrics;
  /** Every run of the COPY pipe limit (its median is `limit`). */
  limitRuns?: Metrics[];
  systems: Record<string, SystemResult>;
  scaling?: ScalingResult;
}

export function gitCommit(cwd: string): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd,
      encoding: 'utf8',
    }).trim();
    return dirty ? `${head}+dirty` : head;
  } catch {
    return 'unknown';
  }
}

export const loadNow = () => loadavg().map((l) => Math.round(l * 100) / 100);

export function machine(): Report['machine'] {
  return {
    cpus: cpus().length,
    model: cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
  };
}

const ok = (m: Outcome | undefined): m is Metrics => !!m && !('error' in m);

/** Median of every numeric metric over the runs that produced it. */
export function medians(runs: Record<string, Outcome>[]): Record<string, Metrics> {
  const out: Record<string, Metrics> = {};
  const workloads = new Set(runs.flatMap((r) => Object.keys(r)));
  for (const w of workloads) {
    const done = runs.map((r) => r[w]).filter(ok);
    if (!done.length) continue;
    const keys = new Set(done.flatMap((m) => Object.keys(m)));
    out[w] = {};
    for (const k of keys) out[w][k] = median(done.map((m) => m[k]).filter((v) => typeof v === 'number'));
  }
  return out;
}

/** Smallest and largest value of one metric over the runs (undefined with fewer than two). */
export function spread(runs: Record<string, Outcome>[], w: string, k: string): [number, number] | undefined {
  const v = runs
    .map((r) => r[w])
    .filter(ok)
    .map((m) => m[k])
    .filter((x) => typeof x === 'number' && Number.isFinite(x));
  return v.length > 1 ? [Math.min(...v), Math.max(...v)] : undefined;
}

type Better = 'high' | 'low';
/** A goal of issue 15: teal / the other system (or teal's own value) within [min, max]. */
interface Goal {
  vs: 'pipe' | 'native' | 'value';
  min?: number;
  max?: number;
}
interface Row {
  workload: string;
  key: string;
  label: string;
  better: Better;
  /** teal's figure comes from another workload key (its second snapshot path). */
  teal?: string;
  /** The COPY pipe limit's rows/s belongs in this row. */
  pipe?: boolean;
  goals?: Goal[];
}

const RSS_GOAL: Goal[] = [{ vs: 'value', max: 400 }];
const OWN = 'own process';
const ALL = 'with walsender, backends, broker';

/** The cost rows every bulk workload has: own process and everything it needs. */
function costRows(workload: string, what: string, teal?: string): Row[] {
  return [
    {
      workload,
      teal,
      key: 'peakRssMiB',
      label: `${what} peak RSS MiB, ${OWN}`,
      better: 'low',
      goals: RSS_GOAL,
    },
    { workload, teal, key: 'allPeakRssMiB', label: `${what} peak RSS MiB, ${ALL}`, better: 'low' },
    { workload, teal, key: 'cpuSeconds', label: `${what} CPU s, ${OWN}`, better: 'low' },
    { workload, teal, key: 'allCpuSeconds', label: `${what} CPU s, ${ALL}`, better: 'low' },
  ];
}

const SNAPSHOT_GOALS: Goal[] = [
  { vs: 'pipe', min: 0.7 },
  { vs: 'native', min: 1.0 },
];

const ROWS: Row[] = [
  {
    workload: 'snapshot',
    key: 'rowsPerSec',
    label: 'snapshot rows/s, teal direct copy',
    better: 'high',
    pipe: true,
    goals: SNAPSHOT_GOALS,
  },
  {
    workload: 'snapshot',
    teal: 'snapshotKafka',
    key: 'rowsPerSec',
    label: 'snapshot rows/s, teal via Kafka',
    better: 'high',
    pipe: true,
  },
  {
    workload: 'snapshot',
    key: 'mbPerSec',
    label: 'snapshot MB/s of table size, teal direct',
    better: 'high',
  },
  { workload: 'snapshot', key: 'seconds', label: 'snapshot s (incl. start-up), teal direct', better: 'low' },
  {
    workload: 'snapshot',
    teal: 'snapshotKafka',
    key: 'seconds',
    label: 'snapshot s (incl. start-up), teal via Kafka',
    better: 'low',
  },
  { workload: 'snapshot', key: 'startupSeconds', label: 'start-up s (until ready/RUNNING)', better: 'low' },
  ...costRows('snapshot', 'snapshot (teal direct)'),
  ...costRows('snapshot', 'snapshot (teal via Kafka)', 'snapshotKafka'),
  {
    workload: 'catchup',
    key: 'rowsPerSec',
    label: 'catch-up changes/s',
    better: 'high',
    goals: [{ vs: 'native', min: 1.0 }],
  },
  { workload: 'catchup', key: 'seconds', label: 'catch-up drain s', better: 'low' },
  ...costRows('catchup', 'catch-up'),
  {
    workload: 'steady',
    key: 'lagP50Ms',
    label: 'steady lag p50 ms',
    better: 'low',
    goals: [{ vs: 'value', max: 20 }],
  },
  { workload: 'steady', key: 'lagP95Ms', label: 'steady lag p95 ms', better: 'low' },
  {
    workload: 'steady',
    key: 'lagP99Ms',
    label: 'steady lag p99 ms',
    better: 'low',
    goals: [{ vs: 'value', max: 100 }],
  },
  { workload: 'steady', key: 'lagMaxMs', label: 'steady lag max ms', better: 'low' },
  { workload: 'steady', key: 'tps', label: 'steady pgbench tps reached', better: 'high' },
  // teal's own histograms: the steady lag split by hop (the mean over batches, not the probe's).
  ...LATENCY_POINTS.map((point) => ({
    workload: 'steady',
    key: latencyKey(point),
    label: `steady mean ms, blue commit → ${point}`,
    better: 'low' as const,
  })),
  ...costRows('steady', 'steady'),
  {
    workload: 'bigtx',
    key: 'applySeconds',
    label: 'big tx: commit -> in green s',
    better: 'low',
    goals: [{ vs: 'native', max: 1.0 }],
  },
  { workload: 'bigtx', key: 'rowsPerSec', label: 'big tx rows/s (after commit)', better: 'high' },
  {
    workload: 'bigtx',
    key: 'rssGrowthMiB',
    label: 'big tx RSS growth MiB (peak - at its start)',
    better: 'low',
  },
  ...costRows('bigtx', 'big tx'),
  {
    workload: 'cutover',
    key: 'onlineVerifySeconds',
    label: 'cutover: online verify s (before the fence)',
    better: 'low',
  },
  {
    workload: 'cutover',
    key: 'onlineRoundSeconds',
    label: 'cutover: last online round s (changed keys only)',
    better: 'low',
  },
  { workload: 'cutover', key: 'windowMs', label: 'cutover: fenced window ms (delta verify)', better: 'low' },
  { workload: 'cutover', key: 'fenceMs', label: 'cutover: fence ms', better: 'low' },
  { workload: 'cutover', key: 'drainMs', label: 'cutover: drain ms', better: 'low' },
  { workload: 'cutover', key: 'sequencesMs', label: 'cutover: sequences ms', better: 'low' },
  { workload: 'cutover', key: 'verifyMs', label: 'cutover: delta verify ms', better: 'low' },
  { workload: 'cutover', key: 'deltaKeys', label: 'cutover: keys re-checked in the window', better: 'low' },
  {
    workload: 'cutover',
    key: 'fullWindowMs',
    label: 'cutover: fenced window ms (--full-verify)',
    better: 'low',
  },
  { workload: 'cutover', key: 'fullVerifyMs', label: 'cutover: full verify ms', better: 'low' },
];

function fmt(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '-';
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

const usable = (v: number | undefined): v is number => v !== undefined && Number.isFinite(v);

/** teal divided by the other figure. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return usable(a) && usable(b) && b !== 0 ? a / b : undefined;
}

const x = (r: number | undefined) => (r === undefined ? '-' : `${r.toFixed(2)}x`);

/** How many times better teal is than another system: the sense of "stays >= 4x Debezium". */
export function advantage(teal: number | undefined, other: number | undefined, better: Better) {
  return better === 'high' ? ratio(teal, other) : ratio(other, teal);
}

/** "median (min-max)" when there were several runs. */
function cell(runs: Record<string, Outcome>[] | undefined, w: string, k: string, med: number | undefined) {
  const s = runs ? spread(runs, w, k) : undefined;
  return s ? `${fmt(med)} (${fmt(s[0])}-${fmt(s[1])})` : fmt(med);
}

/** The issue's goals for one row, each "met" or "not met" (with the factor in the goal's own sense). */
export function goalText(
  row: { better: Better; goals?: Goal[] },
  teal: number | undefined,
  other: { pipe?: number; native?: number; debezium?: number },
): string {
  const out: string[] = [];
  const judge = (r: number | undefined, g: Goal) =>
    r === undefined
      ? 'not measured'
      : (g.min === undefined || r >= g.min) && (g.max === undefined || r <= g.max)
        ? 'met'
        : 'not met';
  for (const g of row.goals ?? []) {
    const bound = g.min !== undefined ? `>= ${g.min}` : `<= ${g.max}`;
    if (g.vs === 'value') out.push(`${bound}: ${judge(usable(teal) ? teal : undefined, g)}`);
    else out.push(`${bound}x ${g.vs}: ${judge(ratio(teal, other[g.vs]), g)}`);
  }
  // "stays >= 4x Debezium on every row of the table"
  const adv = advantage(teal, other.debezium, row.better);
  if (adv !== undefined) out.push(`4x Debezium: ${adv >= 4 ? 'met' : 'not met'} (${adv.toFixed(1)}x)`);
  return out.join('; ') || '';
}

function mainTable(r: Report, lines: string[]): void {
  const names = Object.keys(r.systems);
  const others = ['native', 'debezium'].filter((n) => names.includes(n));
  const hasTeal = names.includes('teal');
  const pipe = r.limit?.rowsPerSec;
  const header = ['metric', ...names, ...(pipe !== undefined ? ['COPY pipe'] : [])];
  if (hasTeal) {
    if (pipe !== undefined) header.push('teal x pipe');
    for (const o of others) header.push(`teal x ${o}`);
    header.push('issue 15 goal');
  }
  lines.push(`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`);
  for (const row of ROWS) {
    const wOf = (n: string) => (n === 'teal' && row.teal ? row.teal : row.workload);
    const vals = names.map((n) => r.systems[n].median[wOf(n)]?.[row.key]);
    if (vals.every((v) => v === undefined)) continue;
    const cells = [
      row.label,
      ...names.map((n, i) => cell(r.systems[n].runs, wOf(n), row.key, vals[i])),
      ...(pipe !== undefined
        ? [
            row.pipe
              ? cell(
                  r.limitRuns?.map((l) => ({ limit: l })),
                  'limit',
                  'rowsPerSec',
                  pipe,
                )
              : '',
          ]
        : []),
    ];
    if (hasTeal) {
      const t = r.systems.teal.median[wOf('teal')]?.[row.key];
      const other = {
        pipe: row.pipe ? pipe : undefined,
        native: r.systems.native?.median[row.workload]?.[row.key],
        debezium: r.systems.debezium?.median[row.workload]?.[row.key],
      };
      if (pipe !== undefined) cells.push(row.pipe ? x(ratio(t, pipe)) : '');
      for (const o of others) cells.push(x(ratio(t, other[o as 'native' | 'debezium'])));
      cells.push(goalText(row, t, other));
    }
    lines.push(`| ${cells.join(' | ')} |`);
  }
}

/** 1 TB (10^12 bytes) at `mbPerSec` (10^6 bytes/s), as "h:mm". */
export function terabyteTime(mbPerSec: number | undefined): string {
  if (!usable(mbPerSec) || mbPerSec <= 0) return '-';
  const minutes = Math.round(1e6 / mbPerSec / 60);
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** MB/s once started: start-up is paid once, so a projection to 1 TB goes by the rate after it. */
export function afterStartup(m: Outcome | undefined): number | undefined {
  if (!ok(m) || !usable(m.bytes) || !usable(m.seconds)) return undefined;
  const copying = m.seconds - (usable(m.startupSeconds) ? m.startupSeconds : 0);
  return copying > 0 ? m.bytes / 1e6 / copying : undefined;
}

function scalingTable(s: ScalingResult, lines: string[]): void {
  const scales = s.scales;
  const largest = String(scales[scales.length - 1]);
  lines.push(
    '',
    'Scaling: snapshot of pgbench_accounts at growing sizes (one run each; rows/s and MB/s of the tables' +
      ' on disk, pg_total_relation_size; the COPY pipe copies pgbench_accounts alone)',
    '',
  );
  const header = [
    'system',
    ...scales.map((sc) => `rows/s at ${fmt(sc * 100_000)} rows`),
    `largest / smallest`,
    `MB/s at ${fmt(Number(largest) * 100_000)} rows`,
    'MB/s after start-up',
    '1 TB at MB/s after start-up',
    'peak RSS MiB, own process (smallest -> largest)',
  ];
  lines.push(`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`);
  for (const [name, bySize] of Object.entries(s.systems)) {
    const rate = (sc: number) => {
      const m = bySize[String(sc)];
      return ok(m) ? m.rowsPerSec : undefined;
    };
    const last = bySize[largest];
    const cells = [
      name === 'limit' ? 'COPY pipe (pgbench_accounts)' : name,
      ...scales.map((sc) => {
        const m = bySize[String(sc)];
        return m && 'error' in m ? 'failed' : fmt(rate(sc));
      }),
      x(ratio(rate(scales[scales.length - 1]), rate(scales[0]))),
      fmt(ok(last) ? last.mbPerSec : undefined),
      fmt(afterStartup(last)),
      terabyteTime(afterStartup(last)),
      scales
        .map((sc) => {
          const m = bySize[String(sc)];
          return fmt(ok(m) ? m.peakRssMiB : undefined);
        })
        .join(' -> '),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  const failed = Object.entries(s.systems).flatMap(([n, by]) =>
    Object.entries(by)
      .filter(([, m]) => 'error' in m)
      .map(([sc, m]) => `- ${n} at scale ${sc}: ${(m as { error: string }).error}`),
  );
  if (failed.length) lines.push('', ...failed);
}

export function markdown(r: Report): string {
  const names = Object.keys(r.systems);
  const lines: string[] = [];
  lines.push(`# teal benchmark ${r.date}`, '');
  lines.push(`Command: \`${r.command}\`${r.commit ? ` at commit ${r.commit}` : ''}`, '');
  lines.push(
    `Machine: ${r.machine.cpus} cores (${r.machine.model}), ${r.machine.memGiB} GiB, Linux ${r.machine.kernel}, Node ${r.machine.node}; ` +
      'blue, green, Kafka and the pipeline share it.' +
      (r.load
        ? ` Load average (1/5/15 min) at start ${r.load.start.join(' / ')}` +
          (r.load.end ? `, at end ${r.load.end.join(' / ')}` : '') +
          '.'
        : ''),
    '',
  );
  const o = r.options;
  const runs = Number(o.runs);
  // A scaling-only run has systems but no runs of the main workloads.
  if (names.some((n) => r.systems[n].runs.length)) {
    lines.push(
      `Sizes: pgbench scale ${o.scale} (${Number(o.scale) * 100000} accounts), catch-up ${o.catchupChanges} changes, ` +
        `steady ${o.steadySeconds} s at --rate ${o.rate}, big tx ${o.bigTxRows} rows; ` +
        (runs > 1
          ? `snapshot, catch-up, big tx and the COPY pipe ${runs} runs each on fresh data: median (min-max); steady and cutover once (steady's percentiles are over its whole run).`
          : 'one run.'),
      '',
    );
    mainTable(r, lines);
  }
  if (r.limit) {
    lines.push(
      '',
      `COPY pipe (blue -> green through two psql processes, pgbench_accounts only): ` +
        `${fmt(r.limit.rowsPerSec)} rows/s (${fmt(r.limit.rows)} rows in ${fmt(r.limit.seconds)} s, median).`,
    );
  }
  if (r.scaling) scalingTable(r.scaling, lines);
  const errors = names.flatMap((n) =>
    r.systems[n].runs.flatMap((run, i) =>
      Object.entries(run)
        .filter(([, m]) => 'error' in m)
        .map(([w, m]) => `- ${n} run ${i + 1} ${w}: ${(m as { error: string }).error}`),
    ),
  );
  if (errors.length) lines.push('', 'Failures:', ...errors);
  const notes = names.flatMap((n) => [...new Set(r.systems[n].notes ?? [])].map((t) => `- ${n}: ${t}`));
  if (notes.length) lines.push('', 'Notes:', ...notes);
  if (names.some((n) => Object.keys(r.systems[n].processes).length)) {
    lines.push('', 'Per process (last run): peak RSS MiB / CPU s', '');
    lines.push(
      '| system | workload | process | counted as | peak RSS MiB | CPU s |',
      '|---|---|---|---|---|---|',
    );
    for (const n of names)
      for (const [w, procs] of Object.entries(r.systems[n].processes))
        for (const [label, u] of Object.entries(procs))
          lines.push(
            `| ${n} | ${w} | ${label} | ${u.kind ?? 'own'} | ${fmt(u.peakRssMiB)} | ${fmt(u.cpuSeconds)} |`,
          );
    lines.push(
      '',
      '"teal x native" and the others are teal divided by the other system (rows/s, tps: higher is better; s, ms, MiB: lower is better); ' +
        'the goal column gives issue 15\'s goals in their own sense ("4x Debezium" = Debezium needs 4x the time, memory or CPU, or reaches a quarter of the rate). ' +
        `"${OWN}": the system's own process (teal run; Connect's JVM; native's apply and table-sync workers), RSS of the largest one. ` +
        `"${ALL}": also blue's walsender and the system's other blue sessions, the green sessions that write for it and, for teal and Debezium, the Kafka broker ` +
        "(CPU summed; RSS = the largest sum over one 250 ms sample). Every RSS is less shared memory (RssShmem: Postgres's shared buffers, " +
        "the cluster's cache whoever replicates; a native worker's VmRSS was mostly the buffers it touched). " +
        'The broker is shared: whatever else uses it during a run is in its CPU.',
    );
  }
  return lines.join('\n') + '\n';
}
