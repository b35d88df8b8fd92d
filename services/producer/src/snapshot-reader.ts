import { type ChangeEvent, type Lsn, type Row, snapshotSeq, type TableSchema } from '@teal/change-event';
import { quoteIdent, quoteTable } from '@teal/postgres';
import type pg from 'pg';

// Keyset-chunked reads of one table, shared by the initial snapshot (inside the exported
// snapshot) and the chunked snapshot while streaming (plain reads between watermarks).
// Memory stays bounded by the chunk size whatever the table's size.

type Queryable = Pick<pg.ClientBase, 'query'>;

export function keyOf(table: TableSchema, row: Row): Row {
  const key: Row = {};
  for (const k of table.keyColumns) key[k] = row[k] ?? null;
  return key;
}

/** The key values in key-column order (what teal.snapshot_progress.last_key stores). */
export function keyValues(table: TableSchema, row: Row): string[] {
  return table.keyColumns.map((k) => row[k] ?? '');
}

/** A stable string for a key, to find it in a set. */
export function keyId(table: TableSchema, key: Row): string {
  return JSON.stringify(table.keyColumns.map((k) => key[k] ?? null));
}

/** Reads up to `limit` rows with key > `after` (all when null), in key order, as Postgres text. */
export async function readChunk(
  db: Queryable,
  table: TableSchema,
  after: readonly string[] | null,
  limit: number,
): Promise<Row[]> {
  const keys = table.keyColumns.map(quoteIdent);
  const list = keys.join(', ');
  const where = after === null ? '' : `WHERE (${list}) > (${keys.map((_, i) => `$${i + 1}`).join(', ')})`;
  const sql = `SELECT * FROM ${quoteTable(table.schema, table.table)} ${where} ORDER BY ${list} LIMIT ${Math.max(1, Math.floor(limit))}`;
  const result = await db.query<Row>(after === null ? sql : { text: sql, values: [...after] });
  return result.rows;
}

