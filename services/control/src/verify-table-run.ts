import type { PgText } from '@teal/change-event';
import { parseTableName } from '@teal/config';
import { TealError } from '@teal/errors';
import type pg from 'pg';
import { type CompareRow, canonicalKey, DiffCollector, diffChunk, summarizeChunk } from './verify-diff.ts';
import {
  type CastRunner,
  castBatchSql,
  castExpr,
  isNotValidMark,
  normalizeChunk,
  notValidFor,
} from './verify-normalize.ts';
import {
  blueChunkQuery,
  blueKeyQuery,
  blueLookupQueries,
  type ChunkQuery,
  type ColumnMeta,
  type ExpectedChunk,
  expectedRows,
  greenKeyPageQuery,
  greenLookupQueries,
  type PlanError,
  planTable,
  type TablePlan,
} from './verify-plan.ts';
import { emptyTableReport, type VerifyOptions, type VerifyTableReport } from './verify-report.ts';

// One table's run, each side inside one snapshot: catalog reads; then blue in its own key
// order chunk by chunk, each chunk against green's rows of the same keys (looked up by key);
// then, only when green holds more rows than those lookups found, green in its own key order,
// page by page, its keys looked up in blue to name the rows blue does not have. Planning,
// casts and diffs are pure (verify-plan.ts, verify-normalize.ts, verify-diff.ts); this file
// owns the queries.

const COLUMNS_SQL = `
  SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory, (NOT a.attnotnull)::text,
         (SELECT array_position(i.indkey::int2[], a.attnum) FROM pg_index i
           WHERE i.indrelid = c.oid
             AND ((c.relreplident = 'i' AND i.indisreplident) OR (c.relreplident <> 'i' AND i.indisprimary))
           LIMIT 1),
         c.relreplident::text
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_type t ON t.oid = a.atttypid
   WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
   ORDER BY a.attnum`;

/** Each unique index (no predicate, no expression) whose key columns are all NOT NULL: its column names as JSON. */
const UNIQUE_INDEXES_SQL = `
  SELECT (SELECT json_agg(a.attname)::text FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) AS k(attnum)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
     AND NOT EXISTS (SELECT 1 FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) AS k(attnum)
                       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE NOT a.attnotnull)`;

interface TableCatalog {
  columns: ColumnMeta[];
  replicaIdentityFull: boolean;
}

async function columnsOf(client: pg.Client, schema: string, table: string): Promise<TableCatalog> {
  const result = await client.query<string[]>({
    text: COLUMNS_SQL,
    values: [schema, table],
    rowMode: 'array',
  });
  return {
    columns: result.rows.map(([name, type, category, nullable, keyPosition]) => ({
      name,
      type,
      category,
      nullable: nullable === 'true',
      keyPosition: keyPosition === null ? null : Number(keyPosition),
    })),
    replicaIdentityFull: result.rows[0]?.[5] === 'f',
  };
}

async function uniqueIndexesOf(client: pg.Client, schema: string, table: string): Promise<string[][]> {
  const result = await client.query<string[]>({
    text: UNIQUE_INDEXES_SQL,
    values: [schema, table],
    rowMode: 'array',
  });
  return result.rows.map(([columns]) => JSON.parse(columns) as string[]);
}

async function readPlan(
  blue: pg.Client,
  green: pg.Client,
  opts: VerifyOptions,
  blueName: string,
): Promise<TablePlan | PlanError> {
  const name = parseTableName(blueName);
  if (!name) return { error: `not a table name: ${blueName}`, greenName: blueName };
  const target = opts.transforms.target(name.schema, name.table);
  const blueCatalog = await columnsOf(blue, name.schema, name.table);
  const blueColumns = blueCatalog.columns;
  // Green is asked only about a table blue has, as the error names blue's first.
  const greenColumns =
    blueColumns.length === 0 ? [] : (await columnsOf(green, target.schema, target.table)).columns;
  const blueUniqueIndexes =
    blueColumns.length === 0 ? [] : await uniqueIndexesOf(blue, name.schema, name.table);
  return planTable(
    {
      blueName,
      blue: name,
      green: target,
      blueColumns,
      greenColumns,
      blueReplicaIdentityFull: blueCatalog.replicaIdentityFull,
      blueUniqueIndexes,
    },
    opts.config,
    opts.transforms,
  );
}

