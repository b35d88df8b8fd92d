import type { PgText, Row } from '@teal/change-event';
import type { ResolvedConfig, TransformSet } from '@teal/config';
import { type KeysetColumn, keysetAfter, keysetOrder, nullPattern } from '@teal/postgres/keyset';
import { quoteIdent, quoteTable } from '@teal/postgres/sql';

// Pure planning of one table's comparison: which keys and columns, the casts blue's text goes
// through in green, the queries of each side, and blue rows through the transforms. The
// catalog rows come from the run (verify-table-run.ts).
//
// No query orders one side by the other's order: blue is paged in its own key order (its key
// index, its own collation), green's rows of a chunk are fetched by key (index lookups), and
// green is paged in its own order only to find keys blue lacks, looked up by key in blue. A
// collation that orders keys differently on the two sides (another engine version, another
// provider) changes nothing then, and no chunk needs a scan of the whole table.

export interface ColumnMeta {
  name: string;
  /** format_type(): quoted and qualified as needed, safe after `::`. */
  type: string;
  category: string;
  /** The column may hold NULL (no NOT NULL constraint). */
  nullable: boolean;
  /** Position in the replica identity key (primary key, or the REPLICA IDENTITY USING INDEX one). */
  keyPosition: number | null;
}

export interface TablePlan {
  blueName: string;
  greenName: string;
  blueSchema: string;
  blueTable: string;
  greenRel: string;
  blueRel: string;
  blueColumns: ColumnMeta[];
  blueKeys: ColumnMeta[];
  /** Where each blue key column sits in a blue row. */
  blueKeyIndex: number[];
  greenKeys: ColumnMeta[];
  /** Compared green columns, key columns excluded; `casts` empty when blue's text is green's. */
  compared: { green: string; casts: string[] }[];
  skipped: string[];
  /** Per green key column: the casts its blue text goes through in green, if any. */
  keyCasts: string[][];
  /** Blue's key for paging (blue's types and nullability) and green's for its own pages and lookups. */
  blueKeyset: KeysetColumn[];
  greenKeyset: KeysetColumn[];
  /** Blue has a unique index over NOT NULL key columns: no two blue rows share a key. */
  blueKeyUnique: boolean;
}

export interface PlanInput {
  blueName: string;
  blue: { schema: string; table: string };
  /** Where the transforms send the table. */
  green: { schema: string; table: string };
  blueColumns: ColumnMeta[];
  /** Empty when green has no such table. */
  greenColumns: ColumnMeta[];
  /** Blue's table has REPLICA IDENTITY FULL: without a primary key, every column is its key (as the producer keys it). */
  blueReplicaIdentityFull?: boolean;
  /** Column names of each of blue's unique indexes over NOT NULL columns (no predicate, no expression). */
  blueUniqueIndexes?: string[][];
}

export type PlanError = { error: string; greenName: string };

