import { randomUUID } from 'node:crypto';
import { formatLsn, type Lsn, type Row, type TableSchema } from '@teal/change-event';
import { emitWatermark } from '@teal/postgres';
import type { TealMetrics } from '@teal/runtime';
import type pg from 'pg';
import type { EventPublisher } from './event-publisher.ts';
import type { TableProgress } from './initial-snapshot.ts';
import { estimateRows, keyId, keyValues, nowUs, readChunk, snapshotEvent } from './snapshot-reader.ts';
import type { StateStore } from './state-store.ts';

// Snapshot of a table while the stream runs (a table added later, or the rest of an
// initial snapshot interrupted by a restart), by the watermark method of DBLog / Debezium's
// incremental snapshot. Per chunk:
//   1. emit a low watermark  pg_logical_emit_message(false, 'teal.watermark', '<id>:low')
//   2. read the chunk (keyset after the last recorded key) into memory
//   3. emit the high watermark '<id>:high'
// In the stream, every key that an event changes between the chunk's low and high
// watermark is dropped from the chunk (the stream event is newer; a truncate drops it all).
// At the high watermark the remaining rows are published, in stream order, as op 'r' with
// position (high watermark LSN, ordinal): after everything committed before it and before
// everything committed after it, so each key's order holds without pausing the stream.
// Once Kafka acknowledged the chunk, its last key goes to teal.snapshot_progress: a restart
// resumes after the last recorded chunk.

interface ChunkWindow {
  readonly id: string;
  readonly table: TableSchema;
  readonly name: string;
  open: boolean;
  truncated: boolean;
  readonly dirty: Set<string>;
  rows?: Row[];
  resolve(highLsn: Lsn): void;
  reject(err: unknown): void;
}

export interface ChunkSnapshotOptions {
  blue: pg.Pool;
  store: StateStore;
  chunkRows: number;
  progress: Map<string, TableProgress>;
  metrics?: TealMetrics;
  /** Resolves when a stream session is running (the watermarks need a reader). */
  streaming(): Promise<void>;
  signal: AbortSignal;
  onError?(err: unknown, table: string): void;
  /** Test hook: runs between reading a chunk and emitting its high watermark (the race the method handles). */
  afterChunkRead?(table: string, rows: readonly Row[]): Promise<void>;
}

export class ChunkSnapshotter {
  private readonly windows = new Map<string, ChunkWindow>();
  private readonly openWindows = new Map<string, ChunkWindow[]>();

  constructor(private readonly opts: ChunkSnapshotOptions) {}

  /** True while some chunk of `table` waits for its high watermark (cheap check per event). */
  watching(name: string): boolean {
    return (this.openWindows.get(name)?.length ?? 0) > 0;
  }

  /** A stream event of `name` with `key` (empty for a truncate), in stream order. */
  onChange(name: string, key: Row, truncate: boolean): void {
    for (const w of this.openWindows.get(name) ?? []) {
      if (truncate) w.truncated = true;
      else w.dirty.add(keyId(w.table, key));
    }
  }

  /** A teal.watermark message reached the stream at `lsn`. Publishes the chunk at its high mark. */
  async onWatermark(content: string, lsn: Lsn, publisher: EventPublisher): Promise<void> {
    const colon = content.lastIndexOf(':');
    const w = this.windows.get(content.slice(0, colon));
    if (!w) return; // a watermark of an earlier run or another process
    const mark = content.slice(colon + 1);
    if (mark === 'low') {
      w.open = true;
      const list = this.openWindows.get(w.name) ?? [];
      list.push(w);
      this.openWindows.set(w.name, list);
      return;
    }
    if (mark !== 'high' || !w.open) return;
    this.close(w);
    const rows = w.truncated ? [] : (w.rows ?? []).filter((row) => !w.dirty.has(keyId(w.table, row)));
    const codec = await publisher.prepare(w.table);
    const timeUs = nowUs();
    let ordinal = 0;
    for (const row of rows) {
      publisher.addEvent(codec, snapshotEvent(w.table, row, lsn, ++ordinal, timeUs));
      if (publisher.saturated) await publisher.waitForCapacity();
    }
    publisher.afterAck(() => w.resolve(lsn));
  }

