import type { PgText } from '@teal/change-event';
import { parseTableName } from '@teal/config';
import { TealError } from '@teal/errors';
import type pg from 'pg';
import { type CompareRow, DiffCollector, diffChunk, summarizeChunk } from './verify-diff.ts';
import { type CastRunner, castBatchSql, castExpr, normalizeChunk, notValidFor } from './verify-normalize.ts';
import {
  blueChunkQuery,
  type ColumnMeta,
  expectedRows,
  greenRangeQuery,
  type PlanError,
  planTable,
  type TablePlan,
} from './verify-plan.ts';
import { emptyTableReport, type VerifyOptions, type VerifyTableReport } from './verify-report.ts';

// One table's run: catalog reads, then blue in key order chunk by chunk against green over
// the same key range, each side inside one snapshot. Planning, casts and diffs are pure
// (verify-plan.ts, verify-normalize.ts, verify-diff.ts); this file owns the queries.

const COLUMNS_SQL = `
  SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory, t.typcollation <> 0,
         (SELECT array_position(i.indkey::int2[], a.attnum) FROM pg_index i
           WHERE i.indrelid = c.oid AND i.indisprimary)
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_type t ON t.oid = a.atttypid
   WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
   ORDER BY a.attnum`;

async function columnsOf(client: pg.Client, schema: string, table: string): Promise<ColumnMeta[]> {
  const result = await client.query<string[]>({
    text: COLUMNS_SQL,
    values: [schema, table],
    rowMode: 'array',
  });
  return result.rows.map(([name, type, category, collatable, keyPosition]) => ({
    name,
    type,
    category,
    collatable: collatable === 't',
    keyPosition: keyPosition === null ? null : Number(keyPosition),
  }));
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
  const blueColumns = await columnsOf(blue, name.schema, name.table);
  // Green is asked only about a table blue has, as the error names blue's first.
  const greenColumns = blueColumns.length === 0 ? [] : await columnsOf(green, target.schema, target.table);
  return planTable(
    { blueName, blue: name, green: target, blueColumns, greenColumns },
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

    let blueAfter: PgText[] | null = null; // blue's last key, blue text
    let greenAfter: PgText[] | null = null; // the same key, as green text

    const readGreen = async (after: PgText[] | null, upTo: PgText[] | null, limit: number | null) => {
      const result = await green.query<PgText[]>({
        ...greenRangeQuery(plan, after, upTo, limit),
        rowMode: 'array',
      });
      return result.rows.map((r): CompareRow => ({ key: r.slice(0, nKeys), values: r.slice(nKeys) }));
    };
    const compareChunk = (expected: readonly CompareRow[], actual: readonly CompareRow[]) => {
      report.greenRows += actual.length;
      report.chunks++;
      const a = summarizeChunk(expected);
      const b = summarizeChunk(actual);
      if (a.count !== b.count || a.checksum !== b.checksum) {
        report.mismatchedChunks++;
        collector.add(diffChunk(expected, actual));
      }
    };
    for (;;) {
      checkAbort(opts.signal);
      const blueResult: pg.QueryResult<PgText[]> = await blue.query<PgText[]>({
        ...blueChunkQuery(plan, blueAfter, chunkRows),
        rowMode: 'array',
      });
      const blueRows = blueResult.rows;

      // Blue rows through the transforms, then through green's input functions where types differ.
      const expected = expectedRows(plan, opts.transforms, blueRows);
      for (const failure of expected.failures) collector.failure(failure.key, failure.error);
      report.filteredRows += expected.filtered;
      report.blueRows += blueRows.length;
      const upper: PgText[] | null =
        blueRows.length > 0 ? plan.blueKeyIndex.map((i) => blueRows[blueRows.length - 1][i]) : null;
      const normalized = await normalizeChunk(casts.run, plan, expected.rows, upper ? [...upper] : null);
      if (upper) {
        // Green over the same key range: after the previous chunk's last key, up to this one's.
        const actual = await readGreen(greenAfter, normalized.upper, null);
        compareChunk(normalized.rows, actual);
      }
      opts.onProgress?.({ table: blueName, rowsDone: report.blueRows, rowsTotalEstimate });
      if (upper && normalized.upper) {
        blueAfter = upper;
        greenAfter = normalized.upper;
      }
      if (blueRows.length < chunkRows) break;
    }
    // Green rows after blue's last key are all extra; read them in pages too.
    for (;;) {
      checkAbort(opts.signal);
      const actual = await readGreen(greenAfter, null, chunkRows);
      if (actual.length === 0) break;
      compareChunk([], actual);
      greenAfter = [...actual[actual.length - 1].key];
      if (actual.length < chunkRows) break;
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
