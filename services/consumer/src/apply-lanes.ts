import { TealError } from '@teal/errors';
import type { IncomingBatch, TopicPartition } from '@teal/kafka';
import { abortableDelay, type Logger, retryLogLevel } from '@teal/runtime';

// Applies each partition's batches in order, one at a time, behind the Kafka fetch. kafkajs
// fetches again only after every handler of a round has returned (its fetcher waits for the
// worker queue to drain), so a handler that awaited green would leave green idle during every
// fetch and decode, and every partition waiting for the slowest. Here the handler returns once
// the previous batch of its partition is applied and the new one has started: the next round
// is fetched and decoded while green applies this one.
//
// Effectively-once does not depend on when the handler returns: green's position row, locked
// in each transaction, decides what is applied; a batch applied late, twice, or by a member
// that lost the partition meanwhile is skipped there. A failed apply is retried in place with
// backoff (as the group adapter did); the partition's next batch waits for it.

type Apply = (batch: IncomingBatch) => Promise<void>;

interface Lane {
  running: Promise<void> | undefined;
  revoked: boolean;
}

export interface ApplyLanesOptions {
  readonly log: Logger;
  readonly signal: AbortSignal;
  /** How long a handler waits for its partition's previous batch before asking the group to retry (heartbeats go out between). */
  readonly waitMs?: number;
}

const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 5_000;

export class ApplyLanes {
  private readonly lanes = new Map<string, Lane>();

  constructor(
    private readonly apply: Apply,
    private readonly options: ApplyLanesOptions,
  ) {}

  /** Starts `batch` once its partition's previous batch is applied. */
  async push(batch: IncomingBatch): Promise<void> {
    const id = `${batch.topic}:${batch.partition}`;
    let lane = this.lanes.get(id);
    if (!lane) {
      lane = { running: undefined, revoked: false };
      this.lanes.set(id, lane);
    }
    if (lane.running && !(await settlesWithin(lane.running, this.options.waitMs ?? 10_000))) {
      // The group adapter heartbeats, backs off and hands this batch back: the session stays
      // alive however long green takes (a blocked partition waits here).
      throw new TealError('TEAL_APPLY_BEHIND', `the previous batch of ${id} is still being applied`, {
        retriable: true,
      });
    }
    if (this.options.signal.aborted) throw new TealError('TEAL_STOPPING', 'the consumer is stopping');
    lane.revoked = false;
    const run = this.run(lane, id, batch);
    lane.running = run;
    void run.finally(() => {
      if (lane.running === run) lane.running = undefined;
    });
  }

  /** The member's new assignment: lanes of other partitions stop retrying. */
  assigned(partitions: readonly TopicPartition[]): void {
    const keep = new Set(partitions.map((p) => `${p.topic}:${p.partition}`));
    for (const [id, lane] of this.lanes) if (!keep.has(id)) lane.revoked = true;
  }

  /** Waits for every batch in flight (after the signal aborted, none is retried). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.lanes.values()].map((l) => l.running));
  }

  private async run(lane: Lane, id: string, batch: IncomingBatch): Promise<void> {
    const { log, signal } = this.options;
    let delay = RETRY_FIRST_MS;
    let firstFailureAt: number | undefined;
    for (;;) {
      if (signal.aborted || lane.revoked) return;
      try {
        await this.apply(batch);
        return;
      } catch (err) {
        if (signal.aborted) return;
        firstFailureAt ??= Date.now();
        log[retryLogLevel(firstFailureAt)]({ err, partition: id }, 'batch failed; retrying in place');
        await abortableDelay(delay, signal).catch(() => undefined);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }
  }
}

async function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
