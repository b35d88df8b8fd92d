import { createHash } from 'node:crypto';
import type { PgText, Row } from '@teal/change-event';
import { normalizeTableName, parseTableName, type ResolvedConfig, type TransformSet } from '@teal/config';
import { redactUrl, TealError } from '@teal/errors';
import { connectClient, DEFAULT_TABLES_SQL, quoteIdent } from '@teal/postgres';
import type pg from 'pg';

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

export type Key = Record<string, PgText>;

export interface VerifyTableReport {
  blue: string;
  green: string;
  ok: boolean;
  /** Rows read from blue, and those the filter keeps out of green. */
  blueRows: number;
  filteredRows: number;
  greenRows: number;
  chunks: number;
  mismatchedChunks: number;
  /** Green columns compared, and those the transforms produce but green lacks. */
  columns: string[];
  skippedColumns: string[];
  /** Keys use green's key column names and Postgres text values. */
  missingInGreen: Key[];
  extraInGreen: Key[];
  different: { key: Key; columns: string[] }[];
  /** Blue rows whose transform threw (the consumer dead-letters them). */
  transformFailures: { key: Key; error: string }[];
  /** More keys differ than maxKeysPerTable lets the report list. */
  truncated: boolean;
  /** Why the table could not be compared at all. */
  error?: string;
}

export interface VerifyReport {
  ok: boolean;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  tables: VerifyTableReport[];
}

export interface VerifyProgress {
  table: string;
  rowsDone: number;
  rowsTotalEstimate: number;
}

export interface VerifyOptions {
  blueUrl: string;
  greenUrl: string;
  config: ResolvedConfig;
  transforms: TransformSet;
  /** Blue tables, "schema.table" or "table"; default: the config's tables. */
  tables?: string[];
  chunkRows?: number;
  maxKeysPerTable?: number;
  onProgress?: (progress: VerifyProgress) => void;
  signal?: AbortSignal;
}

// ---------------------------------------------------------------------------------------
// Pure part: canonical rows, chunk checksums, and narrowing a mismatched chunk to keys.

/** One row reduced to what is compared: key texts and the compared columns' texts, in order. */
export interface CompareRow {
  readonly key: readonly PgText[];
  readonly values: readonly PgText[];
}

export interface ChunkSummary {
  count: number;
  /** Hex; the sum modulo 2^128 of each row's truncated sha256, so row order does not matter. */
  checksum: string;
}

const MOD_128 = (1n << 128n) - 1n;

/** JSON keeps NULL apart from '' and cannot be confused by tabs or quotes inside values. */
export function canonicalKey(key: readonly PgText[]): string {
  return JSON.stringify(key);
}

export function rowHash(row: CompareRow): bigint {
  const digest = createHash('sha256')
    .update(JSON.stringify([row.key, row.values]))
    .digest();
  return digest.readBigUInt64BE(0) * (1n << 64n) + digest.readBigUInt64BE(8);
}

export function summarizeChunk(rows: readonly CompareRow[]): ChunkSummary {
  let sum = 0n;
  for (const row of rows) sum = (sum + rowHash(row)) & MOD_128;
  return { count: rows.length, checksum: sum.toString(16).padStart(32, '0') };
}

export interface ChunkDiff {
  missingInGreen: (readonly PgText[])[];
  extraInGreen: (readonly PgText[])[];
  /** Differing column indices per key. */
  different: { key: readonly PgText[]; columns: number[] }[];
}

/** Matches the rows of one key range by key. Keys are unique per side (a primary key). */
export function diffChunk(blue: readonly CompareRow[], green: readonly CompareRow[]): ChunkDiff {
  const greenByKey = new Map<string, CompareRow>();
  for (const row of green) greenByKey.set(canonicalKey(row.key), row);
  const diff: ChunkDiff = { missingInGreen: [], extraInGreen: [], different: [] };
  for (const row of blue) {
    const k = canonicalKey(row.key);
    const other = greenByKey.get(k);
    if (!other) {
      diff.missingInGreen.push(row.key);
      continue;
    }
    greenByKey.delete(k);
    const columns: number[] = [];
    row.values.forEach((value, i) => {
      if (value !== other.values[i]) columns.push(i);
    });
    if (columns.length > 0) diff.different.push({ key: row.key, columns });
  }
  for (const row of greenByKey.values()) diff.extraInGreen.push(row.key);
  return diff;
}

/** Collects a table's differences up to a limit of keys, then only counts. */
export class DiffCollector {
  readonly missingInGreen: Key[] = [];
  readonly extraInGreen: Key[] = [];
  readonly different: { key: Key; columns: string[] }[] = [];
  readonly transformFailures: { key: Key; error: string }[] = [];
  truncated = false;
  private listed = 0;

