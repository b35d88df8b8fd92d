import { formatLsn, type Lsn, type PgText, type Row, type TableSchema } from '@teal/change-event';
import { connectClient, quoteLiteral } from '@teal/postgres';
import type { TealMetrics } from '@teal/runtime';
import type { EventPublisher } from './event-publisher.ts';
import { estimateRows, keyValues, nowUs, readChunk, snapshotEvent } from './snapshot-reader.ts';
import type { StateStore } from './state-store.ts';

// The initial copy: every replicated table read exactly as of the slot's consistent point,
// by importing the snapshot the slot exported (SET TRANSACTION SNAPSHOT) into a REPEATABLE
// READ transaction. Rows are read in key order, chunk by chunk, and published as op 'r'
// with position (consistent point, ordinal). Progress is recorded in green after Kafka
// acknowledged each chunk (in the background: green may be away); a restart resumes the
// unfinished tables by chunk while streaming (chunk-snapshot.ts), because the exported
// snapshot dies with its connection.

export interface TableProgress {
  table: string;
  state: 'pending' | 'running' | 'done';
  rowsDone: number;
  rowsEstimated: number;
}

export interface InitialSnapshotOptions {
  blueUrl: string;
  snapshotName: string;
  consistentPoint: Lsn;
  tables: readonly TableSchema[];
  chunkRows: number;
  publisher: EventPublisher;
  store: StateStore;
  /** Live progress, shown in status(); updated in place. */
  progress: Map<string, TableProgress>;
  metrics?: TealMetrics;
  signal?: AbortSignal;
  /** Test hook: runs after each chunk is read. */
  afterChunkRead?(table: string, rows: readonly Row[]): Promise<void>;
}

export async function runInitialSnapshot(opts: InitialSnapshotOptions): Promise<void> {
  const { publisher, store, progress } = opts;
  const lsnText = formatLsn(opts.consistentPoint);
  const client = await connectClient(opts.blueUrl, { applicationName: 'teal-producer-snapshot' });
  // In ack order; the store writes them to green in the background, so green being away
  // never holds the snapshot back (the latest row of a table wins).
  const record = (row: Parameters<StateStore['writeProgress']>[0]) => void store.writeProgress(row);
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await client.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(opts.snapshotName)}`);
    for (const table of opts.tables) {
      const name = `${table.schema}.${table.table}`;
      const entry = progress.get(name) ?? { table: name, state: 'pending', rowsDone: 0, rowsEstimated: 0 };
      progress.set(name, entry);
      entry.rowsEstimated = await estimateRows(client, table.schema, table.table);
      entry.state = 'running';
      const codec = await publisher.prepare(table);
      let lastKey: PgText[] | null = null;
      let ordinal = 0;
      // The next chunk is read while this one is encoded and sent (one query ahead).
      let next: Promise<Row[]> | undefined = readChunk(client, table, null, opts.chunkRows);
      // A read left behind by a stop is not awaited: keep its rejection handled.
      next.catch(() => {});
      while (next) {
        if (opts.signal?.aborted) throw new Error('snapshot stopped');
        const rows: Row[] = await next;
        if (rows.length === 0) break;
        await opts.afterChunkRead?.(name, rows);
        lastKey = keyValues(table, rows[rows.length - 1]);
        next = rows.length < opts.chunkRows ? undefined : readChunk(client, table, lastKey, opts.chunkRows);
        next?.catch(() => {});
        const timeUs = nowUs();
        for (const row of rows) {
          publisher.addEvent(codec, snapshotEvent(table, row, opts.consistentPoint, ++ordinal, timeUs));
          if (publisher.saturated) await publisher.waitForCapacity();
        }
        const done = ordinal;
        const chunkKey = lastKey;
        const count = rows.length;
        publisher.afterAck(() => {
          entry.rowsDone = done;
          opts.metrics?.snapshotRows.inc({ table: name }, count);
          record({
            schema: table.schema,
            table: table.table,
            state: 'running',
            lastKey: chunkKey,
            rowsDone: done,
            rowsEstimated: entry.rowsEstimated,
            snapshotLsn: lsnText,
          });
        });
      }
      await publisher.drain();
      entry.state = 'done';
      entry.rowsDone = ordinal;
      record({
        schema: table.schema,
        table: table.table,
        state: 'done',
        lastKey,
        rowsDone: ordinal,
        rowsEstimated: entry.rowsEstimated,
        snapshotLsn: lsnText,
      });
    }
    await client.query('COMMIT');
  } finally {
    // Record what Kafka already holds, so that a resume by chunk starts after it.
    await publisher.drain().catch(() => {});
    await client.end().catch(() => {});
  }
}
