import { sqlState } from '@teal/errors';
import type pg from 'pg';

// teal's state tables in green's `teal` schema, created in one place by whichever
// component starts first (producer, consumer or API; they may start at the same moment).
//   teal.control            key/value facts per pipeline (control-store.ts)
//   teal.applied_position   per topic-partition: the last Kafka offset and event position
//                           applied, written in the same transaction as the rows (positions.ts)
//   teal.applied_truncate   truncates applied, so one runs once across partitions
//   teal.snapshot_progress  per table: how far the snapshot got (snapshot-progress.ts)
//   teal.verify_pass, teal.verify_chunk, teal.verify_changed
//                           online verify: per table its passes, per chunk what it found, and
//                           the keys green's tables changed since (control/online-verify-store.ts)

type Queryable = Pick<pg.ClientBase, 'query'>;

const STATE_DDL = [
  'CREATE SCHEMA IF NOT EXISTS teal',
  `CREATE TABLE IF NOT EXISTS teal.control (
     key text PRIMARY KEY,
     value jsonb,
     updated_at timestamptz NOT NULL DEFAULT now())`,
  `CREATE TABLE IF NOT EXISTS teal.applied_position (
     topic text NOT NULL,
     partition int NOT NULL,
     kafka_offset bigint NOT NULL,
     lsn pg_lsn NOT NULL,
     seq bigint NOT NULL,
     applied_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (topic, partition))`,
  `CREATE TABLE IF NOT EXISTS teal.applied_truncate (
     topic text NOT NULL,
     lsn pg_lsn NOT NULL,
     seq bigint NOT NULL,
     applied_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (topic, lsn, seq))`,
  `CREATE TABLE IF NOT EXISTS teal.snapshot_progress (
     schema text NOT NULL, "table" text NOT NULL, state text NOT NULL, last_key jsonb,
     rows_done bigint NOT NULL DEFAULT 0, rows_estimated bigint NOT NULL DEFAULT 0,
     snapshot_lsn pg_lsn, updated_at timestamptz NOT NULL DEFAULT now(),
     direct boolean NOT NULL DEFAULT false,
     PRIMARY KEY (schema, "table"))`,
  // direct: the table's direct initial copy is under way; the consumer holds its stream back.
  `DO $$ BEGIN
     IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'teal.snapshot_progress'::regclass AND attname = 'direct') THEN
       ALTER TABLE teal.snapshot_progress ADD COLUMN direct boolean NOT NULL DEFAULT false;
     END IF;
   END $$`,
  `CREATE TABLE IF NOT EXISTS teal.verify_pass (
     pipeline text NOT NULL, blue_table text NOT NULL, pass int NOT NULL, green_table text NOT NULL,
     green_snapshot pg_snapshot NOT NULL, triggers oid[] NOT NULL, chunks int NOT NULL DEFAULT 0,
     rows bigint NOT NULL DEFAULT 0, complete boolean NOT NULL DEFAULT false,
     started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz,
     PRIMARY KEY (pipeline, blue_table, pass))`,
  `CREATE TABLE IF NOT EXISTS teal.verify_chunk (
     pipeline text NOT NULL, blue_table text NOT NULL, pass int NOT NULL, chunk int NOT NULL,
     rows int NOT NULL, state text NOT NULL, keys jsonb, blue_lsn pg_lsn NOT NULL,
     checks int NOT NULL, verified_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (pipeline, blue_table, pass, chunk))`,
  // One row per green statement: `keys` the keys it touched (`key`: one key, as rows written
  // before keys existed); both NULL for a TRUNCATE. Read and pruned by (green_table, xid) ranges.
  `CREATE TABLE IF NOT EXISTS teal.verify_changed (
     green_table text NOT NULL, key jsonb, xid xid8 NOT NULL DEFAULT pg_current_xact_id(), keys jsonb[])`,
  // Only when missing: ALTER TABLE / CREATE INDEX ... IF NOT EXISTS would lock the table
  // against the triggers' writes at every start.
  `DO $$ BEGIN
     IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'teal.verify_changed'::regclass AND attname = 'keys') THEN
       ALTER TABLE teal.verify_changed ADD COLUMN keys jsonb[];
     END IF;
     IF to_regclass('teal.verify_changed_table_xid') IS NULL THEN
       CREATE INDEX verify_changed_table_xid ON teal.verify_changed (green_table, xid);
     END IF;
   END $$`,
];

// Two sessions running CREATE ... IF NOT EXISTS at once can still collide in the catalog
// (unique violation on pg_namespace/pg_type, or "already exists"); the loser tries again.
const CATALOG_RACE = new Set(['23505', '42P06', '42P07', '42701']);

/** Creates teal's state schema and tables in green when missing; safe to race. */
export async function ensureGreenState(db: Queryable): Promise<void> {
  for (const sql of STATE_DDL) {
    for (let attempt = 1; ; attempt++) {
      try {
        await db.query(sql);
        break;
      } catch (err) {
        if (attempt < 4 && CATALOG_RACE.has(sqlState(err) ?? '')) continue;
        throw err;
      }
    }
  }
}