  constructor(
    private readonly keyColumns: readonly string[],
    private readonly columns: readonly string[],
    private readonly maxKeys: number,
  ) {}

  private room(): boolean {
    if (this.listed < this.maxKeys) {
      this.listed++;
      return true;
    }
    this.truncated = true;
    return false;
  }

  key(values: readonly PgText[]): Key {
    return Object.fromEntries(this.keyColumns.map((name, i) => [name, values[i]]));
  }

  add(diff: ChunkDiff): void {
    for (const key of diff.missingInGreen) if (this.room()) this.missingInGreen.push(this.key(key));
    for (const key of diff.extraInGreen) if (this.room()) this.extraInGreen.push(this.key(key));
    for (const { key, columns } of diff.different) {
      if (this.room())
        this.different.push({ key: this.key(key), columns: columns.map((i) => this.columns[i]) });
    }
  }

  failure(key: readonly PgText[], error: string): void {
    if (this.room()) this.transformFailures.push({ key: this.key(key), error });
  }
}

// ---------------------------------------------------------------------------------------
// I/O part.

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

interface ColumnMeta {
  name: string;
  /** format_type(): quoted and qualified as needed, safe after `::`. */
  type: string;
  category: string;
  collatable: boolean;
  keyPosition: number | null;
}

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

/** `(k1 COLLATE "C", k2)` and `($1::text, $2::int4)` for a keyset predicate and ORDER BY. */
function keyExprs(keys: readonly ColumnMeta[]): string[] {
  return keys.map((k) => `${quoteIdent(k.name)}${k.collatable ? ' COLLATE "C"' : ''}`);
}

function keyParams(keys: readonly ColumnMeta[], first: number): string {
  return `(${keys.map((k, i) => `$${first + i}::${k.type}`).join(', ')})`;
}

interface Plan {
  blueName: string;
  greenName: string;
  blueSchema: string;
  blueTable: string;
  greenRel: string;
  blueRel: string;
  blueColumns: ColumnMeta[];
  blueKeys: ColumnMeta[];
  greenKeys: ColumnMeta[];
  /** Compared green columns, key columns excluded; `casts` empty when blue's text is green's. */
  compared: { green: string; casts: string[] }[];
  skipped: string[];
  /** Per green key column: the casts its blue text goes through in green, if any. */
  keyCasts: string[][];
}

async function planTable(
  blue: pg.Client,
  green: pg.Client,
  opts: VerifyOptions,
  blueName: string,
): Promise<Plan | { error: string; greenName: string }> {
  const name = parseTableName(blueName);
  if (!name) return { error: `not a table name: ${blueName}`, greenName: blueName };
  const { schema, table } = name;
  const { transforms } = opts;
  const target = transforms.target(schema, table);
  const greenName = `${target.schema}.${target.table}`;
  const blueColumns = await columnsOf(blue, schema, table);
  if (blueColumns.length === 0) return { error: `blue has no table ${blueName}`, greenName };
  const greenColumns = await columnsOf(green, target.schema, target.table);
  if (greenColumns.length === 0) {
    return { error: `green has no table ${greenName}: create it, or set apply.createTables`, greenName };
  }

  let blueKeys = blueColumns
    .filter((c) => c.keyPosition !== null)
    .sort((a, b) => (a.keyPosition ?? 0) - (b.keyPosition ?? 0));
  if (blueKeys.length === 0) {
    const configured = opts.config.keyColumns[blueName];
    if (!configured) {
      return {
        error: `${blueName} has no primary key: add keyColumns["${blueName}"] to teal.config.ts`,
        greenName,
      };
    }
    const missing = configured.filter((k) => !blueColumns.some((c) => c.name === k));
    if (missing.length > 0) {
      return {
        error: `keyColumns["${blueName}"] names columns blue lacks: ${missing.join(', ')}`,
        greenName,
      };
    }
    blueKeys = configured.map((k) => blueColumns.find((c) => c.name === k) as ColumnMeta);
  }
  try {
    transforms.checkTable({ schema, table, columns: blueColumns, keyColumns: blueKeys.map((k) => k.name) });
  } catch (err) {
    return { error: (err as Error).message, greenName };
  }

  const greenByName = new Map(greenColumns.map((c) => [c.name, c]));
  const greenKeys: ColumnMeta[] = [];
  const keyCasts: string[][] = [];
  for (const key of blueKeys) {
    const greenKey = transforms.columnName(schema, table, key.name);
    const meta = greenKey === null ? undefined : greenByName.get(greenKey);
    if (!meta)
      return { error: `green table ${greenName} lacks key column ${greenKey ?? key.name}`, greenName };
    if (meta.category !== key.category) {
      return {
        error: `key column ${key.name} is ${key.type} in blue but ${meta.type} in green; verify needs keys that sort alike`,
        greenName,
      };
    }
    greenKeys.push(meta);
    keyCasts.push(castsFor(meta.type, key.type, transforms.castType(schema, table, meta.name)));
  }

  const keyNames = new Set(greenKeys.map((k) => k.name));
  const produced = new Map<string, { blueType: string | undefined }>();
  for (const column of blueColumns) {
    const greenColumn = transforms.columnName(schema, table, column.name);
    if (greenColumn !== null) produced.set(greenColumn, { blueType: column.type });
  }
  for (const derived of transforms.derivedColumns(schema, table))
    produced.set(derived, { blueType: undefined });
  const compared: Plan['compared'] = [];
  const skipped: string[] = [];
  for (const [column, { blueType }] of produced) {
    if (keyNames.has(column)) continue;
    const meta = greenByName.get(column);
    if (!meta) {
      skipped.push(column);
      continue;
    }
    compared.push({
      green: column,
      casts: castsFor(meta.type, blueType ?? 'text', transforms.castType(schema, table, column)),
    });
  }
  return {
    blueName,
    greenName,
    blueSchema: schema,
    blueTable: table,
    blueRel: `${quoteIdent(schema)}.${quoteIdent(table)}`,
    greenRel: `${quoteIdent(target.schema)}.${quoteIdent(target.table)}`,
    blueColumns,
    blueKeys,
    greenKeys,
    compared,
    skipped,
    keyCasts,
  };
}