/** Text values through green's input functions; `run` is the CastRunner the normalizer needs. */
export class GreenCasts {
  constructor(private readonly green: pg.Client) {}

  readonly run: CastRunner = async (chains, columns) => {
    if (chains.length === 0 || columns[0].length === 0) return columns;
    try {
      const result = await this.green.query<PgText[]>({
        text: castBatchSql(chains),
        values: columns,
        rowMode: 'array',
      });
      return chains.map((_, i) => result.rows.map((row) => row[i]));
    } catch {
      // Some value does not fit green's type (the consumer would dead-letter its row): find
      // which, one value at a time, and mark it so that it never equals green's text.
      const out: PgText[][] = [];
      for (const [i, chain] of chains.entries()) {
        const column: PgText[] = [];
        for (const value of columns[i]) column.push(await this.one(chain, value));
        out.push(column);
      }
      return out;
    }
  };

  private async one(chain: readonly string[], value: PgText): Promise<PgText> {
    if (value === null) return null;
    try {
      const result = await this.green.query<PgText[]>({
        text: `SELECT ${castExpr('$1::text', chain)}`,
        values: [value],
        rowMode: 'array',
      });
      return result.rows[0][0];
    } catch (err) {
      return notValidFor(chain, (err as Error).message);
    }
  }
}

/**
 * Blue's rows of green's `keys`. Green's text of a key whose type differs from blue's may not
 * be valid for blue's type (then no blue row has it): the lookups run under a savepoint, and
 * after a failure key by key, skipping those blue rejects.
 */
async function lookupInBlue(
  blue: pg.Client,
  plan: TablePlan,
  keys: PgText[][],
  run: (client: pg.Client, side: 'blue', query: ChunkQuery) => Promise<PgText[][]>,
): Promise<PgText[][]> {
  const lookup = async (some: PgText[][]) => {
    const rows: PgText[][] = [];
    for (const query of blueLookupQueries(plan, some)) rows.push(...(await run(blue, 'blue', query)));
    return rows;
  };
  if (plan.keyCasts.every((chain) => chain.length === 0)) return lookup(keys);
  const guarded = async (some: PgText[][]) => {
    await blue.query('SAVEPOINT teal_verify_lookup');
    try {
      const rows = await lookup(some);
      await blue.query('RELEASE SAVEPOINT teal_verify_lookup');
      return rows;
    } catch (err) {
      await blue.query('ROLLBACK TO SAVEPOINT teal_verify_lookup');
      throw err;
    }
  };
  try {
    return await guarded(keys);
  } catch {
    const rows: PgText[][] = [];
    for (const key of keys) rows.push(...(await guarded([key]).catch(() => [])));
    return rows;
  }
}

export function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new TealError('TEAL_VERIFY_ABORTED', 'verify was cancelled', { status: 499 });
}

/** One table's plan and the reads of a comparison, on clients whose transactions the caller owns. */
export interface TableRun {
  readonly blueName: string;
  readonly plan: TablePlan;
  readonly opts: VerifyOptions;
  readonly blue: pg.Client;
  readonly green: pg.Client;
  run(client: pg.Client, side: 'blue' | 'green', query: ChunkQuery): Promise<PgText[][]>;
  /** Blue rows through the transforms, then through green's input functions where types differ. */
  expectedOf(blueRows: PgText[][]): Promise<{ expected: ExpectedChunk; rows: CompareRow[] }>;
}

export type VerifyClients = { blue: pg.Client; green: pg.Client; casts: GreenCasts };

export async function openTable(
  clients: VerifyClients,
  opts: VerifyOptions,
  blueName: string,
): Promise<TableRun | PlanError> {
  const { blue, green, casts } = clients;
  const plan = await readPlan(blue, green, opts, blueName);
  if ('error' in plan) return plan;
  return {
    blueName,
    plan,
    opts,
    blue,
    green,
    run: async (client, side, query) => {
      opts.onChunkQuery?.(side, query);
      return (await client.query<PgText[]>({ ...query, rowMode: 'array' })).rows;
    },
    expectedOf: async (blueRows) => {
      const expected = expectedRows(plan, opts.transforms, blueRows);
      return { expected, rows: (await normalizeChunk(casts.run, plan, expected.rows, null)).rows };
    },
  };
}

const toCompare = (nKeys: number, r: PgText[]): CompareRow => ({
  key: r.slice(0, nKeys),
  values: r.slice(nKeys),
});

