import type { Lsn, Position } from '@teal/change-event';
import { isRetriablePgError, TealError } from '@teal/errors';
import { type Logger, withRetry } from '@teal/runtime';
import { StreamSession, type StreamSessionOptions } from './stream-session.ts';

// Keeps the stream running: one StreamSession at a time, each from the LSN the previous one
// confirmed (the slot's confirmed LSN). A session that fails is closed and, if its error is
// retriable (TealError.retriable, or a transient Postgres or socket error), replaced after a
// backoff; any other error is fatal and ends run() with it. The loop only reads what a
// session confirmed, to start the next one there: acknowledging is the session's own job.

export interface StreamLoopOptions {
  /** What every session gets; each starts where the previous one confirmed. */
  session: Omit<StreamSessionOptions, 'startLsn'>;
  startLsn: Lsn;
  signal: AbortSignal;
  log: Logger;
  /** A session is streaming (called once per session). */
  onStreaming?(): void;
}

export class StreamLoop {
  private lsn: Lsn;
  private shipped: Position | undefined;
  private session: StreamSession | undefined;
  private isStreaming = false;
  private streamed = false;
  private streamingWaiters: Array<() => void> = [];

  constructor(private readonly opts: StreamLoopOptions) {
    this.lsn = opts.startLsn;
  }

  /** How far the slot is confirmed: by the running session, else by the last one. */
  get confirmedLsn(): Lsn {
    return this.session?.confirmedLsn ?? this.lsn;
  }

  /** Position of the newest streamed record Kafka acknowledged. */
  get lastShipped(): Position | undefined {
    return this.session?.lastShipped ?? this.shipped;
  }

  get streaming(): boolean {
    return this.isStreaming;
  }

  /** Resolves when a session streams, or the loop closes. */
  whenStreaming(): Promise<void> {
    if (this.isStreaming) return Promise.resolve();
    return new Promise((resolve) => this.streamingWaiters.push(resolve));
  }

  /** Runs until the signal aborts; rejects with a TealError that no restart can fix. */
  async run(): Promise<void> {
    const { signal, log } = this.opts;
    try {
      await withRetry(() => this.runSession(), {
        initialDelayMs: 200,
        maxDelayMs: 10_000,
        signal,
        // The catalog's `retriable` is the whole rule (slot or publication gone, a protocol error: not).
        isRetriable: isRetriablePgError,
        // A session that streamed and then failed restarts soon, whatever failed before it.
        madeProgress: () => this.streamedSinceFailure(),
        onRetry: (err, _attempt, delayMs) =>
          log.warn(
            { err, delayMs: Math.round(delayMs) },
            'stream failed; restarting from the slot confirmed LSN',
          ),
      });
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof TealError) throw err;
      throw new TealError('TEAL_PRODUCER_FAILED', `the replication stream failed for good: ${String(err)}`, {
        cause: err,
      });
    }
  }

  /** Closes the running session; run() then returns. */
  async close(): Promise<void> {
    for (const wake of this.streamingWaiters.splice(0)) wake();
    await this.session?.close();
  }

  private streamedSinceFailure(): boolean {
    const streamed = this.streamed;
    this.streamed = false;
    return streamed;
  }

  private async runSession(): Promise<void> {
    if (this.opts.signal.aborted) return;
    const session = new StreamSession({ ...this.opts.session, startLsn: this.lsn });
    this.session = session;
    try {
      await session.start();
      this.isStreaming = true;
      this.streamed = true;
      this.opts.onStreaming?.();
      for (const wake of this.streamingWaiters.splice(0)) wake();
      await session.run();
      if (this.opts.signal.aborted) return;
      throw new TealError('TEAL_REPLICATION_CONNECTION_LOST', 'the replication stream ended', {
        retriable: true,
      });
    } catch (err) {
      this.opts.session.chunks.abortWindows(err);
      throw err;
    } finally {
      this.isStreaming = false;
      await session.close();
      this.lsn = session.confirmedLsn;
      this.shipped = session.lastShipped ?? this.shipped;
      this.session = undefined;
    }
  }
}
