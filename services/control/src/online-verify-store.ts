import type { PgText } from '@teal/change-event';
import { ensureGreenState, quoteIdent } from '@teal/postgres';
import type pg from 'pg';
import type { OnlineVerifyStatus } from './types.ts';
import type { TablePlan } from './verify-plan.ts';

// What online verify keeps in green (tables created by green-state.ts), and the triggers that
// tell it which keys changed since:
//   teal.verify_pass     per pipeline and blue table, one row per pass: the green snapshot
//                        taken before the pass read anything (its reference point), the
//                        change-capture triggers it relied on, complete or not.
//   teal.verify_chunk    per pass and chunk: rows, state, the green keys that still differed
//                        (null: more than a chunk may list), blue's WAL position of its read.
//   teal.verify_changed  per green table and statement: the keys an INSERT, UPDATE or DELETE
//                        touched (`keys`, one array per statement), with the writing
//                        transaction's xid8; a TRUNCATE writes NULL keys. Indexed by
//                        (green_table, xid): a round reads only what is newer than its
//                        previous pass's snapshot, and a complete pass deletes what it saw.
// The triggers are AFTER ... FOR EACH STATEMENT with transition tables (one per event, as
// Postgres allows transition tables only on single-event triggers) and ENABLE ALWAYS, so they
// fire for the consumer's writes under session_replication_role = replica as for anyone
// else's: one mechanism covers the stream and writes behind teal's back.

type Queryable = Pick<pg.ClientBase, 'query'>;

/** teal's sessions read every value as text (lossless values): json and jsonb arrive unparsed. */
const json = <T>(v: unknown): T => (typeof v === 'string' ? (JSON.parse(v) as T) : (v as T));

export const TRIGGER_PREFIX = 'teal_changed_';
const EVENTS = ['insert', 'update', 'delete', 'truncate'] as const;

const FUNCTION_SQL = `
CREATE OR REPLACE FUNCTION teal.record_changed_keys() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  -- TG_ARGV[0]: the green table's name as online verify spells it; TG_ARGV[1]: the key as a jsonb array of texts.
  -- One row per statement, its keys in one array, not deduplicated (readDelta does): a row per
  -- key cost the consumer's 5,000-row statements half again their time. HAVING: a statement
  -- that touched nothing writes nothing (NULL keys mean TRUNCATE).
  IF TG_OP = 'TRUNCATE' THEN
    INSERT INTO teal.verify_changed (green_table, keys) VALUES (TG_ARGV[0], NULL);
  ELSIF TG_OP = 'INSERT' THEN
    EXECUTE 'INSERT INTO teal.verify_changed (green_table, keys) SELECT $1, array_agg(' || TG_ARGV[1] || ') FROM teal_new HAVING count(*) > 0' USING TG_ARGV[0];
  ELSIF TG_OP = 'DELETE' THEN
    EXECUTE 'INSERT INTO teal.verify_changed (green_table, keys) SELECT $1, array_agg(' || TG_ARGV[1] || ') FROM teal_old HAVING count(*) > 0' USING TG_ARGV[0];
  ELSE
    -- Old and new keys: they differ when an UPDATE changed a key column.
    EXECUTE 'INSERT INTO teal.verify_changed (green_table, keys) SELECT $1, array_agg(k) FROM (SELECT ' || TG_ARGV[1] || ' AS k FROM teal_old UNION ALL SELECT ' || TG_ARGV[1] || ' FROM teal_new) c HAVING count(*) > 0' USING TG_ARGV[0];
  END IF;
  RETURN NULL;
END
$fn$`;

/** The key of a green row as jsonb: its key columns' texts, as verify compares them. */
export function keyJsonExpr(plan: Pick<TablePlan, 'greenKeys'>): string {
  return `jsonb_build_array(${plan.greenKeys.map((k) => `${quoteIdent(k.name)}::text`).join(', ')})`;
}

function triggerSql(plan: TablePlan, event: (typeof EVENTS)[number]): string {
  const name = quoteIdent(`${TRIGGER_PREFIX}${event}`);
  const args = `${pgString(plan.greenName)}, ${pgString(keyJsonExpr(plan))}`;
  const referencing =
    event === 'insert'
      ? ' REFERENCING NEW TABLE AS teal_new'
      : event === 'delete'
        ? ' REFERENCING OLD TABLE AS teal_old'
        : event === 'update'
          ? ' REFERENCING OLD TABLE AS teal_old NEW TABLE AS teal_new'
          : '';
  return (
    `CREATE TRIGGER ${name} AFTER ${event.toUpperCase()} ON ${plan.greenRel}${referencing}` +
    ` FOR EACH STATEMENT EXECUTE FUNCTION teal.record_changed_keys(${args})`
  );
}

