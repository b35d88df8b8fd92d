import type { Row, TableSchema } from '@teal/change-event';
import { TealError } from '@teal/errors';
import { quoteIdent, quoteTable } from '@teal/postgres';
import { keyEquals } from '@teal/postgres/keyset';
import { abortableDelay } from '@teal/runtime';
import type pg from 'pg';

// Blue's current values of some columns of one row, for a key change whose TOASTed values
// blue did not send (StreamSession.completeKeyChange says why that is enough).

export type CurrentColumnsReader = (
  table: TableSchema,
  key: Row,
  columns: readonly string[],
  xid: number,
) => Promise<Row | undefined>;

export function currentColumnsReader(blue: pg.Pool, signal: AbortSignal): CurrentColumnsReader {
  return async (table, key, columns, xid) => {
    // A NULL key column (REPLICA IDENTITY FULL, nullable keyColumns) is matched by IS NULL.
    const where = keyEquals(
      table.keyColumns.map((name) => ({ name, nullable: true })),
      table.keyColumns.map((k) => key[k] ?? null),
      1,
    );
    // The walsender sends a commit once its WAL is flushed, before the transaction is visible
    // to other sessions: read only in a snapshot that sees it (xid widened to xid8 by epoch).
    for (;;) {
      const client = await blue.connect();
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const vis = await client.query<{ v: boolean | string }>(
          `SELECT pg_visible_in_snapshot(((((nx >> 32) - CASE WHEN $1::bigint >= (nx & 4294967295) THEN 1 ELSE 0 END) << 32) | $1::bigint)::text::xid8, snap)::text AS v
             FROM (SELECT pg_snapshot_xmax(s)::text::bigint AS nx, s AS snap FROM pg_current_snapshot() s) n`,
          [xid],
        );
        if (String(vis.rows[0].v) === 'true') {
          const result = await client.query<Row>(
            `SELECT ${columns.map(quoteIdent).join(', ')} FROM ${quoteTable(table.schema, table.table)} WHERE ${where.sql}`,
            where.values,
          );
          await client.query('COMMIT');
          return result.rows[0];
        }
        await client.query('ROLLBACK');
      } finally {
        client.release();
      }
      await abortableDelay(10, signal);
      if (signal.aborted) throw new TealError('TEAL_ABORTED', 'producer stopping');
    }
  };
}
