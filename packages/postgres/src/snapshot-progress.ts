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
  /**
   * The direct initial copy of the table is under way: the consumer holds the table's stream
   * back until a row without it is written (the copy done, or handed to the chunk path).
   */
  direct?: boolean;
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
    direct: boolean | string;
  }>(
    'SELECT schema, "table", state, last_key::text AS last_key, rows_done, rows_estimated, snapshot_lsn, direct FROM teal.snapshot_progress',
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
      direct: r.direct === true || r.direct === 't',
    });
  }
  return out;
}

export async function writeSnapshotProgress(db: Queryable, p: SnapshotProgressRow): Promise<void> {
  await db.query(
    `INSERT INTO teal.snapshot_progress (schema, "table", state, last_key, rows_done, rows_estimated, snapshot_lsn, direct, updated_at)
     VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7::pg_lsn, $8, now())
     ON CONFLICT (schema, "table") DO UPDATE SET state = EXCLUDED.state, last_key = EXCLUDED.last_key,
       rows_done = EXCLUDED.rows_done, rows_estimated = EXCLUDED.rows_estimated,
       snapshot_lsn = EXCLUDED.snapshot_lsn, direct = EXCLUDED.direct, updated_at = now()`,
    [
      p.schema,
      p.table,
      p.state,
      p.lastKey === null ? null : JSON.stringify(p.lastKey),
      p.rowsDone,
      p.rowsEstimated,
      p.snapshotLsn,
      p.direct === true,
    ],
  );
}

/** True while the table's direct initial copy is under way (its stream waits in Kafka). */
export async function isHeldBack(db: Queryable, schema: string, table: string): Promise<boolean> {
  const { rows } = await db.query(
    'SELECT 1 FROM teal.snapshot_progress WHERE schema = $1 AND "table" = $2 AND direct',
    [schema, table],
  );
  return rows.length > 0;
}