const pgString = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** Oids of the four change-capture triggers of a green table, each enabled ALWAYS; null when one is missing or not. */
export async function captureTriggers(green: Queryable, greenRel: string): Promise<number[] | null> {
  const { rows } = await green.query<{ oid: string; enabled: string }>(
    `SELECT oid::text AS oid, tgenabled::text AS enabled FROM pg_trigger
      WHERE tgrelid = $1::regclass AND tgname LIKE '${TRIGGER_PREFIX}%' ORDER BY tgname`,
    [greenRel],
  );
  if (rows.length !== EVENTS.length || rows.some((r) => r.enabled !== 'A')) return null;
  return rows.map((r) => Number(r.oid));
}

/**
 * Installs the triggers on a green table unless all four are there and enabled ALWAYS.
 * Creating a trigger waits for the table's writers and blocks them while it commits (a
 * ShareRowExclusive lock): a write either ran before it, and is seen by any snapshot taken
 * after, or fires it.
 */
export async function ensureCaptureTriggers(green: pg.Client, plan: TablePlan): Promise<number[]> {
  const present = await captureTriggers(green, plan.greenRel);
  if (present) return present;
  await ensureGreenState(green);
  await green.query('BEGIN');
  try {
    // One installer at a time: CREATE OR REPLACE FUNCTION races itself.
    await green.query(`SELECT pg_advisory_xact_lock(hashtext('teal.record_changed_keys'))`);
    await green.query(FUNCTION_SQL);
    for (const event of EVENTS) {
      await green.query(
        `DROP TRIGGER IF EXISTS ${quoteIdent(`${TRIGGER_PREFIX}${event}`)} ON ${plan.greenRel}`,
      );
      await green.query(triggerSql(plan, event));
      await green.query(
        `ALTER TABLE ${plan.greenRel} ENABLE ALWAYS TRIGGER ${quoteIdent(`${TRIGGER_PREFIX}${event}`)}`,
      );
    }
    await green.query('COMMIT');
  } catch (err) {
    await green.query('ROLLBACK').catch(() => {});
    throw err;
  }
  return (await captureTriggers(green, plan.greenRel)) ?? [];
}

/** Drops the triggers (after cutover, or when an operator wants the apply path bare). */
export async function dropCaptureTriggers(green: Queryable, greenRel: string): Promise<void> {
  for (const event of EVENTS)
    await green.query(`DROP TRIGGER IF EXISTS ${quoteIdent(`${TRIGGER_PREFIX}${event}`)} ON ${greenRel}`);
}

/**
 * After a cutover safe to switch, green is the application's database: its writes must not pay
 * for (or fill teal.verify_changed with) a check that is over. Drops the change-capture
 * triggers this pipeline's passes put on green's tables, and the keys they recorded; returns
 * the tables. A later online verify starts over with full passes (its triggers are gone).
 */
export async function releaseChangeCapture(green: Queryable, pipeline: string): Promise<string[]> {
  const { rows } = await green.query<{ rel: string; green_table: string }>(
    `SELECT DISTINCT t.tgrelid::regclass::text AS rel, p.green_table
       FROM teal.verify_pass p JOIN pg_trigger t ON t.oid = ANY (p.triggers)
      WHERE p.pipeline = $1 ORDER BY 1`,
    [pipeline],
  );
  for (const { rel } of rows) await dropCaptureTriggers(green, rel);
  await green.query('DELETE FROM teal.verify_changed WHERE green_table = ANY ($1)', [
    rows.map((r) => r.green_table),
  ]);
  return rows.map((r) => r.rel);
}

export interface PassRow {
  pass: number;
  greenTable: string;
  triggers: number[];
  chunks: number;
  rows: number;
  complete: boolean;
  finishedAt: string | null;
}

/** Starts pass n+1 of a table: its reference snapshot is taken here, before it reads blue. */
export async function startPass(
  green: Queryable,
  pipeline: string,
  blueTable: string,
  greenTable: string,
  triggers: number[],
): Promise<number> {
  const { rows } = await green.query<{ pass: number }>(
    `INSERT INTO teal.verify_pass (pipeline, blue_table, pass, green_table, green_snapshot, triggers)
     SELECT $1, $2, coalesce(max(pass), 0) + 1, $3, pg_current_snapshot(), $4::oid[]
       FROM teal.verify_pass WHERE pipeline = $1 AND blue_table = $2
     RETURNING pass`,
    [pipeline, blueTable, greenTable, triggers],
  );
  return Number(rows[0].pass);
}

export interface ChunkRow {
  chunk: number;
  rows: number;
  state: 'equal' | 'differs' | 'unsettled';
  /** Green keys that differed at the last check; null when there were more than a chunk lists. */
  keys: PgText[][] | null;
  blueLsn: string;
  checks: number;
}

