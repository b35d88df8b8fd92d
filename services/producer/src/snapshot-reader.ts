import type { ChangeEvent, Lsn, Row, TableSchema } from '@teal/change-event';
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

export function snapshotEvent(
  table: TableSchema,
  row: Row,
  lsn: Lsn,
  seq: number,
  timeUs: bigint,
): ChangeEvent {
  return {
    op: 'r',
    schema: table.schema,
    table: table.table,
    position: { lsn, seq },
    xid: 0,
    commitTimeUs: timeUs,
    key: keyOf(table, row),
    after: row,
    before: null,
    unchanged: [],
  };
}

export const nowUs = (): bigint => BigInt(Date.now()) * 1000n;
