import type { PipelineState, StatusReport } from './types.ts';

// The last minutes of lag, for the status page's chart (GET /status/history): a bounded
// in-memory history of what /status computes, sampled in the API process. Nothing here is
// stored: a restarted API starts an empty history.

export interface StatusSample {
  /** The status's checkedAt, ISO. */
  at: string;
  state: PipelineState;
  /**
   * Commit on blue → applied in green, seconds: the mean of the consumer's per-batch
   * observation (teal_replication_lag_seconds, newest event of each batch) over the batches
   * applied since the sample before. No batch in between: with nothing waiting in Kafka the
   * slot's lag is the whole lag; with records waiting it is unknown (null).
   */
  commitToGreenSeconds: number | null;
  /** Commit on blue → acknowledged by Kafka (the slot's lagSeconds). */
  slotLagSeconds: number | null;
  slotLagBytes: number | null;
  /** WAL blue keeps for the slot: what fills its disk. */
  retainedWalBytes: number | null;
  consumerLagRecords: number;
  deadLetters: number;
  blockedPartitions: number;
}

/** Sum and count of the commit→green histogram, as the process's registry has them. */
export interface LagTotals {
  sum: number;
  count: number;
}

export interface SamplerOptions {
  /** Between samples while nobody asks for the history. */
  idleMs: number;
  /** Between samples while the page is open (history asked for within `watchWindowMs`). */
  watchedMs: number;
  watchWindowMs: number;
  /** How much history is kept. */
  keepMs: number;
}

export const SAMPLER_DEFAULTS: SamplerOptions = {
  idleMs: 10_000,
  watchedMs: 2_000,
  watchWindowMs: 60_000,
  keepMs: 15 * 60_000,
};

/** One sample from a status and the histogram totals now and at the sample before. */
export function sampleOf(
  report: StatusReport,
  lag: LagTotals | undefined,
  before: LagTotals | undefined,
): StatusSample {
  const lagRecords = report.consumer.lagRecords;
  let commitToGreen: number | null = null;
  if (lag && before && lag.count > before.count) {
    commitToGreen = Math.max(0, (lag.sum - before.sum) / (lag.count - before.count));
  } else if (lagRecords === 0) {
    commitToGreen = report.slot?.lagSeconds ?? null;
  }
  return {
    at: report.checkedAt,
    state: report.state,
    commitToGreenSeconds: commitToGreen,
    slotLagSeconds: report.slot?.lagSeconds ?? null,
    slotLagBytes: report.slot?.lagBytes ?? null,
    retainedWalBytes: report.slot?.retainedWalBytes ?? null,
    consumerLagRecords: lagRecords,
    deadLetters: report.consumer.deadLetters,
    blockedPartitions: report.consumer.blocked.length,
  };
}

/** prom-client's histogram values (…_sum, …_count) as totals; undefined when it has none. */
export function lagTotals(
  values: ReadonlyArray<{ metricName?: string; value: number }>,
): LagTotals | undefined {
  const sum = values.find((v) => v.metricName?.endsWith('_sum'))?.value;
  const count = values.find((v) => v.metricName?.endsWith('_count'))?.value;
  return sum === undefined || count === undefined ? undefined : { sum, count };
}

export interface HistorySource {
  status(): Promise<StatusReport>;
  /** The commit→green histogram's totals, when this process applies batches (teal run, teal consumer). */
  lagTotals?(): Promise<LagTotals | undefined>;
}

export interface HistoryView {
  /** Between samples now (faster while the page is open). */
  sampleMs: number;
  keepMs: number;
  samples: StatusSample[];
}

/**
 * Samples the status on a timer, one at a time (a slow status never piles up), and keeps
 * the samples of the last `keepMs`. Faster while someone watches, so that the page's chart
 * moves within seconds without a status every 2 s in a pipeline nobody looks at.
 */
export class StatusSampler {
  private readonly opts: SamplerOptions;
  private readonly samples: StatusSample[] = [];
  private lastLag: LagTotals | undefined;
  private watchedAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private dueAt = 0;
  private running = false;
  private sampling: Promise<void> | undefined;

  constructor(
    private readonly source: HistorySource,
    opts: Partial<SamplerOptions> = {},
    private readonly onError: (err: unknown) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {
    this.opts = { ...SAMPLER_DEFAULTS, ...opts };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.sampling;
  }

  /** Someone looks at the history: sample at the faster pace from now on. */
  watched(): void {
    this.watchedAt = this.now();
    if (this.running && !this.sampling && this.dueAt > this.now() + this.opts.watchedMs) {
      this.schedule(this.opts.watchedMs);
    }
  }

  view(): HistoryView {
    this.trim();
    return { sampleMs: this.interval(), keepMs: this.opts.keepMs, samples: [...this.samples] };
  }

  /** One sample now (the timer's step; tests call it directly). */
  sample(): Promise<void> {
    this.sampling ??= this.take().finally(() => {
      this.sampling = undefined;
    });
    return this.sampling;
  }

  private async take(): Promise<void> {
    try {
      const [report, lag] = await Promise.all([this.source.status(), this.source.lagTotals?.()]);
      this.samples.push(sampleOf(report, lag, this.lastLag));
      this.lastLag = lag;
      this.trim();
    } catch (err) {
      // A status that fails (blue away) leaves a gap in the chart; /status itself says why.
      this.onError(err);
    }
  }

  private interval(): number {
    return this.now() - this.watchedAt <= this.opts.watchWindowMs ? this.opts.watchedMs : this.opts.idleMs;
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.dueAt = this.now() + ms;
    this.timer = setTimeout(async () => {
      await this.sample();
      if (this.running) this.schedule(this.interval());
    }, ms);
    // The history never keeps a process alive.
    this.timer.unref();
  }

  private trim(): void {
    const oldest = this.now() - this.opts.keepMs;
    let drop = 0;
    while (drop < this.samples.length && Date.parse(this.samples[drop]!.at) < oldest) drop++;
    // A bound on the count too, whatever the clocks say.
    drop = Math.max(drop, this.samples.length - Math.ceil(this.opts.keepMs / this.opts.watchedMs));
    if (drop > 0) this.samples.splice(0, drop);
  }
}
