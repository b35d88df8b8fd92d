import {
  type ChangeEvent,
  type Lsn,
  type PgText,
  type Row,
  snapshotSeq,
  type TableSchema,
} from '@teal/change-event';
import { quoteIdent, quoteTable } from '@teal/postgres';
import { type KeysetColumn, keyEquals, keysetAfter, keysetOrder } from '@teal/postgres/keyset';
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

/** The key values in key-column order (what teal.snapshot_progress.last_key stores); NULL stays NULL. */
export function keyValues(table: TableSchema, row: Row): PgText[] {
  return table.keyColumns.map((k) => row[k] ?? null);
}

/** A stable string for a key, to find it in a set. */
export function keyId(table: TableSchema, key: Row): string {
  return JSON.stringify(table.keyColumns.map((k) => key[k] ?? null));
}

/** What paging needs to know of a table's key columns beyond their names. */
export interface KeyShape {
  /** Per key column, in key order: NULL may occur. */
  readonly columns: readonly KeysetColumn[];
  /** A unique index over NOT NULL key columns: no two rows share a key. */
  readonly unique: boolean;
}

const KEY_SHAPE_SQL = `
  SELECT (SELECT coalesce(json_agg(a.attname), '[]')::text FROM pg_attribute a
           WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND NOT a.attnotnull) AS nullable,
         (EXISTS (SELECT 1 FROM pg_index i
                  WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
                    AND NOT EXISTS (SELECT 1 FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) AS k(attnum)
                                      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                                     WHERE NOT a.attnotnull OR NOT (a.attname = ANY($2::text[])))))::text AS is_unique`;

const keyShapes = new WeakMap<TableSchema, Promise<KeyShape>>();

/** The table's key shape from blue's catalog, read once per table shape. */
export function keyShape(db: Queryable, table: TableSchema): Promise<KeyShape> {
  let shape = keyShapes.get(table);
  if (!shape) {
    shape = db
      .query<{ nullable: string; is_unique: string }>(KEY_SHAPE_SQL, [
        quoteTable(table.schema, table.table),
        [...table.keyColumns],
      ])
      .then(({ rows }) => {
        const nullable = new Set(JSON.parse(rows[0].nullable) as string[]);
        return {
          columns: table.keyColumns.map((name) => ({ name, nullable: nullable.has(name) })),
          unique: rows[0].is_unique === 'true',
        };
      });
    keyShapes.set(table, shape);
    shape.catch(() => keyShapes.delete(table));
  }
  return shape;
}

/**
 * Reads up to `limit` rows with key after `after` (all when null), in key order (NULLs last),
 * as Postgres text: the columns the table's shape lists, which are those pgoutput sends
 * (stored generated columns are not among them: green computes its own). When two rows may
 * share a key (REPLICA IDENTITY FULL without a unique key), a full chunk ends with every row
 * of its last key, so that the next chunk, after that key, skips none of them.
 */
export async function readChunk(
  db: Queryable,
  table: TableSchema,
  after: readonly PgText[] | null,
  limit: number,
): Promise<Row[]> {
  const shape = await keyShape(db, table);
  const rel = quoteTable(table.schema, table.table);
  const select = `SELECT ${table.columns.map((c) => quoteIdent(c.name)).join(', ')} FROM ${rel}`;
  const n = Math.max(1, Math.floor(limit));
  const order = keysetOrder(shape.columns);
  const where = after === null ? null : keysetAfter(shape.columns, after, 1);
  const result = await db.query<Row>({
    text: `${select}${where ? ` WHERE ${where.sql}` : ''} ORDER BY ${order} LIMIT ${n}`,
    values: where?.values ?? [],
  });
  const rows = result.rows;
  if (shape.unique || rows.length < n) return rows;
  const last = keyValues(table, rows[rows.length - 1]);
  const same = keyEquals(shape.columns, last, 1);
  const run = await db.query<Row>({ text: `${select} WHERE ${same.sql}`, values: same.values });
  // The run holds every row equal to the last key (by the key's own equality), those of this chunk too.
  const inRun = new Set(run.rows.map((r) => keyId(table, r)));
  return [...rows.filter((r) => !inRun.has(keyId(table, r))), ...run.rows];
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
  after: readonly PgText[] | null,
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
  // Several rows may share a key (REPLICA IDENTITY FULL without a unique key): a change acts on all of them.
  const byKey = new Map<string, Row[] | undefined>();
  for (const row of rows) {
    const id = keyId(table, row);
    byKey.set(id, [...(byKey.get(id) ?? []), row]);
  }
  for (const c of changes) {
    if (visibleIn(c.xid, snapshot)) continue;
    if (c.kind === 'truncate') return [];
    const same = byKey.get(c.key);
    if (!same) continue;
    byKey.set(c.key, c.kind === 'partial' ? same.map((row) => ({ ...row, ...c.columns })) : undefined);
  }
  return [...byKey.values()].flatMap((r) => r ?? []);
}
