import cliProgress from 'cli-progress';
import type { ProgressStream } from './format.ts';

// Progress of work per table (snapshot into green, verify): on a TTY one cli-progress bar per
// table, redrawn in place; elsewhere (a pipe, a log file, CI) no redraws, one plain line per
// table at the end. The line itself is progressLine(), shared with `teal status`.

export interface ProgressFigures {
  done: number;
  /** 0 or less: not known (yet). */
  total: number;
  /** Rows per second, null before there is a second sample. */
  rate: number | null;
  etaSeconds: number | null;
}

const BAR_WIDTH = 20;

/** 12345678 -> "12,345,678" (grouping fixed, so output and tests do not depend on the locale). */
export function count(n: number): string {
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** 42 -> "42s", 312 -> "5m12s", 7300 -> "2h01m". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** "public.users   [##########..........]  50%  5,000/10,000 rows  2,100 rows/s  ETA 2s" */
export function progressLine(label: string, f: ProgressFigures, labelWidth = 24): string {
  const known = f.total > 0;
  const ratio = known ? Math.min(1, f.done / f.total) : 0;
  const filled = Math.round(ratio * BAR_WIDTH);
  const bar = known
    ? `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`
    : `[${'?'.repeat(BAR_WIDTH)}]`;
  const pct = known ? `${String(Math.floor(ratio * 100)).padStart(3)}%` : '   ?';
  const rows = `${count(f.done)}/${known ? count(f.total) : '?'} rows`;
  const rate = f.rate === null ? '' : `  ${count(f.rate)} rows/s`;
  const eta =
    f.done >= f.total && known ? '  done' : f.etaSeconds === null ? '' : `  ETA ${duration(f.etaSeconds)}`;
  return `${label.padEnd(labelWidth)} ${bar} ${pct}  ${rows}${rate}${eta}`;
}

/**
 * Rate and ETA per table from successive (done, time) samples: the average since the table
 * was first seen, steady enough to read at a glance (a snapshot's rate moves little).
 */
export class RateTracker {
  private readonly first = new Map<string, { done: number; at: number }>();

  figures(key: string, done: number, total: number, at: number): ProgressFigures {
    const first = this.first.get(key);
    if (!first || done < first.done) {
      this.first.set(key, { done, at });
      return { done, total, rate: null, etaSeconds: null };
    }
    const seconds = (at - first.at) / 1000;
    const rate = seconds > 0 ? (done - first.done) / seconds : null;
    const etaSeconds = rate && rate > 0 && total > done ? (total - done) / rate : null;
    return { done, total, rate, etaSeconds };
  }
}

/** The progress of several tables at once (see the top of this file). */
export class TableProgress {
  private readonly multi: cliProgress.MultiBar | undefined;
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private readonly latest = new Map<string, { done: number; total: number; started: number; at: number }>();
  private readonly labelWidth: number;
  private readonly now: () => number;

  constructor(
    private readonly out: ProgressStream,
    options: { labelWidth?: number; now?: () => number } = {},
  ) {
    this.labelWidth = options.labelWidth ?? 24;
    this.now = options.now ?? Date.now;
    if (out.isTTY !== true) return;
    this.multi = new cliProgress.MultiBar({
      stream: out as NodeJS.WritableStream,
      format: (_options, params, payload: { label: string }) => {
        const seconds = (Date.now() - params.startTime) / 1000;
        return progressLine(
          payload.label,
          {
            done: params.value,
            total: params.total,
            rate: seconds >= 1 ? params.value / seconds : null,
            etaSeconds: Number.isFinite(params.eta) && params.value > 0 ? params.eta : null,
          },
          this.labelWidth,
        );
      },
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      autopadding: false,
      etaBuffer: 20,
      fps: 5,
    });
  }

  get interactive(): boolean {
    return this.multi !== undefined;
  }

  update(label: string, done: number, total: number): void {
    const at = this.now();
    const seen = this.latest.get(label);
    this.latest.set(label, { done, total, started: seen?.started ?? at, at });
    if (!this.multi) return;
    const bar = this.bars.get(label);
    if (!bar) {
      this.bars.set(label, this.multi.create(Math.max(total, 0), done, { label }));
      return;
    }
    if (total !== bar.getTotal()) bar.setTotal(Math.max(total, 0));
    bar.update(done);
  }

  /** Ends the bars (the last frame stays on screen); without a TTY, one line per table. */
  stop(): void {
    if (this.multi) {
      this.multi.stop();
      return;
    }
    for (const [label, t] of this.latest) {
      const seconds = (t.at - t.started) / 1000;
      this.out.write(
        `${progressLine(label, { done: t.done, total: t.total, rate: seconds >= 1 ? t.done / seconds : null, etaSeconds: null }, this.labelWidth)}  (${seconds.toFixed(1)} s)\n`,
      );
    }
  }
}
