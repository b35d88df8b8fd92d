import { execFileSync } from 'node:child_process';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { median } from './util.ts';

export type Metrics = Record<string, number>;

export interface SystemResult {
  runs: Record<string, Metrics | { error: string }>[];
  median: Record<string, Metrics>;
  processes: Record<string, Record<string, { peakRssMiB: number; cpuSeconds: number }>>;
  notes?: string[];
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
  systems: Record<string, SystemResult>;
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

/** Median of every numeric metric over the runs that produced it. */
export function medians(runs: Record<string, Metrics | { error: string }>[]): Record<string, Metrics> {
  const out: Record<string, Metrics> = {};
  const workloads = new Set(runs.flatMap((r) => Object.keys(r)));
  for (const w of workloads) {
    const ok = runs.map((r) => r[w]).filter((m): m is Metrics => !!m && !('error' in m));
    if (!ok.length) continue;
    const keys = new Set(ok.flatMap((m) => Object.keys(m)));
    out[w] = {};
    for (const k of keys) out[w][k] = median(ok.map((m) => m[k]).filter((v) => typeof v === 'number'));
  }
  return out;
}

const ROWS: { workload: string; key: string; label: string; better: 'high' | 'low' }[] = [
  { workload: 'snapshot', key: 'rowsPerSec', label: 'snapshot rows/s', better: 'high' },
  { workload: 'snapshot', key: 'seconds', label: 'snapshot s (incl. start-up)', better: 'low' },
  { workload: 'snapshot', key: 'startupSeconds', label: 'start-up s (until ready/RUNNING)', better: 'low' },
  { workload: 'snapshot', key: 'peakRssMiB', label: 'snapshot peak RSS MiB', better: 'low' },
  { workload: 'snapshot', key: 'cpuSeconds', label: 'snapshot CPU s', better: 'low' },
  { workload: 'catchup', key: 'rowsPerSec', label: 'catch-up changes/s', better: 'high' },
  { workload: 'catchup', key: 'seconds', label: 'catch-up drain s', better: 'low' },
  { workload: 'catchup', key: 'cpuSeconds', label: 'catch-up CPU s', better: 'low' },
  { workload: 'steady', key: 'lagP50Ms', label: 'steady lag p50 ms', better: 'low' },
  { workload: 'steady', key: 'lagP95Ms', label: 'steady lag p95 ms', better: 'low' },
  { workload: 'steady', key: 'lagP99Ms', label: 'steady lag p99 ms', better: 'low' },
  { workload: 'steady', key: 'lagMaxMs', label: 'steady lag max ms', better: 'low' },
  { workload: 'steady', key: 'tps', label: 'steady pgbench tps reached', better: 'high' },
  { workload: 'steady', key: 'cpuSeconds', label: 'steady CPU s', better: 'low' },
  { workload: 'steady', key: 'peakRssMiB', label: 'steady peak RSS MiB', better: 'low' },
  { workload: 'bigtx', key: 'applySeconds', label: 'big tx: commit -> in green s', better: 'low' },
  { workload: 'bigtx', key: 'rowsPerSec', label: 'big tx rows/s (after commit)', better: 'high' },
  { workload: 'bigtx', key: 'peakRssMiB', label: 'big tx peak RSS MiB', better: 'low' },
  {
    workload: 'bigtx',
    key: 'rssGrowthMiB',
    label: 'big tx RSS growth MiB (peak - at its start)',
    better: 'low',
  },
  { workload: 'bigtx', key: 'cpuSeconds', label: 'big tx CPU s', better: 'low' },
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

function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '-';
  return `${(a / b).toFixed(2)}x`;
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
  lines.push(
    `Sizes: pgbench scale ${o.scale} (${Number(o.scale) * 100000} accounts), catch-up ${o.catchupChanges} changes, ` +
      `steady ${o.steadySeconds} s at --rate ${o.rate}, big tx ${o.bigTxRows} rows; runs: ${o.runs} (medians).`,
    '',
  );
  const hasTeal = names.includes('teal');
  const header = ['metric', ...names];
  if (hasTeal && names.includes('native')) header.push('teal/native');
  if (hasTeal && names.includes('debezium')) header.push('teal/debezium');
  lines.push(`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`);
  for (const row of ROWS) {
    const vals = names.map((n) => r.systems[n].median[row.workload]?.[row.key]);
    if (vals.every((v) => v === undefined)) continue;
    const cells = [row.label, ...vals.map(fmt)];
    const t = r.systems.teal?.median[row.workload]?.[row.key];
    if (hasTeal && names.includes('native'))
      cells.push(ratio(t, r.systems.native.median[row.workload]?.[row.key]));
    if (hasTeal && names.includes('debezium'))
      cells.push(ratio(t, r.systems.debezium.median[row.workload]?.[row.key]));
    lines.push(`| ${cells.join(' | ')} |`);
  }
  if (r.limit) {
    lines.push(
      '',
      `Limit (COPY blue -> green through two psql processes, pgbench_accounts only): ` +
        `${fmt(r.limit.rowsPerSec)} rows/s (${fmt(r.limit.rows)} rows in ${fmt(r.limit.seconds)} s).`,
    );
  }
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
  lines.push('', 'Per process (last run): peak RSS MiB / CPU s', '');
  lines.push('| system | workload | process | peak RSS MiB | CPU s |', '|---|---|---|---|---|');
  for (const n of names)
    for (const [w, procs] of Object.entries(r.systems[n].processes))
      for (const [label, u] of Object.entries(procs))
        lines.push(`| ${n} | ${w} | ${label} | ${fmt(u.peakRssMiB)} | ${fmt(u.cpuSeconds)} |`);
  lines.push(
    '',
    'Ratios are teal divided by the other system (for rows/s and tps higher is better; for seconds, ms, MiB lower is better). ' +
      "CPU s sums the pipeline processes including blue's walsender; Postgres backends writing green and the Kafka broker are not counted.",
  );
  return lines.join('\n') + '\n';
}