  /** The stream session ended: chunks in flight are read again by their drivers. */
  abortWindows(err: unknown): void {
    for (const w of [...this.windows.values()]) {
      this.close(w);
      w.reject(err);
    }
  }

  /**
   * Snapshots, one after the other, every table of `tables` whose snapshot_progress row is not
   * `done` (added later, or left by an interrupted initial snapshot), after its last recorded key.
   */
  async resumeUnfinished(tables: ReadonlyMap<string, TableSchema>): Promise<void> {
    const recorded = await this.opts.store.readProgress();
    for (const [name, row] of recorded) {
      if (tables.has(name) && row.state === 'done') {
        this.opts.progress.set(name, {
          table: name,
          state: 'done',
          rowsDone: row.rowsDone,
          rowsEstimated: row.rowsEstimated,
        });
      }
    }
    const pending = [...tables].filter(([name]) => recorded.get(name)?.state !== 'done');
    for (const [name, table] of pending) {
      const row = recorded.get(name);
      const estimate = await estimateRows(this.opts.blue, table.schema, table.table);
      await this.snapshotTable(table, row?.lastKey ?? null, row?.rowsDone ?? 0, estimate);
    }
  }

  /** Snapshots `table` chunk by chunk after `lastKey` until a short chunk; retries chunks across stream restarts. */
  async snapshotTable(
    table: TableSchema,
    lastKey: string[] | null,
    rowsDone: number,
    rowsEstimated: number,
  ): Promise<void> {
    const name = `${table.schema}.${table.table}`;
    const entry: TableProgress = { table: name, state: 'running', rowsDone, rowsEstimated };
    this.opts.progress.set(name, entry);
    let key = lastKey;
    while (!this.opts.signal.aborted) {
      try {
        await this.opts.streaming();
        const { rows, highLsn } = await this.chunk(table, name, key);
        entry.rowsDone += rows.length;
        this.opts.metrics?.snapshotRows.inc({ table: name }, rows.length);
        const last = rows.length > 0 ? keyValues(table, rows[rows.length - 1]) : key;
        const done = rows.length < this.opts.chunkRows;
        await this.opts.store.writeProgress({
          schema: table.schema,
          table: table.table,
          state: done ? 'done' : 'running',
          lastKey: last,
          rowsDone: entry.rowsDone,
          rowsEstimated,
          snapshotLsn: formatLsn(highLsn),
        });
        key = last;
        if (done) {
          entry.state = 'done';
          return;
        }
      } catch (err) {
        if (this.opts.signal.aborted) return;
        this.opts.onError?.(err, name);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private async chunk(
    table: TableSchema,
    name: string,
    after: string[] | null,
  ): Promise<{ rows: Row[]; highLsn: Lsn }> {
    const id = randomUUID();
    let resolve!: (lsn: Lsn) => void;
    let reject!: (err: unknown) => void;
    const published = new Promise<Lsn>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    published.catch(() => {});
    const w: ChunkWindow = {
      id,
      table,
      name,
      open: false,
      truncated: false,
      dirty: new Set(),
      resolve,
      reject,
    };
    this.windows.set(id, w);
    try {
      await this.emit(`${id}:low`);
      const rows = await readChunk(this.opts.blue, table, after, this.opts.chunkRows);
      w.rows = rows;
      await this.opts.afterChunkRead?.(name, rows);
      await this.emit(`${id}:high`);
      const highLsn = await published;
      return { rows, highLsn };
    } finally {
      this.close(w);
      this.windows.delete(id);
    }
  }

  private close(w: ChunkWindow): void {
    const list = this.openWindows.get(w.name);
    if (!list) return;
    const rest = list.filter((x) => x !== w);
    if (rest.length === 0) this.openWindows.delete(w.name);
    else this.openWindows.set(w.name, rest);
  }

  private async emit(content: string): Promise<void> {
    await emitWatermark(this.opts.blue, content);
  }
}
