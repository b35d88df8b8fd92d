import { normalizeTableName } from '@teal/config';
import { redactUrl, TealError } from '@teal/errors';
import { connectClient, DEFAULT_TABLES_SQL } from '@teal/postgres';
import type pg from 'pg';
import type { VerifyOptions, VerifyReport, VerifyTableReport } from './verify-report.ts';
import { checkAbort, GreenCasts, type VerifyClients, verifyTable } from './verify-table-run.ts';

// Verify compares blue, seen through the transforms, with green, table by table.
//
// Blue drives: it is read in its own key order (its key index, its collation) with NULL-safe
// keyset pagination, `chunkRows` rows at a time; green's rows of each chunk are fetched by
// key (index lookups), so the two sides never have to order keys alike (collations differ
// between engine versions, the normal case in an upgrade). Each chunk gets a count and an
// order-independent checksum per side; only when they differ are the two row sets (already
// in memory) matched by key to name missing, extra and different rows. When the lookups found
// fewer green rows than green holds, green is paged in its own key order and its keys are
// looked up in blue, through the transforms, to name the rows only green has. Memory: one
// chunk per side. Keys are the producer's: keyColumns, the replica identity key, or every
// column under REPLICA IDENTITY FULL (rows may then repeat and compare as multisets).
//
// Values are compared as Postgres text. Where green's column type is not blue's (a `cast`
// transform, a retyped column, a derived column that is not text), blue's text is passed
// through green's own input function (`$1::type::text` in green), as the consumer's
// `$n::type` does on write. Verify is exact only at a drained, fenced point: while writes
// flow it also reports rows that are merely in flight.
//
// Files: verify-report.ts (the answer), verify-plan.ts, verify-normalize.ts and
// verify-diff.ts (pure), verify-table-run.ts (one table's queries), this file (connections).

export {
  type ChunkDiff,
  type ChunkSummary,
  type CompareRow,
  canonicalKey,
  DiffCollector,
  diffChunk,
  rowHash,
  summarizeChunk,
} from './verify-diff.ts';
export type {
  Key,
  VerifyOptions,
  VerifyProgress,
  VerifyReport,
  VerifyTableReport,
} from './verify-report.ts';

export async function connectForVerify(url: string): Promise<pg.Client> {
  try {
    return await connectClient(url, { applicationName: 'teal-verify', connectionTimeoutMillis: 10_000 });
  } catch (err) {
    // A refused TLS or login (TEAL_PG_TLS, TEAL_PG_AUTH) stays itself: trying again cannot help.
    if (err instanceof TealError && !err.retriable)
      throw new TealError(err.code, `verify cannot connect: ${err.message}`, {
        cause: err,
        retriable: false,
      });
    throw new TealError(
      'TEAL_VERIFY_CONNECT',
      `verify cannot connect to ${redactUrl(url)}: ${(err as Error).message}`,
      {
        retriable: true,
        status: 503,
        cause: err,
      },
    );
  }
}

export async function listTables(blue: pg.Client, opts: VerifyOptions): Promise<string[]> {
  if (opts.tables) return opts.tables.map(normalizeTableName);
  if (opts.config.tables !== 'all') return [...opts.config.tables];
  const result = await blue.query<string[]>({ text: DEFAULT_TABLES_SQL, rowMode: 'array' });
  return result.rows.map(([schema, table]) => `${schema}.${table}`);
}

/**
 * Compares every selected blue table, through the transforms, with its green table.
 * Exact at a drained, fenced point; while writes flow, differences may be replication lag.
 */
export async function verifyTables(opts: VerifyOptions): Promise<VerifyReport> {
  return withVerifyClients(opts, async (clients) => {
    const started = Date.now();
    const tables: VerifyTableReport[] = [];
    for (const name of await listTables(clients.blue, opts)) {
      checkAbort(opts.signal);
      tables.push(await verifyTable(clients, opts, name));
    }
    return verifyReport(started, tables, 'full');
  });
}

/** The report of tables compared since `started`. */
export function verifyReport(
  started: number,
  tables: VerifyTableReport[],
  kind: VerifyReport['kind'],
): VerifyReport {
  const finished = Date.now();
  return {
    ok: tables.every((t) => t.ok),
    kind,
    startedAt: new Date(started).toISOString(),
    finishedAt: new Date(finished).toISOString(),
    durationMs: finished - started,
    tables,
  };
}

/** Blue, green and a green session for casting probes (they may fail, so they run outside the reading transaction). */
export async function withVerifyClients<T>(
  opts: Pick<VerifyOptions, 'blueUrl' | 'greenUrl'>,
  fn: (clients: VerifyClients) => Promise<T>,
): Promise<T> {
  const open: pg.Client[] = [];
  const connect = async (url: string) => {
    const c = await connectForVerify(url);
    open.push(c);
    return c;
  };
  try {
    const blue = await connect(opts.blueUrl);
    const green = await connect(opts.greenUrl);
    const casts = new GreenCasts(await connect(opts.greenUrl));
    return await fn({ blue, green, casts });
  } finally {
    await Promise.all(open.map((c) => c.end().catch(() => {})));
  }
}