/** Green's rows of these green keys (green text), compared columns after the keys. */
async function greenRowsOf(t: TableRun, keys: readonly (readonly PgText[])[]): Promise<CompareRow[]> {
  const actual: CompareRow[] = [];
  for (const query of greenLookupQueries(t.plan, keys))
    for (const r of await t.run(t.green, 'green', query)) actual.push(toCompare(t.plan.greenKeys.length, r));
  return actual;
}

export interface BlueChunk {
  expected: ExpectedChunk;
  /** Blue's rows as green should hold them, and green's rows of the same keys. */
  rows: CompareRow[];
  actual: CompareRow[];
  blueRows: number;
  lastKey: PgText[];
  /** The chunk was full: more blue rows may follow `lastKey`. */
  full: boolean;
}

/** The next chunk of blue after `after` (blue's key, blue text) and green's rows of its keys; null past the end. */
export async function readBlueChunk(
  t: TableRun,
  after: PgText[] | null,
  chunkRows: number,
): Promise<BlueChunk | null> {
  const { plan } = t;
  let blueRows = await t.run(t.blue, 'blue', blueChunkQuery(plan, after, chunkRows));
  const full = blueRows.length === chunkRows;
  if (blueRows.length === 0) return null;
  const lastKey = plan.blueKeyIndex.map((i) => blueRows[blueRows.length - 1][i]);
  if (full && !plan.blueKeyUnique) {
    // Rows may share a key: the chunk takes every row of its last key, the next starts after it.
    const same = await t.run(t.blue, 'blue', blueKeyQuery(plan, lastKey));
    const inRun = new Set(same.map((r) => canonicalKey(plan.blueKeyIndex.map((i) => r[i]))));
    blueRows = [
      ...blueRows.filter((r) => !inRun.has(canonicalKey(plan.blueKeyIndex.map((i) => r[i])))),
      ...same,
    ];
  }
  const { expected, rows } = await t.expectedOf(blueRows);
  // A key green's type rejects is in no green row: it stays missing, and is not sent to green.
  const keys = rows.map((r) => r.key).filter((k) => !k.some(isNotValidMark));
  return { expected, rows, actual: await greenRowsOf(t, keys), blueRows: blueRows.length, lastKey, full };
}

/**
 * Both sides of exactly these green keys (green text): green's rows by key, blue's by the same
 * key through the transforms. What a re-check of known keys reads (online verify, cutover's delta).
 */
export async function readKeys(
  t: TableRun,
  greenKeys: PgText[][],
): Promise<{ expected: ExpectedChunk; rows: CompareRow[]; actual: CompareRow[] }> {
  const { expected, rows } = await t.expectedOf(await lookupInBlue(t.blue, t.plan, greenKeys, t.run));
  return { expected, rows, actual: await greenRowsOf(t, greenKeys) };
}

/** One page of green's keys in green's order after `after`, with those of them blue (through the transforms) lacks. */
export async function readGreenPage(
  t: TableRun,
  after: PgText[] | null,
  limit: number,
): Promise<{ keys: PgText[][]; extra: PgText[][] } | null> {
  const nKeys = t.plan.greenKeys.length;
  const page = await t.run(t.green, 'green', greenKeyPageQuery(t.plan, after, limit));
  if (page.length === 0) return null;
  const keys = page.map((r) => r.slice(0, nKeys));
  const { rows } = await t.expectedOf(await lookupInBlue(t.blue, t.plan, keys, t.run));
  const expectedKeys = new Set(rows.map((r) => canonicalKey(r.key)));
  const extra = page.flatMap((r) =>
    expectedKeys.has(canonicalKey(r.slice(0, nKeys))) ? [] : Array(Number(r[nKeys])).fill(r.slice(0, nKeys)),
  );
  return { keys, extra };
}

/** The report's verdict once its lists are filled. */
export function concludeTable(
  report: VerifyTableReport,
  collector: DiffCollector,
  opts: VerifyOptions,
): void {
  report.missingInGreen = collector.missingInGreen;
  report.extraInGreen = collector.extraInGreen;
  report.different = collector.different;
  report.transformFailures = collector.transformFailures;
  report.truncated = collector.truncated;
  report.ok =
    report.mismatchedChunks === 0 &&
    collector.transformFailures.length === 0 &&
    !collector.truncated &&
    (report.skippedColumns.length === 0 || opts.config.apply.onMissingColumn === 'ignore');
}