export async function saveChunk(
  green: Queryable,
  pipeline: string,
  blueTable: string,
  pass: number,
  c: ChunkRow,
  /** False for a re-check of a chunk already counted. */
  first = true,
): Promise<void> {
  await green.query(
    `INSERT INTO teal.verify_chunk (pipeline, blue_table, pass, chunk, rows, state, keys, blue_lsn, checks)
     VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::pg_lsn, $9)
     ON CONFLICT (pipeline, blue_table, pass, chunk) DO UPDATE
       SET rows = EXCLUDED.rows, state = EXCLUDED.state, keys = EXCLUDED.keys,
           blue_lsn = EXCLUDED.blue_lsn, checks = EXCLUDED.checks, verified_at = now()`,
    [pipeline, blueTable, pass, c.chunk, c.rows, c.state, JSON.stringify(c.keys), c.blueLsn, c.checks],
  );
  if (!first) return;
  await green.query(
    `UPDATE teal.verify_pass SET chunks = greatest(chunks, $4 + 1), rows = rows + $5
      WHERE pipeline = $1 AND blue_table = $2 AND pass = $3`,
    [pipeline, blueTable, pass, c.chunk, c.rows],
  );
}

/**
 * Marks a pass complete and forgets what it covers: older passes, and the changed keys its
 * reference snapshot sees (every chunk of the pass read them after that snapshot).
 */
