import { createHash, randomBytes } from 'node:crypto';
import { parseTableName } from '@teal/config';
import { TealError } from '@teal/errors';
import { quoteIdent, quoteTable } from '@teal/postgres';
import { abortableDelay } from '@teal/runtime';
import type pg from 'pg';
import type { FenceHoles, FenceResult } from './types.ts';

// The fence makes blue refuse new writes so that a drain's LSN is final:
//   ALTER DATABASE <db> SET default_transaction_read_only = on
// applies to every session that starts afterwards, so the client sessions already connected
// are terminated (pg_terminate_backend) and reconnect read-only; their open transactions
// roll back, which loses nothing that was committed.
//
// Exempt are only this process's own control sessions: their application_name is
// OWN_APPLICATION_NAME, "teal-control " plus a random token made when the process starts,
// which no application has by accident (a name merely starting with "teal" is terminated
// like any other). The producer's blue sessions are terminated too and reconnect: they
// only read, emit logical messages and keep the walsender, which is not a client backend.
//
// What the setting cannot stop (fenceHoles): a prepared transaction (COMMIT PREPARED is
// allowed in a read-only session, and its changes would reach blue after the drain), and a
// backend that is not a client backend (a background worker: a subscription's apply worker,
// pg_cron, an extension's) or did not exit, which keeps the setting it started with. The
// fence lists them; cutover is not safe to switch while there are any.
//
// Limits (docs/api.md): a session may still `SET transaction_read_only = off` or
// `SET default_transaction_read_only = off`, a role or a connection string may set it off
// at login, and other databases of the cluster are not fenced. It stops well-behaved
// applications, not a determined superuser.

const FENCE_SETTING = 'default_transaction_read_only=on';

// The reverse guard (issue 17): after `cutover --with-rollback` blue stays fenced while
// `teal reverse` writes green's changes back into it. teal's sessions pass the setting above
// at login, and so could an application (options=-c default_transaction_read_only=off, or
// SET / BEGIN READ WRITE). So while the reverse pipeline runs, each of its target tables on
// blue also carries a statement trigger, ENABLE ALWAYS (it fires under the consumer's
// session_replication_role = replica too), that refuses INSERT, UPDATE, DELETE, TRUNCATE (and
// COPY, MERGE) with SQLSTATE 25006 unless the session logged in with
// -c teal.reverse_writer=<token>: a random token only the reverse process knows (blue keeps
// its SHA-256; a startup setting is not shown in pg_stat_activity). A new `teal reverse`
// replaces the hash with its own token's. unfence() drops the triggers and the function.
// Limits: only the reverse target tables are guarded (blue's other tables keep the
// read-only default alone); the table owner or a superuser can disable or drop a trigger.

/** The startup setting that carries the reverse writer's token. */
export const REVERSE_WRITER_SETTING = 'teal.reverse_writer';
const GUARD_TRIGGER = 'teal_reverse_guard';
const GUARD_FUNCTION = 'teal.reverse_guard';

/** A new token for one `teal reverse` process: its sessions' REVERSE_WRITER_SETTING. */
export function newReverseWriterToken(): string {
  return randomBytes(24).toString('hex');
}

/** Installs (or re-keys) the reverse guard on `tables` ("schema.table") of blue, in one transaction. */
export async function installReverseGuard(
  blue: pg.ClientBase,
  tables: readonly string[],
  token: string,
): Promise<void> {
  const hash = createHash('sha256').update(token).digest('hex');
  const targets = tables.map((t) => {
    const name = parseTableName(t);
    if (!name) throw new TealError('TEAL_INTERNAL', `reverse guard: "${t}" is not a table name`);
    return quoteTable(name.schema, name.table);
  });
  try {
    await blue.query('BEGIN READ WRITE');
    await blue.query('CREATE SCHEMA IF NOT EXISTS teal');
    // The hash is a literal: `hash` is hex, nothing to escape.
    await blue.query(`CREATE OR REPLACE FUNCTION ${GUARD_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $guard$
      BEGIN
        IF encode(sha256(convert_to(coalesce(current_setting('${REVERSE_WRITER_SETTING}', true), ''), 'UTF8')), 'hex') = '${hash}' THEN
          RETURN NULL;
        END IF;
        RAISE EXCEPTION 'blue is fenced: % of %.% refused (only teal reverse writes here until teal rollback unfences blue)',
          TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'read_only_sql_transaction';
      END $guard$`);
    for (const table of targets) {
      await blue.query(`DROP TRIGGER IF EXISTS ${GUARD_TRIGGER} ON ${table}`);
      await blue.query(
        `CREATE TRIGGER ${GUARD_TRIGGER} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${table}
           FOR EACH STATEMENT EXECUTE FUNCTION ${GUARD_FUNCTION}()`,
      );
      await blue.query(`ALTER TABLE ${table} ENABLE ALWAYS TRIGGER ${GUARD_TRIGGER}`);
    }
    await blue.query('COMMIT');
  } catch (err) {
    await blue.query('ROLLBACK').catch(() => {});
    throw new TealError(
      'TEAL_FENCE_FAILED',
      `cannot guard blue's tables for the reverse apply: ${(err as Error).message} — connect teal to blue as the tables' owner or a superuser`,
      { status: 500, cause: err },
    );
  }
}

