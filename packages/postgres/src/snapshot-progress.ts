import type pg from 'pg';

// teal.snapshot_progress in green: per table, how far the producer's snapshot got, by key,
// so a restarted producer resumes a table where Kafka last acknowledged it.

type Queryable = Pick<pg.ClientBase, 'query'>;

export type SnapshotState = 'pending' | 'running' | 'done';

export interface SnapshotProgressRow {
  schema: string;
  table: string;
  state: SnapshotState;
  /** The key of the last row of the last chunk Kafka acknowledged, in key-column order (NULL kept). */
  lastKey: (string | null)[] | null;
  rowsDone: number;
  rowsEstimated: number;
  snapshotLsn: string | null;
}

/** "schema.table" -> progress. */
export async function readSnapshotProgress(db: Queryable): Promise<Map<string, SnapshotProgressRow>> {
  const { rows } = await db.query<{
    schema: string;
    table: string;
    state: SnapshotState;
    last_key: string | null;
    rows_done: string;
    rows_estimated: string;
    snapshot_lsn: string | null;
  }>(
    'SELECT schema, "table", state, last_key::text AS last_key, rows_done, rows_estimated, snapshot_lsn FROM teal.snapshot_progress',
  );
  const out = new Map<string, SnapshotProgressRow>();
  for (const r of rows) {
    out.set(`${r.schema}.${r.table}`, {
      schema: r.schema,
      table: r.table,
      state: r.state,
      lastKey: r.last_key === null ? null : (JSON.parse(r.last_key) as (string | null)[]),
      rowsDone: Number(r.rows_done),
      rowsEstimated: Number(r.rows_estimated),
      snapshotLsn: r.snapshot_lsn,
    });
  }
  return out;
}

export async function writeSnapshotProgress(db: Queryable, p: SnapshotProgressRow): Promise<void> {
  await db.query(
    `INSERT INTO teal.snapshot_progress (schema, "table", state, last_key, rows_done, rows_estimated, snapshot_lsn, updated_at)
     VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7::pg_lsn, now())
     ON CONFLICT (schema, "table") DO UPDATE SET state = EXCLUDED.state, last_key = EXCLUDED.last_key,
       rows_done = EXCLUDED.rows_done, rows_estimated = EXCLUDED.rows_estimated,
       snapshot_lsn = EXCLUDED.snapshot_lsn, updated_at = now()`,
    [
      p.schema,
      p.table,
      p.state,
      p.lastKey === null ? null : JSON.stringify(p.lastKey),
      p.rowsDone,
      p.rowsEstimated,
      p.snapshotLsn,
    ],
  );
}
