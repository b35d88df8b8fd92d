import { abortableDelay, type Logger } from '@teal/runtime';

// The producer's writes to green (snapshot progress, its status row, the slot record) in
// the background, so that green being away never holds back blue -> Kafka: Kafka is the
// buffer, and green's state only tells a restart where to resume. Each key keeps only its
// latest value (a newer progress row of a table supersedes the older one), and the keys are
// flushed in the order they were set; a failed write waits with a capped backoff and
// is tried again, unless a newer value of its key replaced it meanwhile.

export interface GreenStateWriterOptions {
  log: Logger;
  signal: AbortSignal;
  initialDelayMs?: number;
  maxDelayMs?: number;
}

export interface GreenReachability {
  /** False from a failed write (or read) until green answers again. */
  reachable: boolean;
  /** ISO time green stopped answering, while it does not. */
  unreachableSince?: string;
  lastError?: string;
  /** Writes held in memory until green answers. */
  pendingWrites: number;
}

export class GreenStateWriter {
  private readonly pending = new Map<string, { value: unknown; write: () => Promise<void> }>();
  private flushing: Promise<void> | undefined;
  private unreachableSince: Date | undefined;
  private lastError: string | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly opts: GreenStateWriterOptions) {}

  /** Replaces what is waiting under `key`; `write` is called with green reachable, maybe more than once. */
  set(key: string, value: unknown, write: () => Promise<void>): void {
    this.pending.set(key, { value, write });
    this.kick();
  }

  private kick(): void {
    this.flushing ??= this.flush().finally(() => {
      this.flushing = undefined;
      // A value set between the loop's last check and here starts the next flush.
      if (this.pending.size > 0 && !this.opts.signal.aborted) this.kick();
      else for (const wake of this.idleWaiters.splice(0)) wake();
    });
  }

  /** The value waiting under `key`, not yet in green. */
  peek(key: string): unknown {
    return this.pending.get(key)?.value;
  }

  pendingKeys(): string[] {
    return [...this.pending.keys()];
  }

  get reachability(): GreenReachability {
    const r: GreenReachability = {
      reachable: this.unreachableSince === undefined,
      pendingWrites: this.pending.size,
    };
    if (this.unreachableSince) r.unreachableSince = this.unreachableSince.toISOString();
    if (this.lastError && this.unreachableSince) r.lastError = this.lastError;
    return r;
  }

  /** A read or write of green failed (reads report here too, so status says so once). */
  failed(err: unknown, what: string): void {
    this.lastError = err instanceof Error ? err.message || String(err) : String(err);
    if (this.unreachableSince) return;
    this.unreachableSince = new Date();
    this.opts.log.warn(
      { err, what, pendingWrites: this.pending.size },
      'green does not answer: streaming to Kafka goes on; teal keeps its state in memory and writes it when green is back',
    );
  }

  /** A read or write of green succeeded. */
  answered(): void {
    if (!this.unreachableSince) return;
    const awayMs = Date.now() - this.unreachableSince.getTime();
    this.unreachableSince = undefined;
    this.lastError = undefined;
    this.opts.log.info(
      { awayMs, pendingWrites: this.pending.size },
      'green answers again; writing the state kept meanwhile',
    );
  }

  /** Resolves when nothing waits (or the writer is aborted); rejects after `timeoutMs`. */
  async idle(timeoutMs?: number): Promise<void> {
    if (!this.flushing || this.opts.signal.aborted) return;
    const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    if (timeoutMs === undefined) return idle;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(`green state not written within ${timeoutMs} ms: ${this.pendingKeys().join(', ')}`),
          ),
        timeoutMs,
      );
    });
    try {
      await Promise.race([idle, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async flush(): Promise<void> {
    const initial = this.opts.initialDelayMs ?? 200;
    const max = this.opts.maxDelayMs ?? 5_000;
    let delay = initial;
    while (this.pending.size > 0 && !this.opts.signal.aborted) {
      const [key, entry] = this.pending.entries().next().value as [
        string,
        { value: unknown; write: () => Promise<void> },
      ];
      try {
        await entry.write();
        // A newer value set during the write stays queued.
        if (this.pending.get(key) === entry) this.pending.delete(key);
        this.answered();
        delay = initial;
      } catch (err) {
        this.failed(err, key);
        // To the back of the queue, so that one write green refuses does not hold the others.
        if (this.pending.get(key) === entry) {
          this.pending.delete(key);
          this.pending.set(key, entry);
        }
        await abortableDelay(delay * (0.5 + Math.random() / 2), this.opts.signal);
        delay = Math.min(max, delay * 2);
      }
    }
  }
}
