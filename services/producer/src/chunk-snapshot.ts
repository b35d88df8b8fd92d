import { randomUUID } from 'node:crypto';
import {
  type ChangeEvent,
  formatLsn,
  type Lsn,
  type PgText,
  type Row,
  type TableSchema,
} from '@teal/change-event';
import type { TealError } from '@teal/errors';
import { emitWatermark } from '@teal/postgres';
import { type TealMetrics, waitFor } from '@teal/runtime';
import type pg from 'pg';
import type { EventPublisher } from './event-publisher.ts';
import type { TableProgress } from './initial-snapshot.ts';
import {
  estimateRows,
  keyValues,
  nowUs,
  parseXidSnapshot,
  type RowChange,
  readChunkInSnapshot,
  rowChange,
  rowsAfterChanges,
  shortXid,
  snapshotEvent,
  visibleIn,
  type XidSnapshot,
} from './snapshot-reader.ts';
import type { StateStore } from './state-store.ts';

// Snapshot of a table while the stream runs (a table added later, or the rest of an initial
// snapshot interrupted by a restart), bounded by transaction ids as Debezium's read-only
// incremental snapshot does, not by LSNs: a commit is flushed (and decoded) before it becomes
// visible, so a read after a low watermark can miss a commit that precedes the watermark.
//
// While a table is snapshotted, the stream records each change of it with its transaction id.
// Per chunk:
//   1. read the chunk (keyset after the last recorded key) in a REPEATABLE READ transaction,
//      with that transaction's own pg_current_snapshot()
//   2. emit the high watermark pg_logical_emit_message(false, 'teal.watermark', '<id>:high')
// At the high watermark, every recorded change of a transaction the chunk's snapshot does not
// see (it is newer than the rows, and the stream already published it) drops its key from the
// chunk, or, for an update that left TOASTed values out, is written into the chunk's row
// (rowsAfterChanges). The remaining rows are published as op 'r' at (high watermark LSN,
// snapshotSeq(ordinal)): after everything the stream sent before them, so each key's order
// holds without pausing the stream. Changes of transactions the snapshot sees are forgotten.
// A transaction that was already committing when recording began may have been decoded before
// it: if a chunk's snapshot does not see it yet, the chunk waits for it and is read again.
// Once Kafka acknowledged the chunk, its last key goes to teal.snapshot_progress: a restart
// resumes after the last recorded chunk.

interface Recording {
  readonly table: TableSchema;
  /** Changes of the table in stream order, of transactions not yet seen by a chunk's snapshot. */
  changes: RowChange[];
  /** Transactions decoded since recording began (any table), as pgoutput's 32-bit xids. */
  readonly decoded: Set<number>;
  /** Transactions in progress when recording began: one of them may have been decoded before. */
  readonly before: Set<bigint>;
}

type ChunkOutcome = { kind: 'published'; highLsn: Lsn } | { kind: 'retry'; waitFor: bigint[] };

interface ChunkWindow {
  readonly id: string;
  readonly name: string;
  readonly recording: Recording;
  rows?: Row[];
  snapshot?: XidSnapshot;
  committing?: bigint[];
  resolve(outcome: ChunkOutcome): void;
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
  /**
   * Set when blue cannot bracket chunks with watermarks (13's pgoutput forwards no logical
   * messages): the error for snapshotting `table` by chunk, which then stops the producer.
   */
  refuse?(table: string): TealError;
  /** Called with refuse()'s error: a snapshot that cannot run is the producer's end, not a retry. */
  onFatal?(err: TealError): void;
  /** Test hook: runs between reading a chunk and emitting its high watermark (the race the method handles). */
  afterChunkRead?(table: string, rows: readonly Row[]): Promise<void>;
}

export class ChunkSnapshotter {
  private readonly windows = new Map<string, ChunkWindow>();
  private readonly recordings = new Map<string, Recording>();

  constructor(private readonly opts: ChunkSnapshotOptions) {}

  /** True while some table is snapshotted by chunk (the stream then reports its transactions). */
  get recording(): boolean {
    return this.recordings.size > 0;
  }

  /** True while `name` is snapshotted by chunk (cheap check per event). */
  watching(name: string): boolean {
    return this.recordings.has(name);
  }

  /** A transaction the stream decoded (its begin), while `recording`. */
  onTransaction(xid: number): void {
    for (const r of this.recordings.values()) r.decoded.add(xid);
  }

  /** A stream event of a table being snapshotted, in stream order. */
  onChange(name: string, event: ChangeEvent): void {
    const r = this.recordings.get(name);
    if (r) r.changes.push(rowChange(r.table, event));
  }

