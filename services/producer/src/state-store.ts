import { sqlState } from '@teal/config';
import type pg from 'pg';

// The producer's state in green's `teal` schema, so that a separate API process and the
// next run of the producer agree with this one: teal.control (status, pause flag) and
// teal.snapshot_progress (per table: how far the snapshot got, by key).

export type SnapshotState = 'pending' | 'running' | 'done';

export interface SnapshotProgressRow {
  schema: string;
  table: string;
  state: SnapshotState;
  /** The key of the last row of the last chunk Kafka acknowledged, in key-column order. */
  lastKey: string[] | null;
  rowsDone: number;
  rowsEstimated: number;
  snapshotLsn: string | null;
}

const DDL = [
  'CREATE SCHEMA IF NOT EXISTS teal',
  `CREATE TABLE IF NOT EXISTS teal.control (key text PRIMARY KEY, value jsonb, updated_at timestamptz NOT NULL DEFAULT now())`,
  `CREATE TABLE IF NOT EXISTS teal.snapshot_progress (
     schema text NOT NULL, "table" text NOT NULL, state text NOT NULL, last_key jsonb,
     rows_done bigint NOT NULL DEFAULT 0, rows_estimated bigint NOT NULL DEFAULT 0,
     snapshot_lsn pg_lsn, updated_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (schema, "table"))`,
];

export class StateStore {
  constructor(private readonly green: pg.Pool) {}

  /** Creates teal's state tables when missing (other components may race us: tolerate it). */
  async init(): Promise<void> {
    for (const sql of DDL) {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.green.query(sql);
          break;
        } catch (err) {
          // Concurrent CREATE ... IF NOT EXISTS can still collide in the catalog.
          const state = sqlState(err);
          if (attempt < 3 && (state === '23505' || state === '42P07' || state === '42P06')) continue;
          throw err;
        }
      }
    }
  }

  async readControl<T = unknown>(key: string): Promise<T | undefined> {
    const result = await this.green.query<{ value: string | null }>(
      'SELECT value::text AS value FROM teal.control WHERE key = $1',
      [key],
    );
    const text = result.rows[0]?.value;
    return text === undefined || text === null ? undefined : (JSON.parse(text) as T);
  }

  async writeControl(key: string, value: unknown): Promise<void> {
    await this.green.query(
      `INSERT INTO teal.control (key, value, updated_at) VALUES ($1, $2::jsonb, now())
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
      [key, JSON.stringify(value)],
    );
  }

  /** `key` is the pipeline's `paused:<prefix>` row (controlKey in @teal/config). */
  async isPaused(key: string): Promise<boolean> {
    const value = await this.readControl<unknown>(key);
    return value === true;
  }

  async readProgress(): Promise<Map<string, SnapshotProgressRow>> {
    const result = await this.green.query<{
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
    for (const r of result.rows) {
      out.set(`${r.schema}.${r.table}`, {
        schema: r.schema,
        table: r.table,
        state: r.state,
        lastKey: r.last_key === null ? null : (JSON.parse(r.last_key) as string[]),
        rowsDone: Number(r.rows_done),
        rowsEstimated: Number(r.rows_estimated),
        snapshotLsn: r.snapshot_lsn,
      });
    }
    return out;
  }

  async writeProgress(p: SnapshotProgressRow): Promise<void> {
    await this.green.query(
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
}
