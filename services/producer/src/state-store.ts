import {
  ensureGreenState,
  readControlValue,
  readSnapshotProgress,
  type SnapshotProgressRow,
  writeControlValue,
  writeSnapshotProgress,
} from '@teal/postgres';
import { type Logger, withRetry } from '@teal/runtime';
import type pg from 'pg';
import { type GreenReachability, GreenStateWriter } from './green-state-writer.ts';

// The producer's view of its state in green (teal.control, teal.snapshot_progress), over
// its green pool. The tables and their SQL belong to @teal/postgres; this binds them to the
// pool, so the snapshot code takes one object it can be handed in tests. Writes never wait
// for green (GreenStateWriter keeps the latest value per row and writes it when green
// answers); the reads a start needs retry until green answers.

export type { SnapshotProgressRow, SnapshotState } from '@teal/postgres';

export interface StateStoreOptions {
  log: Logger;
  /** Ends the retries of reads (the producer stops). */
  signal: AbortSignal;
  retryDelayMs?: { initial: number; max: number };
}

const progressKey = (p: { schema: string; table: string }) => `progress:${p.schema}.${p.table}`;

export class StateStore {
  private readonly writer: GreenStateWriter;
  private readonly writerAbort = new AbortController();

  constructor(
    private readonly green: pg.Pool,
    private readonly opts: StateStoreOptions,
  ) {
    this.writer = new GreenStateWriter({
      log: opts.log,
      signal: this.writerAbort.signal,
      initialDelayMs: opts.retryDelayMs?.initial,
      maxDelayMs: opts.retryDelayMs?.max,
    });
  }

  get reachability(): GreenReachability {
    return this.writer.reachability;
  }

  /** Creates teal's state tables when missing (other components may race us). */
  init(): Promise<void> {
    return this.untilAnswered("teal's state tables", () => ensureGreenState(this.green));
  }

  /** Reads once; a failure is reported (green unreachable) and thrown. */
  async readControl<T = unknown>(key: string): Promise<T | undefined> {
    try {
      const value = await readControlValue<T>(this.green, key);
      this.writer.answered();
      return value;
    } catch (err) {
      this.writer.failed(err, key);
      throw err;
    }
  }

  /** For reads a start cannot do without (has the slot existed?): retries until green answers. */
  readControlUntilAnswered<T = unknown>(key: string): Promise<T | undefined> {
    const waiting = this.writer.peek(`control:${key}`);
    if (waiting !== undefined) return Promise.resolve(waiting as T);
    return this.untilAnswered(`teal.control ${key}`, () => readControlValue<T>(this.green, key));
  }

  writeControl(key: string, value: unknown): void {
    this.writer.set(`control:${key}`, value, () => writeControlValue(this.green, key, value));
  }

  /** `key` is the pipeline's `paused:<prefix>` row (controlKey in @teal/postgres). Throws when green does not answer. */
  async isPaused(key: string): Promise<boolean> {
    return (await this.readControl<unknown>(key)) === true;
  }

  /** What green holds, overlaid with the rows still waiting to be written; retries until green answers. */
  async readProgress(): Promise<Map<string, SnapshotProgressRow>> {
    const rows = await this.untilAnswered('teal.snapshot_progress', () => readSnapshotProgress(this.green));
    for (const key of this.writer.pendingKeys()) {
      if (!key.startsWith('progress:')) continue;
      const row = this.writer.peek(key) as SnapshotProgressRow;
      rows.set(`${row.schema}.${row.table}`, row);
    }
    return rows;
  }

  /** Returns at once: the row is written in the background (the latest row of a table wins). */
  async writeProgress(p: SnapshotProgressRow): Promise<void> {
    const row = { ...p };
    this.writer.set(progressKey(row), row, () => writeSnapshotProgress(this.green, row));
  }

  /** Resolves when every write reached green; rejects after `timeoutMs`. */
  flushed(timeoutMs?: number): Promise<void> {
    return this.writer.idle(timeoutMs);
  }

  /** Stops writing (what still waits is dropped). */
  close(): void {
    this.writerAbort.abort();
  }

  private async untilAnswered<T>(what: string, read: () => Promise<T>): Promise<T> {
    let warned = false;
    const value = await withRetry(read, {
      initialDelayMs: this.opts.retryDelayMs?.initial ?? 200,
      maxDelayMs: this.opts.retryDelayMs?.max ?? 5_000,
      signal: this.opts.signal,
      isRetriable: () => true,
      onRetry: (err) => {
        this.writer.failed(err, what);
        if (warned) return;
        warned = true;
        this.opts.log.warn({ err }, `waiting for green to read ${what}; retrying until it answers`);
      },
    });
    this.writer.answered();
    return value;
  }
}
