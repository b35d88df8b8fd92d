import {
  ensureGreenState,
  readControlValue,
  readSnapshotProgress,
  type SnapshotProgressRow,
  writeControlValue,
  writeSnapshotProgress,
} from '@teal/postgres';
import type pg from 'pg';

// The producer's view of its state in green (teal.control, teal.snapshot_progress), over
// its green pool. The tables and their SQL belong to @teal/postgres; this only binds them
// to the pool, so the snapshot code takes one object it can be handed in tests.

export type { SnapshotProgressRow, SnapshotState } from '@teal/postgres';

export class StateStore {
  constructor(private readonly green: pg.Pool) {}

  /** Creates teal's state tables when missing (other components may race us). */
  init(): Promise<void> {
    return ensureGreenState(this.green);
  }

  readControl<T = unknown>(key: string): Promise<T | undefined> {
    return readControlValue<T>(this.green, key);
  }

  writeControl(key: string, value: unknown): Promise<void> {
    return writeControlValue(this.green, key, value);
  }

  /** `key` is the pipeline's `paused:<prefix>` row (controlKey in @teal/postgres). */
  async isPaused(key: string): Promise<boolean> {
    return (await this.readControl<unknown>(key)) === true;
  }

  readProgress(): Promise<Map<string, SnapshotProgressRow>> {
    return readSnapshotProgress(this.green);
  }

  writeProgress(p: SnapshotProgressRow): Promise<void> {
    return writeSnapshotProgress(this.green, p);
  }
}
