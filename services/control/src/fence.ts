import { TealError } from '@teal/errors';
import { quoteIdent } from '@teal/postgres';
import type pg from 'pg';
import type { FenceResult } from './types.ts';

// The fence makes blue refuse new writes so that a drain's LSN is final:
//   ALTER DATABASE <db> SET default_transaction_read_only = on
// applies to every session that starts afterwards, so the sessions already connected are
// terminated (pg_terminate_backend) and reconnect read-only; their open transactions roll
// back, which loses nothing that was committed. Sessions whose application_name starts
// with "teal" are teal's own (the walsender is not a client backend at all) and are kept.
//
// Limits (docs/api.md): a session may still `SET transaction_read_only = off` or
// `SET default_transaction_read_only = off`, a role or a connection string may set it off
// at login, and other databases of the cluster are not fenced. It stops well-behaved
// applications, not a determined superuser.

const FENCE_SETTING = 'default_transaction_read_only=on';

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
  const { rows } = await blue.query<{ n: string }>(
    `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::text AS n
       FROM pg_stat_activity
      WHERE datname = current_database() AND backend_type = 'client backend'
        AND pid <> pg_backend_pid() AND coalesce(application_name, '') NOT LIKE 'teal%'`,
  );
  return { fenced: true, database, terminatedSessions: Number(rows[0]?.n ?? 0) };
}

/** Undoes fence(). Sessions that connected while fenced stay read-only until they reconnect. */
export async function unfence(blue: pg.Client): Promise<FenceResult> {
  const database = await currentDatabase(blue);
  try {
    await blue.query(`ALTER DATABASE ${quoteIdent(database)} RESET default_transaction_read_only`);
  } catch (err) {
    throw new TealError(
      'TEAL_FENCE_FAILED',
      `cannot unfence blue database ${database}: ${(err as Error).message} — run ALTER DATABASE ${quoteIdent(database)} RESET default_transaction_read_only as its owner`,
      { status: 500, cause: err },
    );
  }
  return { fenced: false, database, terminatedSessions: 0 };
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

async function currentDatabase(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ db: string }>('SELECT current_database() AS db');
  return rows[0].db;
}