export function planTable(
  input: PlanInput,
  config: Pick<ResolvedConfig, 'keyColumns'>,
  transforms: TransformSet,
): TablePlan | PlanError {
  const { blueName, blueColumns, greenColumns } = input;
  const { schema, table } = input.blue;
  const greenName = `${input.green.schema}.${input.green.table}`;
  if (blueColumns.length === 0) return { error: `blue has no table ${blueName}`, greenName };
  if (greenColumns.length === 0) {
    return { error: `green has no table ${greenName}: create it, or set apply.createTables`, greenName };
  }

  // The producer's choice of key: configured keyColumns, else the replica identity key, else
  // (REPLICA IDENTITY FULL) every column.
  const configured = config.keyColumns[blueName];
  let blueKeys = blueColumns
    .filter((c) => c.keyPosition !== null)
    .sort((a, b) => (a.keyPosition ?? 0) - (b.keyPosition ?? 0));
  if (configured && configured.length > 0) {
    const missing = configured.filter((k) => !blueColumns.some((c) => c.name === k));
    if (missing.length > 0) {
      return {
        error: `keyColumns["${blueName}"] names columns blue lacks: ${missing.join(', ')}`,
        greenName,
      };
    }
    blueKeys = configured.map((k) => blueColumns.find((c) => c.name === k) as ColumnMeta);
  } else if (blueKeys.length === 0 && input.blueReplicaIdentityFull) {
    blueKeys = [...blueColumns];
  } else if (blueKeys.length === 0) {
    return {
      error: `${blueName} has no primary key: add keyColumns["${blueName}"] to teal.config.ts`,
      greenName,
    };
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
  const compared: TablePlan['compared'] = [];
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
    blueRel: quoteTable(schema, table),
    greenRel: quoteTable(input.green.schema, input.green.table),
    blueColumns,
    blueKeys,
    blueKeyIndex: blueKeys.map((k) => blueColumns.indexOf(k)),
    greenKeys,
    compared,
    skipped,
    keyCasts,
    blueKeyset: blueKeys.map(keysetColumn),
    greenKeyset: greenKeys.map(keysetColumn),
    blueKeyUnique: (input.blueUniqueIndexes ?? []).some((columns) =>
      columns.every((c) => blueKeys.some((k) => k.name === c)),
    ),
  };
}

const keysetColumn = (c: ColumnMeta): KeysetColumn => ({ name: c.name, nullable: c.nullable, type: c.type });

/** What the consumer's write does to blue's text: the configured cast, then green's column type. */
export function castsFor(greenType: string, blueType: string, cast: string | undefined): string[] {
  if (cast !== undefined) return cast === greenType ? [cast] : [cast, greenType];
  return greenType === blueType ? [] : [greenType];
}

export interface ChunkQuery {
  text: string;
  values: (PgText | PgText[])[];
}

/** The next `limit` blue rows in blue's own key order (NULLs last), after blue's key `after`. */
export function blueChunkQuery(plan: TablePlan, after: readonly PgText[] | null, limit: number): ChunkQuery {
  const where = after ? keysetAfter(plan.blueKeyset, after, 1) : null;
  return {
    text:
      `SELECT ${selectList(plan.blueColumns.map((c) => c.name))} FROM ${plan.blueRel}` +
      (where ? ` WHERE ${where.sql}` : '') +
      ` ORDER BY ${keysetOrder(plan.blueKeyset)} LIMIT ${limit}`,
    values: where?.values ?? [],
  };
}

/** Every blue row whose key is `key` (completes a chunk's last key when blue's key is not unique). */
export function blueKeyQuery(plan: TablePlan, key: readonly PgText[]): ChunkQuery {
  const [query] = lookupQueries(
    plan.blueRel,
    plan.blueColumns.map((c) => c.name),
    plan.blueKeyset,
    [key],
  );
  return query;
}

/** Green's key columns then compared columns of the rows whose keys are `keys` (green text). */
export function greenLookupQueries(plan: TablePlan, keys: readonly (readonly PgText[])[]): ChunkQuery[] {
  return lookupQueries(plan.greenRel, greenSelect(plan), plan.greenKeyset, keys);
}

/** Blue's rows (all columns) whose keys are green's `keys` read as blue's types. */
export function blueLookupQueries(plan: TablePlan, keys: readonly (readonly PgText[])[]): ChunkQuery[] {
  return lookupQueries(
    plan.blueRel,
    plan.blueColumns.map((c) => c.name),
    plan.blueKeyset,
    keys,
  );
}

/** Green's next `limit` distinct keys in green's own order, after green's key `after`, with how many rows hold each. */
export function greenKeyPageQuery(
  plan: TablePlan,
  after: readonly PgText[] | null,
  limit: number,
): ChunkQuery {
  const where = after ? keysetAfter(plan.greenKeyset, after, 1) : null;
  const order = keysetOrder(plan.greenKeyset);
  return {
    text:
      `SELECT ${order}, count(*)::text FROM ${plan.greenRel}` +
      (where ? ` WHERE ${where.sql}` : '') +
      ` GROUP BY ${order} ORDER BY ${order} LIMIT ${limit}`,
    values: where?.values ?? [],
  };
}