export async function completePass(
  green: pg.Client,
  pipeline: string,
  blueTable: string,
  pass: number,
): Promise<void> {
  await green.query('BEGIN');
  try {
    const { rows } = await green.query<{ green_table: string }>(
      `UPDATE teal.verify_pass SET complete = true, finished_at = now()
        WHERE pipeline = $1 AND blue_table = $2 AND pass = $3 RETURNING green_table`,
      [pipeline, blueTable, pass],
    );
    await green.query('DELETE FROM teal.verify_chunk WHERE pipeline = $1 AND blue_table = $2 AND pass < $3', [
      pipeline,
      blueTable,
      pass,
    ]);
    await green.query('DELETE FROM teal.verify_pass WHERE pipeline = $1 AND blue_table = $2 AND pass < $3', [
      pipeline,
      blueTable,
      pass,
    ]);
    // Another pipeline's older pass on the same green table keeps the keys it still needs. A
    // row visible in every complete pass's snapshot has an xid below the least of their xmax:
    // the index bounds the scan to those, not to every key ever recorded.
    await green.query(
      `DELETE FROM teal.verify_changed c
        WHERE c.green_table = $1
          AND c.xid < (SELECT min(pg_snapshot_xmax(p.green_snapshot)) FROM teal.verify_pass p
                        WHERE p.green_table = $1 AND p.complete)
          AND NOT EXISTS (SELECT 1 FROM teal.verify_pass p
                           WHERE p.green_table = $1 AND p.complete
                             AND NOT pg_visible_in_snapshot(c.xid, p.green_snapshot))`,
      [rows[0]?.green_table],
    );
    await green.query('COMMIT');
  } catch (err) {
    await green.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** What cutover's delta needs of a table: its last complete pass, and the keys to re-check since. */
export interface TableDelta {
  pass: PassRow;
  /** Distinct green keys changed since the pass's reference snapshot, or that differed at a chunk's last check. */
  keys: PgText[][];
  /** A TRUNCATE since, a chunk with more differing keys than listed, or triggers changed: check the table whole. */
  whole: string | null;
  /** Blue rows the pass covered, and blue's oldest WAL position of its chunks. */
  asOfLsn: string | null;
}

/**
 * A table's delta since its last complete pass. `keys: false` reads only whether it must be
 * verified whole (a round asks before its snapshot, and reads the keys after it).
 */
export async function readDelta(
  green: Queryable,
  pipeline: string,
  blueTable: string,
  opts: { keys?: boolean } = {},
): Promise<TableDelta | null> {
  const { rows: passes } = await green.query<{
    pass: number;
    green_table: string;
    triggers: number[];
    chunks: number;
    rows: string;
    complete: boolean;
    finished_at: string | null;
    snapshot: string;
  }>(
    `SELECT pass, green_table, to_json(triggers::int8[]) AS triggers, chunks, rows::text, complete,
            to_json(finished_at) #>> '{}' AS finished_at, green_snapshot::text AS snapshot
       FROM teal.verify_pass WHERE pipeline = $1 AND blue_table = $2 AND complete
      ORDER BY pass DESC LIMIT 1`,
    [pipeline, blueTable],
  );
  const p = passes[0];
  if (!p) return null;
  const pass: PassRow = {
    pass: Number(p.pass),
    greenTable: p.green_table,
    triggers: json<number[]>(p.triggers).map(Number),
    chunks: Number(p.chunks),
    rows: Number(p.rows),
    complete: true,
    finishedAt: p.finished_at,
  };
  // Statements the pass's snapshot S does not see: their xid is at least S's xmin (the index
  // range), and only those rows pay the visibility test. Each row's keys come as one JSON text
  // and are deduplicated here: DISTINCT over the unnested jsonb took 52 s for 1.35M keys on
  // this loaded machine, the JSON texts 2.6 s. `key`: rows of the one-key-per-row trigger that
  // came before; a NULL key is a TRUNCATE.
  const since = `c.green_table = $1 AND c.xid >= pg_snapshot_xmin($2::pg_snapshot)
        AND NOT pg_visible_in_snapshot(c.xid, $2::pg_snapshot)`;
  const changed = await green.query<{ keys: string }>(
    opts.keys === false
      ? `SELECT '[null]' AS keys FROM teal.verify_changed c WHERE ${since} AND c.keys IS NULL AND c.key IS NULL LIMIT 1`
      : `SELECT array_to_json(coalesce(c.keys, ARRAY[c.key]))::text AS keys FROM teal.verify_changed c WHERE ${since}`,
    [pass.greenTable, p.snapshot],
  );
  const chunks = await green.query<{ keys: PgText[][] | null; state: string }>(
    `SELECT keys, state FROM teal.verify_chunk WHERE pipeline = $1 AND blue_table = $2 AND pass >= $3 AND state <> 'equal'`,
    [pipeline, blueTable, pass.pass],
  );
  const lsn = await green.query<{ lsn: string | null }>(
    'SELECT min(blue_lsn)::text AS lsn FROM teal.verify_chunk WHERE pipeline = $1 AND blue_table = $2 AND pass = $3',
    [pipeline, blueTable, pass.pass],
  );
  let whole: string | null = null;
  // A one-column key by its text (all keys of a table have the same columns): stringifying
  // each key was most of the time the scale-80 bench's 630k keys took.
  const byText = new Map<string | null, PgText[]>();
  const add = (k: PgText[]) => byText.set(k.length === 1 ? k[0] : JSON.stringify(k), k);
  for (const r of changed.rows)
    for (const k of JSON.parse(r.keys) as (PgText[] | null)[]) {
      if (k) add(k);
      else whole = 'green table was truncated since the online pass';
    }
  const chunkKeys = chunks.rows.map((r) => json<PgText[][] | null>(r.keys));
  if (chunkKeys.some((k) => k === null)) whole = 'a chunk differed in more keys than online verify lists';
  for (const keys of chunkKeys) for (const k of keys ?? []) add(k);
  return { pass, keys: [...byText.values()], whole, asOfLsn: lsn.rows[0]?.lsn ?? null };
}

export type OnlineProgressRow = Omit<OnlineVerifyStatus, 'running'>;

/** Online verify's progress for one pipeline, over each table's newest pass; null before any. */
export async function readOnlineProgress(
  green: Queryable,
  pipeline: string,
): Promise<OnlineProgressRow | null> {
  const { rows } = await green.query<{
    tables: string;
    complete: string;
    verified: string;
    total: string;
    lsn: string | null;
    pending: string;
    differs: string;
  }>(
    `WITH newest AS (
       SELECT DISTINCT ON (blue_table) blue_table, pass, chunks, complete FROM teal.verify_pass
        WHERE pipeline = $1 ORDER BY blue_table, pass DESC),
     last_complete AS (
       SELECT blue_table, max(pass) AS pass, max(chunks) FILTER (WHERE complete) AS chunks
         FROM teal.verify_pass WHERE pipeline = $1 AND complete GROUP BY blue_table),
     chunks AS (
       SELECT c.* FROM teal.verify_chunk c JOIN newest n USING (blue_table, pass) WHERE c.pipeline = $1)
     SELECT (SELECT count(*) FROM newest)::text AS tables,
            (SELECT count(*) FROM last_complete)::text AS complete,
            (SELECT count(*) FROM chunks WHERE state = 'equal')::text AS verified,
            (SELECT coalesce(sum(CASE WHEN n.complete THEN n.chunks ELSE greatest(n.chunks, coalesce(l.chunks, 0)) END), 0)
               FROM newest n LEFT JOIN last_complete l USING (blue_table))::text AS total,
            (SELECT min(blue_lsn)::text FROM chunks) AS lsn,
            (SELECT count(*) FROM chunks WHERE state = 'unsettled')::text AS pending,
            (SELECT count(*) FROM chunks WHERE state = 'differs')::text AS differs`,
    [pipeline],
  );
  const r = rows[0];
  if (!r || r.tables === '0') return null;
  return {
    tables: Number(r.tables),
    tablesComplete: Number(r.complete),
    chunksVerified: Number(r.verified),
    chunksTotal: Number(r.total),
    asOfLsn: r.lsn,
    recheckPending: Number(r.pending),
    mismatches: Number(r.differs),
  };
}