  /** A teal.watermark message reached the stream at `lsn`. Publishes the chunk at its high mark. */
  async onWatermark(content: string, lsn: Lsn, publisher: EventPublisher): Promise<void> {
    const colon = content.lastIndexOf(':');
    const w = this.windows.get(content.slice(0, colon));
    // A watermark of an earlier run or another process, or a low mark (older versions emitted them).
    if (!w || content.slice(colon + 1) !== 'high' || !w.snapshot) return;
    this.windows.delete(w.id);
    const rec = w.recording;
    const snapshot = w.snapshot;
    const unknown = (w.committing ?? []).filter((x) => !rec.decoded.has(shortXid(x)));
    if (unknown.length > 0) return w.resolve({ kind: 'retry', waitFor: unknown });
    const rows = rowsAfterChanges(rec.table, w.rows ?? [], snapshot, rec.changes);
    // Every later snapshot sees what this one sees: those changes are in every later chunk's rows.
    rec.changes = rec.changes.filter((c) => !visibleIn(c.xid, snapshot));
    for (const xid of rec.decoded) if (visibleIn(xid, snapshot)) rec.decoded.delete(xid);
    const codec = await publisher.prepare(rec.table);
    const timeUs = nowUs();
    let ordinal = 0;
    for (const row of rows) {
      publisher.addEvent(codec, snapshotEvent(rec.table, row, lsn, ++ordinal, timeUs));
      if (publisher.saturated) await publisher.waitForCapacity();
    }
    publisher.afterAck(() => w.resolve({ kind: 'published', highLsn: lsn }));
  }

  /** The stream session ended: chunks in flight are read again by their drivers. */
  abortWindows(err: unknown): void {
    for (const w of [...this.windows.values()]) {
      this.windows.delete(w.id);
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
    lastKey: PgText[] | null,
    rowsDone: number,
    rowsEstimated: number,
  ): Promise<void> {
    const name = `${table.schema}.${table.table}`;
    const refused = this.opts.refuse?.(name);
    if (refused) {
      this.opts.onFatal?.(refused);
      throw refused;
    }
    const entry: TableProgress = { table: name, state: 'running', rowsDone, rowsEstimated };
    this.opts.progress.set(name, entry);
    let key = lastKey;
    let rec: Recording | undefined;
    try {
      while (!this.opts.signal.aborted) {
        try {
          rec ??= await this.record(name, table);
          await this.opts.streaming();
          const outcome = await this.chunk(rec, key);
          if (outcome.kind === 'retry') {
            await this.untilVisible(outcome.waitFor);
            continue;
          }
          const { rows, highLsn } = outcome;
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
    } finally {
      if (rec && this.recordings.get(name) === rec) this.recordings.delete(name);
    }
  }

  /** Starts recording the table's changes, then notes which transactions were in progress. */
  private async record(name: string, table: TableSchema): Promise<Recording> {
    // In this order: a transaction decoded before recording began committed (in WAL) before the snapshot below.
    const rec: Recording = { table, changes: [], decoded: new Set(), before: new Set() };
    this.recordings.set(name, rec);
    try {
      const r = await this.opts.blue.query<{ s: string }>('SELECT pg_current_snapshot()::text AS s');
      for (const x of parseXidSnapshot(r.rows[0].s).xip) rec.before.add(x);
    } catch (err) {
      this.recordings.delete(name);
      throw err;
    }
    return rec;
  }

  private async chunk(
    rec: Recording,
    after: PgText[] | null,
  ): Promise<{ kind: 'published'; rows: Row[]; highLsn: Lsn } | { kind: 'retry'; waitFor: bigint[] }> {
    const id = randomUUID();
    const name = `${rec.table.schema}.${rec.table.table}`;
    let resolve!: (outcome: ChunkOutcome) => void;
    let reject!: (err: unknown) => void;
    const outcome = new Promise<ChunkOutcome>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    outcome.catch(() => {});
    const w: ChunkWindow = { id, name, recording: rec, resolve, reject };
    try {
      const read = await readChunkInSnapshot(this.opts.blue, rec.table, after, this.opts.chunkRows, [
        ...rec.before,
      ]);
      // Those the snapshot sees are over: no later chunk can miss them.
      for (const x of rec.before)
        if (!read.snapshot.xip.has(x) && x < read.snapshot.xmax) rec.before.delete(x);
      w.rows = read.rows;
      w.snapshot = read.snapshot;
      w.committing = read.committing;
      await this.opts.afterChunkRead?.(name, read.rows);
      this.windows.set(id, w);
      await emitWatermark(this.opts.blue, `${id}:high`);
      const done = await outcome;
      return done.kind === 'retry' ? done : { kind: 'published', rows: read.rows, highLsn: done.highLsn };
    } finally {
      this.windows.delete(id);
    }
  }

  /** Waits until blue's current snapshot sees every transaction of `xids` (a failure after 30 s is logged, then the chunk retried). */
  private async untilVisible(xids: readonly bigint[]): Promise<void> {
    const text = xids.map(String);
    await waitFor(
      async () =>
        (
          await this.opts.blue.query<{ n: string }>(
            'SELECT count(*)::text AS n FROM unnest($1::text[]) AS x WHERE NOT pg_visible_in_snapshot(x::xid8, pg_current_snapshot())',
            [text],
          )
        ).rows[0].n === '0' || this.opts.signal.aborted,
      { what: `transactions ${text.join(', ')}, committed but not yet visible (a synchronous standby?)` },
    );
  }
}