function greenSelect(plan: TablePlan): string[] {
  return [...plan.greenKeys.map((k) => k.name), ...plan.compared.map((c) => c.green)];
}

function selectList(columns: readonly string[], alias?: string): string {
  return columns.map((c) => (alias ? `${alias}.${quoteIdent(c)}` : quoteIdent(c))).join(', ');
}

/**
 * Rows of `rel` whose key is one of `keys`, by index lookups: one statement per pattern of
 * NULLs among the keys (`k = v` or `k IS NULL`, never IS NOT DISTINCT FROM, which no index
 * serves). Each key's values go in as text arrays, cast to the column's type per lookup; the
 * LATERAL subquery with OFFSET 0 keeps the planner from turning a chunk's lookups into a hash
 * join over the whole table. Equal keys are looked up once.
 */
export function lookupQueries(
  rel: string,
  columns: readonly string[],
  keyset: readonly KeysetColumn[],
  keys: readonly (readonly PgText[])[],
): ChunkQuery[] {
  const byPattern = new Map<string, Map<string, readonly PgText[]>>();
  for (const key of keys) {
    const pattern = nullPattern(key);
    const same = byPattern.get(pattern) ?? new Map<string, readonly PgText[]>();
    same.set(JSON.stringify(key), key);
    byPattern.set(pattern, same);
  }
  const queries: ChunkQuery[] = [];
  for (const [pattern, unique] of byPattern) {
    const present = keyset.flatMap((_, i) => (pattern[i] === 'v' ? [i] : []));
    const conditions = keyset.map((c, i) => {
      const column = `t.${quoteIdent(c.name)}`;
      if (pattern[i] === 'n') return `${column} IS NULL`;
      return `${column} = k.v${present.indexOf(i)}::${c.type ?? 'text'}`;
    });
    const select = selectList(columns, 't');
    if (present.length === 0) {
      queries.push({ text: `SELECT ${select} FROM ${rel} t WHERE ${conditions.join(' AND ')}`, values: [] });
      continue;
    }
    const values = present.map((i) => [...unique.values()].map((key) => key[i]));
    queries.push({
      text:
        `SELECT l.* FROM unnest(${present.map((_, j) => `$${j + 1}::text[]`).join(', ')}) AS k(${present.map((_, j) => `v${j}`).join(', ')})` +
        ` CROSS JOIN LATERAL (SELECT ${select} FROM ${rel} t WHERE ${conditions.join(' AND ')} OFFSET 0) l`,
      values,
    });
  }
  return queries;
}

/** A blue chunk as green should hold it (before green's casts): key and compared values per row. */
export interface ExpectedChunk {
  rows: { key: PgText[]; values: PgText[] }[];
  /** Blue keys whose transform threw, in blue order. */
  failures: { key: PgText[]; error: string }[];
  filtered: number;
}

export function expectedRows(
  plan: TablePlan,
  transforms: TransformSet,
  blueRows: readonly PgText[][],
): ExpectedChunk {
  const out: ExpectedChunk = { rows: [], failures: [], filtered: 0 };
  for (const values of blueRows) {
    const row: Row = {};
    plan.blueColumns.forEach((c, i) => {
      row[c.name] = values[i];
    });
    let greenRow: Row | null;
    try {
      greenRow = transforms.applyRow(plan.blueSchema, plan.blueTable, row);
    } catch (err) {
      out.failures.push({ key: plan.blueKeyIndex.map((i) => values[i]), error: (err as Error).message });
      continue;
    }
    if (greenRow === null) {
      out.filtered++;
      continue;
    }
    out.rows.push({
      key: plan.greenKeys.map((k) => greenRow[k.name] ?? null),
      values: plan.compared.map((c) => greenRow[c.green] ?? null),
    });
  }
  return out;
}
