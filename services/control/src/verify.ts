import { normalizeTableName } from '@teal/config';
import { redactUrl, TealError } from '@teal/errors';
import { connectClient, DEFAULT_TABLES_SQL } from '@teal/postgres';
import type pg from 'pg';
import type { VerifyOptions, VerifyReport, VerifyTableReport } from './verify-report.ts';
import { checkAbort, GreenCasts, verifyTable } from './verify-table-run.ts';

// Verify compares blue, seen through the transforms, with green, table by table.
//
// Blue drives: it is read in key order with keyset pagination, `chunkRows` rows at a time;
// green is read over the same key range (after the previous chunk's last key, up to this
// chunk's last key). Text keys are ordered with COLLATE "C" on both sides, so the two
// orders agree whatever the clusters' collations. Each chunk gets a count and an
// order-independent checksum per side; only when they differ are the two row sets (already
// in memory) matched by key to name missing, extra and different rows. Memory: one blue
// chunk plus the green rows of its key range; green rows after blue's last key are paged.
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

async function connect(url: string): Promise<pg.Client> {
  try {
    return await connectClient(url, { applicationName: 'teal-verify', connectionTimeoutMillis: 10_000 });
  } catch (err) {
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

async function listTables(blue: pg.Client, opts: VerifyOptions): Promise<string[]> {
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
  const started = Date.now();
  const clients: { blue?: pg.Client; green?: pg.Client; cast?: pg.Client } = {};
  try {
    clients.blue = await connect(opts.blueUrl);
    clients.green = await connect(opts.greenUrl);
    // Casting probes may fail; they run outside the reading transaction so it survives.
    clients.cast = await connect(opts.greenUrl);
    const casts = new GreenCasts(clients.cast);
    const tables: VerifyTableReport[] = [];
    for (const name of await listTables(clients.blue, opts)) {
      checkAbort(opts.signal);
      tables.push(await verifyTable({ blue: clients.blue, green: clients.green, casts }, opts, name));
    }
    const finished = Date.now();
    return {
      ok: tables.every((t) => t.ok),
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      durationMs: finished - started,
      tables,
    };
  } finally {
    await Promise.all(Object.values(clients).map((c) => c?.end().catch(() => {})));
  }
}
