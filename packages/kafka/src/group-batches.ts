import { retryLogLevel } from '@teal/runtime';
import { log } from './log.ts';
import type { GroupHandlers, IncomingBatch, IncomingRecord } from './types.ts';

// What both consumer-group adapters do the same way with a fetched batch: slice it to the
// handler's byte limit and retry a failing handler in place (a batch is never skipped).

export const tpKey = (topic: string, partition: number) => `${topic}:${partition}`;

/** Bytes of one partition handed to eachBatch at once (GroupConsumerOptions.maxBytesPerPartition). */
export const DEFAULT_BATCH_BYTES = 4 * 1024 * 1024;
/** Bytes of one fetch over every partition (raised to kafka.maxMessageBytes when that is more). */
export const FETCH_BYTES = 8 * 1024 * 1024;

/** Consecutive runs of `records`, each at most `maxBytes` of keys and values (one record at least). */
export function sliceByBytes(records: IncomingRecord[], maxBytes: number): IncomingRecord[][] {
  const slices: IncomingRecord[][] = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const size = (r.key?.length ?? 0) + (r.value?.length ?? 0);
    if (i > start && bytes + size > maxBytes) {
      slices.push(records.slice(start, i));
      start = i;
      bytes = 0;
    }
    bytes += size;
  }
  if (start === 0) slices.push(records);
  else if (start < records.length) slices.push(records.slice(start));
  return slices;
}

/** Resolves when `promise` settles or after `ms`, whichever comes first. */
export async function settles(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/**
 * Hands one batch to the handler, retrying with backoff until it succeeds; false when
 * `stopped()` says the batch must be left (revoked, stale, closed: it is fetched again later).
 * `afterFailure` may end the retry too (kafkajs: a heartbeat that says the group rebalances).
 */
export async function handleInPlace(
  handlers: GroupHandlers,
  batch: IncomingBatch,
  stopped: () => boolean,
  afterFailure?: () => Promise<boolean>,
): Promise<boolean> {
  let delay = 200;
  let firstFailureAt: number | undefined;
  for (;;) {
    if (stopped()) return false;
    try {
      await handlers.eachBatch(batch);
      return true;
    } catch (err) {
      firstFailureAt ??= Date.now();
      log()[retryLogLevel(firstFailureAt)](
        { err, topic: batch.topic, partition: batch.partition },
        'batch failed; retrying in place',
      );
      if (afterFailure && (await afterFailure())) return false;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5_000);
    }
  }
}

export interface CommitOffset {
  topic: string;
  partition: number;
  offset: bigint;
}

/**
 * The group's advisory commits (green holds the authoritative position), sent together every
 * `everyMs` instead of one round trip per applied batch: the apply lane of a partition waits
 * for its commit, so at low load a per-batch commit put a broker round trip under the lag.
 */
export class CoalescedCommits {
  private readonly pending = new Map<string, CommitOffset>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly send: (offsets: CommitOffset[]) => Promise<void>,
    everyMs = 1_000,
  ) {
    this.timer = setInterval(() => void this.flush(), everyMs);
    this.timer.unref();
  }

  add(topic: string, partition: number, offset: bigint): void {
    this.pending.set(tpKey(topic, partition), { topic, partition, offset });
  }

  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const offsets = [...this.pending.values()];
    this.pending.clear();
    await this.send(offsets).catch((err) => log().debug({ err }, 'advisory offset commit failed'));
  }

  /** Sends what is pending, then stops. */
  close(): Promise<void> {
    clearInterval(this.timer);
    return this.flush();
  }
}