/** What the consumer's write does to blue's text: the configured cast, then green's column type. */
function castsFor(greenType: string, blueType: string, cast: string | undefined): string[] {
  if (cast !== undefined) return cast === greenType ? [cast] : [cast, greenType];
  return greenType === blueType ? [] : [greenType];
}

/** Text values through green's input functions: `(value::type)::text`, NULL stays NULL. */
class Normalizer {
  constructor(private readonly green: pg.Client) {}

  async run(chains: readonly string[][], columns: PgText[][]): Promise<PgText[][]> {
    if (chains.length === 0 || columns[0].length === 0) return columns;
    const select = chains.map((chain, i) => castExpr(`x.c${i}`, chain)).join(', ');
    const names = chains.map((_, i) => `c${i}`).join(', ');
    const unnest = chains.map((_, i) => `$${i + 1}::text[]`).join(', ');
    try {
      const result = await this.green.query<PgText[]>({
        text: `SELECT ${select} FROM unnest(${unnest}) WITH ORDINALITY AS x(${names}, ord) ORDER BY x.ord`,
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
  }

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
      return `\u0000not valid for ${chain.join('::')}: ${(err as Error).message}`;
    }
  }
}

function castExpr(expr: string, chain: readonly string[]): string {
  return `${chain.reduce((inner, type) => `(${inner})::${type}`, `(${expr})`)}::text`;
}

function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new TealError('TEAL_VERIFY_ABORTED', 'verify was cancelled', { status: 499 });
}