export async function estimateRows(db: Queryable, schema: string, table: string): Promise<number> {
  const result = await db.query<{ n: string }>(
    `SELECT GREATEST(c.reltuples, 0)::int8::text AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, table],
  );
  return Number(result.rows[0]?.n ?? 0);
}

/** A snapshot row: its position is (lsn, snapshotSeq(ordinal)), before every stream event at `lsn`. */
export function snapshotEvent(
  table: TableSchema,
  row: Row,
  lsn: Lsn,
  ordinal: number,
  timeUs: bigint,
): ChangeEvent {
  return {
    op: 'r',
    schema: table.schema,
    table: table.table,
    position: { lsn, seq: snapshotSeq(ordinal) },
    xid: 0,
    commitTimeUs: timeUs,
    key: keyOf(table, row),
    after: row,
    before: null,
    unchanged: [],
  };
}

export const nowUs = (): bigint => BigInt(Date.now()) * 1000n;

/** A pg_current_snapshot() ("xmin:xmax:xip,..."): full transaction ids. */
export interface XidSnapshot {
  readonly xmin: bigint;
  readonly xmax: bigint;
  /** In progress when the snapshot was taken. */
  readonly xip: ReadonlySet<bigint>;
}

export function parseXidSnapshot(text: string): XidSnapshot {
  const [xmin, xmax, xip] = text.split(':');
  return {
    xmin: BigInt(xmin),
    xmax: BigInt(xmax),
    xip: new Set(xip ? xip.split(',').map((x) => BigInt(x)) : []),
  };
}

const XID_SPACE = 1n << 32n;

/** The full id of a 32-bit xid (what pgoutput sends) within 2^31 of the snapshot's xmax. */
export function fullXid(xid: number, s: XidSnapshot): bigint {
  let d = (BigInt(xid) - (s.xmax % XID_SPACE) + XID_SPACE) % XID_SPACE;
  if (d >= XID_SPACE / 2n) d -= XID_SPACE;
  return s.xmax + d;
}

/** True when the transaction had committed for `s` (pg_visible_in_snapshot; aborted ones are never decoded). */
export function visibleIn(xid: number, s: XidSnapshot): boolean {
  const full = fullXid(xid, s);
  return full < s.xmin || (full < s.xmax && !s.xip.has(full));
}

/** The low 32 bits of a full transaction id: the xid pgoutput sends. */
export const shortXid = (full: bigint): number => Number(full % XID_SPACE);

export interface ChunkRead {
  rows: Row[];
  /** The snapshot the rows were read in (taken by the same transaction). */
  snapshot: XidSnapshot;
  /** Those of `candidates` committed but not visible to `snapshot`: waiting for a synchronous standby. */
  committing: bigint[];
}

/**
 * Reads a chunk in one REPEATABLE READ transaction together with that transaction's own
 * snapshot (pg_current_snapshot() returns the active snapshot, which a repeatable read keeps
 * for every statement), so that stream events can be classed by transaction id as already in
 * the rows (visible) or newer than them. A commit is flushed (so decodable) before it becomes
 * visible, and with synchronous replication it stays invisible until the standby answers,
 * its backend waiting on 'SyncRep' (pg_xact_status says "in progress" then: it asks the
 * process array first). `candidates` that wait so are returned as committing; seeing other
 * users' backends takes pg_read_all_stats.
 */
export async function readChunkInSnapshot(
  pool: pg.Pool,
  table: TableSchema,
  after: readonly string[] | null,
  limit: number,
  candidates: readonly bigint[],
): Promise<ChunkRead> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const s = await client.query<{ s: string }>('SELECT pg_current_snapshot()::text AS s');
    const snapshot = parseXidSnapshot(s.rows[0].s);
    const rows = await readChunk(client, table, after, limit);
    const asked = candidates.filter((x) => snapshot.xip.has(x));
    let committing: bigint[] = [];
    if (asked.length > 0) {
      const waiting = await client.query<{ x: string }>(
        "SELECT backend_xid::text AS x FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND backend_xid IS NOT NULL",
      );
      const xids = new Set(waiting.rows.map((r) => Number(r.x)));
      committing = asked.filter((x) => xids.has(shortXid(x)));
    }
    await client.query('COMMIT');
    return { rows, snapshot, committing };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** What a stream event of a table being snapshotted by chunk says about a chunk's copy of its row. */
export type RowChange =
  | { readonly xid: number; readonly kind: 'truncate' }
  | { readonly xid: number; readonly kind: 'replace'; readonly key: string }
  | { readonly xid: number; readonly kind: 'partial'; readonly key: string; readonly columns: Row };

export function rowChange(table: TableSchema, event: ChangeEvent): RowChange {
  if (event.op === 't') return { xid: event.xid, kind: 'truncate' };
  const key = keyId(table, event.key);
  if (event.op === 'u' && event.unchanged.length > 0 && event.after) {
    const unchanged = new Set(event.unchanged);
    const columns: Row = {};
    for (const [c, v] of Object.entries(event.after)) if (!unchanged.has(c)) columns[c] = v;
    return { xid: event.xid, kind: 'partial', key, columns };
  }
  return { xid: event.xid, kind: 'replace', key };
}

/**
 * The chunk's rows to publish after `changes` (every change of the table the stream sent before
 * the chunk's high watermark, in stream order). A change of a transaction visible to the
 * chunk's snapshot is already in the rows. One that is not is newer than the rows and was
 * published before them: its row is dropped (the change carries the whole row, or deletes it),
 * except for an update that left TOASTed values out, whose columns are written into the row,
 * so that green receives the whole row after the partial update.
 */
export function rowsAfterChanges(
  table: TableSchema,
  rows: readonly Row[],
  snapshot: XidSnapshot,
  changes: readonly RowChange[],
): Row[] {
  const byKey = new Map<string, Row | undefined>();
  for (const row of rows) byKey.set(keyId(table, row), row);
  for (const c of changes) {
    if (visibleIn(c.xid, snapshot)) continue;
    if (c.kind === 'truncate') return [];
    const row = byKey.get(c.key);
    if (!row) continue;
    byKey.set(c.key, c.kind === 'partial' ? { ...row, ...c.columns } : undefined);
  }
  return [...byKey.values()].filter((r): r is Row => r !== undefined);
}