/** A report and its collector for a table the run could plan. */
export function startTableReport(t: TableRun): { report: VerifyTableReport; collector: DiffCollector } {
  const report = emptyTableReport(t.blueName);
  report.green = t.plan.greenName;
  report.columns = t.plan.compared.map((c) => c.green);
  report.skippedColumns = t.plan.skipped;
  const collector = new DiffCollector(
    t.plan.greenKeys.map((k) => k.name),
    report.columns,
    t.opts.maxKeysPerTable ?? 100,
  );
  return { report, collector };
}

/** Adds one compared set of rows to the report: a chunk, and its keys when it differs. */
export function addCompared(
  report: VerifyTableReport,
  collector: DiffCollector,
  expected: readonly CompareRow[],
  actual: readonly CompareRow[],
): boolean {
  report.chunks++;
  const a = summarizeChunk(expected);
  const b = summarizeChunk(actual);
  if (a.count === b.count && a.checksum === b.checksum) return true;
  report.mismatchedChunks++;
  collector.add(diffChunk(expected, actual));
  return false;
}

export async function blueRowEstimate(t: TableRun): Promise<number> {
  const estimate = await t.blue.query<string[]>({
    text: 'SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = $1::regclass',
    values: [t.plan.blueRel],
    rowMode: 'array',
  });
  return Number(estimate.rows[0]?.[0] ?? 0);
}

/** The report of a table that could not be planned (no such table, no key, a transform refusing it). */
export function planErrorReport(blueName: string, e: PlanError): VerifyTableReport {
  const report = emptyTableReport(blueName);
  report.green = e.greenName;
  report.error = e.error;
  return report;
}

/** `fn` with each side inside one REPEATABLE READ snapshot, as a full verify reads a table. */
export async function inOneSnapshotEach<T>(clients: VerifyClients, fn: () => Promise<T>): Promise<T> {
  await clients.blue.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  await clients.green.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    return await fn();
  } finally {
    await clients.blue.query('COMMIT').catch(() => {});
    await clients.green.query('COMMIT').catch(() => {});
  }
}

export async function verifyTable(
  clients: VerifyClients,
  opts: VerifyOptions,
  blueName: string,
): Promise<VerifyTableReport> {
  const { green } = clients;
  const chunkRows = opts.chunkRows ?? 10_000;
  // Each side reads one snapshot for the whole table, so chunks cannot tear.
  return inOneSnapshotEach(clients, async () => {
    const t = await openTable(clients, opts, blueName);
    if ('error' in t) return planErrorReport(blueName, t);
    const { report, collector } = startTableReport(t);
    const rowsTotalEstimate = await blueRowEstimate(t);
    const greenCount = await green.query<string[]>({
      text: `SELECT count(*) FROM ${t.plan.greenRel}`,
      rowMode: 'array',
    });
    report.greenRows = Number(greenCount.rows[0][0]);
    // Green rows found by the blue chunks' lookups: when they are all of green's, nothing is extra.
    let matched = 0;

    let blueAfter: PgText[] | null = null; // blue's last key, blue text
    for (;;) {
      checkAbort(opts.signal);
      const chunk = await readBlueChunk(t, blueAfter, chunkRows);
      if (!chunk) break;
      for (const failure of chunk.expected.failures) collector.failure(failure.key, failure.error);
      report.filteredRows += chunk.expected.filtered;
      report.blueRows += chunk.blueRows;
      matched += chunk.actual.length;
      addCompared(report, collector, chunk.rows, chunk.actual);
      opts.onProgress?.({ table: blueName, rowsDone: report.blueRows, rowsTotalEstimate });
      blueAfter = chunk.lastKey;
      if (!chunk.full) break;
    }

    // Rows only green has: green's keys in green's order, looked up in blue through the transforms.
    let greenAfter: PgText[] | null = null;
    while (matched !== report.greenRows) {
      checkAbort(opts.signal);
      const page = await readGreenPage(t, greenAfter, chunkRows);
      if (!page) break;
      report.chunks++;
      if (page.extra.length > 0) {
        report.mismatchedChunks++;
        collector.add({ missingInGreen: [], extraInGreen: page.extra, different: [] });
      }
      greenAfter = page.keys[page.keys.length - 1];
      if (page.keys.length < chunkRows) break;
    }
    concludeTable(report, collector, opts);
    return report;
  });
}