async function verifyTable(
  clients: { blue: pg.Client; green: pg.Client; normalizer: Normalizer },
  opts: VerifyOptions,
  blueName: string,
): Promise<VerifyTableReport> {
  const { blue, green, normalizer } = clients;
  const chunkRows = opts.chunkRows ?? 10_000;
  const report: VerifyTableReport = {
    blue: blueName,
    green: blueName,
    ok: false,
    blueRows: 0,
    filteredRows: 0,
    greenRows: 0,
    chunks: 0,
    mismatchedChunks: 0,
    columns: [],
    skippedColumns: [],
    missingInGreen: [],
    extraInGreen: [],
    different: [],
    transformFailures: [],
    truncated: false,
  };
  // Each side reads one snapshot for the whole table, so chunks cannot tear.
  await blue.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  await green.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const plan = await planTable(blue, green, opts, blueName);
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

    const { transforms } = opts;
    const blueSelect = plan.blueColumns.map((c) => quoteIdent(c.name)).join(', ');
    const blueKeyIdx = plan.blueKeys.map((k) => plan.blueColumns.indexOf(k));
    const blueOrder = keyExprs(plan.blueKeys).join(', ');
    const greenOrder = keyExprs(plan.greenKeys).join(', ');
    const greenSelect = [
      ...plan.greenKeys.map((k) => quoteIdent(k.name)),
      ...report.columns.map(quoteIdent),
    ].join(', ');
    const nKeys = plan.greenKeys.length;

    let blueAfter: PgText[] | null = null; // blue's last key, blue text
    let greenAfter: PgText[] | null = null; // the same key, as green text

    const readGreen = async (after: PgText[] | null, upTo: PgText[] | null, limit: number | null) => {
      const where: string[] = [];
      const values: PgText[] = [];
      if (after) {
        where.push(`(${greenOrder}) > ${keyParams(plan.greenKeys, values.length + 1)}`);
        values.push(...after);
      }
      if (upTo) {
        where.push(`(${greenOrder}) <= ${keyParams(plan.greenKeys, values.length + 1)}`);
        values.push(...upTo);
      }
      const result = await green.query<PgText[]>({
        text:
          `SELECT ${greenSelect} FROM ${plan.greenRel}` +
          (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') +
          ` ORDER BY ${greenOrder}` +
          (limit === null ? '' : ` LIMIT ${limit}`),
        values,
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
        text:
          `SELECT ${blueSelect} FROM ${plan.blueRel}` +
          (blueAfter ? ` WHERE (${blueOrder}) > ${keyParams(plan.blueKeys, 1)}` : '') +
          ` ORDER BY ${blueOrder} LIMIT ${chunkRows}`,
        values: blueAfter ?? [],
        rowMode: 'array',
      });
      const blueRows = blueResult.rows;

      // Blue rows through the transforms, then through green's input functions where types differ.
      const expected: { key: PgText[]; values: PgText[] }[] = [];
      for (const values of blueRows) {
        const row: Row = {};
        plan.blueColumns.forEach((c, i) => {
          row[c.name] = values[i];
        });
        const blueKey = blueKeyIdx.map((i) => values[i]);
        let greenRow: Row | null;
        try {
          greenRow = transforms.applyRow(plan.blueSchema, plan.blueTable, row);
        } catch (err) {
          collector.failure(blueKey, (err as Error).message);
          continue;
        }
        if (greenRow === null) {
          report.filteredRows++;
          continue;
        }
        expected.push({
          key: plan.greenKeys.map((k) => greenRow[k.name] ?? null),
          values: report.columns.map((c) => greenRow[c] ?? null),
        });
      }
      report.blueRows += blueRows.length;
      const upper: PgText[] | null =
        blueRows.length > 0 ? blueKeyIdx.map((i) => blueRows[blueRows.length - 1][i]) : null;
      const normalized = await normalizeChunk(normalizer, plan, expected, upper ? [...upper] : null);
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

/** Expected rows and the upper key bound, with the values green's types would store. */
async function normalizeChunk(
  normalizer: Normalizer,
  plan: Plan,
  expected: { key: PgText[]; values: PgText[] }[],
  upperBlueKey: PgText[] | null,
): Promise<{ rows: CompareRow[]; upper: PgText[] | null }> {
  const chains: string[][] = [];
  const inputs: PgText[][] = [];
  const writeBack: ((values: PgText[]) => void)[] = [];
  plan.keyCasts.forEach((chain, i) => {
    if (chain.length === 0) return;
    chains.push(chain);
    const column = expected.map((e) => e.key[i]);
    if (upperBlueKey) column.push(upperBlueKey[i]);
    inputs.push(column);
    writeBack.push((out) => {
      expected.forEach((e, j) => {
        e.key[i] = out[j];
      });
      if (upperBlueKey) upperBlueKey[i] = out[expected.length];
    });
  });
  plan.compared.forEach((c, i) => {
    if (c.casts.length === 0) return;
    chains.push(c.casts);
    inputs.push(expected.map((e) => e.values[i]));
    writeBack.push((out) => {
      expected.forEach((e, j) => {
        e.values[i] = out[j];
      });
    });
  });
  if (chains.length > 0) {
    const byLength = new Map<number, number[]>();
    inputs.forEach((column, i) => {
      byLength.set(column.length, [...(byLength.get(column.length) ?? []), i]);
    });
    // unnest() zips columns of one length; key columns carry the bound as one extra value.
    for (const indices of byLength.values()) {
      const out = await normalizer.run(
        indices.map((i) => chains[i]),
        indices.map((i) => inputs[i]),
      );
      indices.forEach((i, j) => {
        writeBack[i](out[j]);
      });
    }
  }
  return { rows: expected, upper: upperBlueKey };
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
    const normalizer = new Normalizer(clients.cast);
    const tables: VerifyTableReport[] = [];
    for (const name of await listTables(clients.blue, opts)) {
      checkAbort(opts.signal);
      tables.push(await verifyTable({ blue: clients.blue, green: clients.green, normalizer }, opts, name));
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
