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

export async function verifyTable(
  clients: { blue: pg.Client; green: pg.Client; casts: GreenCasts },
  opts: VerifyOptions,
  blueName: string,
): Promise<VerifyTableReport> {
  const { blue, green, casts } = clients;
  const chunkRows = opts.chunkRows ?? 10_000;
  const report = emptyTableReport(blueName);
  // Each side reads one snapshot for the whole table, so chunks cannot tear.
  await blue.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  await green.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const plan = await readPlan(blue, green, opts, blueName);
    report.green = plan.greenName;
    if ('error' in plan) {
      report.error = plan.error;
      return report;
    }
    report.columns = plan.compared.map((c) => c.green);
    report.skippedColumns = plan.skipped;
    const collector = new DiffCollector(
      plan.greenKeys.map((k) => k.name),
      report.columns,
      opts.maxKeysPerTable ?? 100,
    );
    const estimate = await blue.query<string[]>({
      text: 'SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = $1::regclass',
      values: [plan.blueRel],
      rowMode: 'array',
    });
    const rowsTotalEstimate = Number(estimate.rows[0]?.[0] ?? 0);
    const nKeys = plan.greenKeys.length;
    const run = async (client: pg.Client, side: 'blue' | 'green', query: ChunkQuery) => {
      opts.onChunkQuery?.(side, query);
      return (await client.query<PgText[]>({ ...query, rowMode: 'array' })).rows;
    };
    const toCompare = (r: PgText[]): CompareRow => ({ key: r.slice(0, nKeys), values: r.slice(nKeys) });
    const compareChunk = (expected: readonly CompareRow[], actual: readonly CompareRow[]) => {
      report.chunks++;
      const a = summarizeChunk(expected);
      const b = summarizeChunk(actual);
      if (a.count !== b.count || a.checksum !== b.checksum) {
        report.mismatchedChunks++;
        collector.add(diffChunk(expected, actual));
      }
    };
    // Blue rows through the transforms, then through green's input functions where types differ.
    const expectedOf = async (blueRows: PgText[][]) => {
      const expected = expectedRows(plan, opts.transforms, blueRows);
      return { expected, rows: (await normalizeChunk(casts.run, plan, expected.rows, null)).rows };
    };

    const greenCount = await green.query<string[]>({
      text: `SELECT count(*) FROM ${plan.greenRel}`,
      rowMode: 'array',
    });
    report.greenRows = Number(greenCount.rows[0][0]);
    // Green rows found by the blue chunks' lookups: when they are all of green's, nothing is extra.
    let matched = 0;

    let blueAfter: PgText[] | null = null; // blue's last key, blue text
    for (;;) {
      checkAbort(opts.signal);
      let blueRows = await run(blue, 'blue', blueChunkQuery(plan, blueAfter, chunkRows));
      const full = blueRows.length === chunkRows;
      if (blueRows.length === 0) break;
      const lastKey = plan.blueKeyIndex.map((i) => blueRows[blueRows.length - 1][i]);
      if (full && !plan.blueKeyUnique) {
        // Rows may share a key: the chunk takes every row of its last key, the next starts after it.
        const same = await run(blue, 'blue', blueKeyQuery(plan, lastKey));
        const inRun = new Set(same.map((r) => canonicalKey(plan.blueKeyIndex.map((i) => r[i]))));
        blueRows = [
          ...blueRows.filter((r) => !inRun.has(canonicalKey(plan.blueKeyIndex.map((i) => r[i])))),
          ...same,
        ];
      }
      const { expected, rows } = await expectedOf(blueRows);
      for (const failure of expected.failures) collector.failure(failure.key, failure.error);
      report.filteredRows += expected.filtered;
      report.blueRows += blueRows.length;
      // A key green's type rejects is in no green row: it stays missing, and is not sent to green.
      const keys = rows.map((r) => r.key).filter((k) => !k.some(isNotValidMark));
      const actual: CompareRow[] = [];
      for (const query of greenLookupQueries(plan, keys))
        for (const r of await run(green, 'green', query)) actual.push(toCompare(r));
      matched += actual.length;
      compareChunk(rows, actual);
      opts.onProgress?.({ table: blueName, rowsDone: report.blueRows, rowsTotalEstimate });
      blueAfter = lastKey;
      if (!full) break;
    }

    // Rows only green has: green's keys in green's order, looked up in blue through the transforms.
    let greenAfter: PgText[] | null = null;
    while (matched !== report.greenRows) {
      checkAbort(opts.signal);
      const page = await run(green, 'green', greenKeyPageQuery(plan, greenAfter, chunkRows));
      if (page.length === 0) break;
      report.chunks++;
      const greenKeys = page.map((r) => r.slice(0, nKeys));
      const { rows } = await expectedOf(await lookupInBlue(blue, plan, greenKeys, run));
      const expectedKeys = new Set(rows.map((r) => canonicalKey(r.key)));
      const extra = page.flatMap((r) =>
        expectedKeys.has(canonicalKey(r.slice(0, nKeys)))
          ? []
          : Array(Number(r[nKeys])).fill(r.slice(0, nKeys)),
      );
      if (extra.length > 0) {
        report.mismatchedChunks++;
        collector.add({ missingInGreen: [], extraInGreen: extra, different: [] });
      }
      greenAfter = greenKeys[greenKeys.length - 1];
      if (page.length < chunkRows) break;
    }

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
    return report;
  } finally {
    await blue.query('COMMIT').catch(() => {});
    await green.query('COMMIT').catch(() => {});
  }
}