/** Drops the reverse guard's triggers and function from blue's database; nothing when there are none. */
export async function removeReverseGuard(blue: pg.ClientBase): Promise<number> {
  try {
    await blue.query('BEGIN READ WRITE');
    const { rows } = await blue.query<{ name: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS name
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE t.tgname = $1`,
      [GUARD_TRIGGER],
    );
    for (const r of rows) await blue.query(`DROP TRIGGER IF EXISTS ${GUARD_TRIGGER} ON ${r.name}`);
    await blue.query(`DROP FUNCTION IF EXISTS ${GUARD_FUNCTION}()`);
    await blue.query('COMMIT');
    return rows.length;
  } catch (err) {
    await blue.query('ROLLBACK').catch(() => {});
    throw new TealError(
      'TEAL_FENCE_FAILED',
      `cannot remove the reverse guard from blue: ${(err as Error).message} — drop the ${GUARD_TRIGGER} triggers and ${GUARD_FUNCTION}() as their owner`,
      { status: 500, cause: err },
    );
  }
}

/** application_name of this process's control sessions, the only ones a fence keeps. */
export const OWN_APPLICATION_NAME = `teal-control ${randomBytes(8).toString('hex')}`;

/** How long the fence waits for the sessions it terminated to exit. */
const EXIT_WAIT_MS = 5_000;

export async function fence(blue: pg.Client): Promise<FenceResult> {
  const database = await currentDatabase(blue);
  try {
    await blue.query(`ALTER DATABASE ${quoteIdent(database)} SET default_transaction_read_only = on`);
  } catch (err) {
    throw new TealError(
      'TEAL_FENCE_FAILED',
      `cannot fence blue database ${database}: ${(err as Error).message} — connect teal as the database owner or a superuser`,
      { status: 500, cause: err },
    );
  }
  // Every backend that starts from now on reads the setting: the fence time is after the commit.
  const { rows: at } = await blue.query<{ at: string }>(`SELECT to_json(clock_timestamp()) #>> '{}' AS at`);
  const fencedAt = at[0].at;
  const { rows } = await blue.query<{ pid: string }>(
    `WITH victims AS MATERIALIZED (
       SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND backend_type = 'client backend'
          AND pid <> pg_backend_pid() AND application_name IS DISTINCT FROM $1)
     SELECT pid::text AS pid FROM victims WHERE pg_terminate_backend(pid)`,
    [OWN_APPLICATION_NAME],
  );
  const terminated = rows.map((r) => Number(r.pid));
  await waitForExit(blue, terminated);
  return {
    fenced: true,
    database,
    terminatedSessions: terminated.length,
    fencedAt,
    ...(await fenceHoles(blue, fencedAt)),
  };
}

/** Prepared transactions of blue's database, and the backends older than `fencedAt` the fence does not hold. */
export async function fenceHoles(blue: pg.Client, fencedAt: string): Promise<FenceHoles> {
  const prepared = await blue.query<{ gid: string; owner: string; prepared: string }>(
    `SELECT gid, owner::text AS owner, to_json(prepared) #>> '{}' AS prepared
       FROM pg_prepared_xacts WHERE database = current_database() ORDER BY prepared, gid`,
  );
  // Not listed: the walsenders (logical decoding writes nothing), autovacuum and parallel
  // workers (a parallel worker belongs to a leader, which is listed itself).
  const sessions = await blue.query<{
    pid: string;
    usename: string | null;
    application_name: string;
    backend_type: string;
    backend_start: string;
  }>(
    `SELECT pid::text AS pid, usename::text AS usename, coalesce(application_name, '') AS application_name,
            backend_type, to_json(backend_start) #>> '{}' AS backend_start
       FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid()
        AND backend_start < $1::timestamptz AND application_name IS DISTINCT FROM $2
        AND backend_type NOT IN ('walsender', 'autovacuum worker', 'parallel worker')
      ORDER BY backend_start, pid`,
    [fencedAt, OWN_APPLICATION_NAME],
  );
  return {
    preparedTransactions: prepared.rows,
    sessions: sessions.rows.map((s) => ({
      pid: Number(s.pid),
      usename: s.usename,
      applicationName: s.application_name,
      backendType: s.backend_type,
      backendStart: s.backend_start,
    })),
  };
}

/** What to do about each hole, for the cutover report; empty when there is none. */
export function describeFenceHoles(holes: FenceHoles): string[] {
  const out: string[] = [];
  if (holes.preparedTransactions.length > 0) {
    const list = holes.preparedTransactions
      .map((p) => `'${p.gid}' (owner ${p.owner}, prepared ${p.prepared})`)
      .join(', ');
    out.push(
      `${holes.preparedTransactions.length} prepared transaction(s) on blue, which the fence cannot stop (COMMIT PREPARED works read-only): ${list}; ` +
        "finish each with COMMIT PREPARED 'gid' (its changes then reach green) or ROLLBACK PREPARED 'gid', then run the cutover again",
    );
  }
  if (holes.sessions.length > 0) {
    const list = holes.sessions
      .map(
        (s) =>
          `pid ${s.pid} (user ${s.usename ?? '?'}, application "${s.applicationName}", ${s.backendType}, started ${s.backendStart})`,
      )
      .join(', ');
    out.push(
      `${holes.sessions.length} session(s) started before the fence and may still write to blue: ${list}; ` +
        'stop what runs them (a subscription, a scheduler, an extension) or terminate them with SELECT pg_terminate_backend(pid) ' +
        '(a session that reconnects is read-only), then run the cutover again',
    );
  }
  return out;
}

/** Undoes fence() and the reverse guard. Sessions that connected while fenced stay read-only until they reconnect. */
export async function unfence(blue: pg.Client): Promise<FenceResult> {
  const database = await currentDatabase(blue);
  await removeReverseGuard(blue);
  try {
    await blue.query(`ALTER DATABASE ${quoteIdent(database)} RESET default_transaction_read_only`);
  } catch (err) {
    throw new TealError(
      'TEAL_FENCE_FAILED',
      `cannot unfence blue database ${database}: ${(err as Error).message} — run ALTER DATABASE ${quoteIdent(database)} RESET default_transaction_read_only as its owner`,
      { status: 500, cause: err },
    );
  }
  return {
    fenced: false,
    database,
    terminatedSessions: 0,
    fencedAt: null,
    preparedTransactions: [],
    sessions: [],
  };
}

/** True when the database-level setting of the fence is in place. */
export async function isFenced(blue: pg.Client): Promise<boolean> {
  const { rows } = await blue.query<{ fenced: string }>(
    `SELECT EXISTS (
       SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
        WHERE d.datname = current_database() AND s.setrole = 0
          AND $1 = ANY (s.setconfig))::text AS fenced`,
    [FENCE_SETTING],
  );
  return rows[0]?.fenced === 'true';
}

/** pg_terminate_backend only signals: wait (bounded) until those backends are gone, so fenceHoles sees the rest. */
async function waitForExit(blue: pg.Client, pids: number[]): Promise<void> {
  const deadline = Date.now() + EXIT_WAIT_MS;
  while (pids.length > 0 && Date.now() < deadline) {
    const { rows } = await blue.query<{ n: string }>(
      'SELECT count(*)::text AS n FROM pg_stat_activity WHERE pid = ANY ($1::int[])',
      [pids],
    );
    if (rows[0]?.n === '0') return;
    await abortableDelay(50);
  }
}

async function currentDatabase(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ db: string }>('SELECT current_database() AS db');
  return rows[0].db;
}
