import type { PgText, Row } from '@teal/change-event';
import type { ResolvedConfig, TransformSet } from '@teal/config';
import { quoteIdent, quoteTable } from '@teal/postgres/sql';

// Pure planning of one table's comparison: which keys and columns, the casts blue's text goes
// through in green, the keyset queries of each side, and blue rows through the transforms.
// The catalog rows come from the run (verify-table-run.ts).

export interface ColumnMeta {
  name: string;
  /** format_type(): quoted and qualified as needed, safe after `::`. */
  type: string;
  category: string;
  collatable: boolean;
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
}

export interface PlanInput {
  blueName: string;
  blue: { schema: string; table: string };
  /** Where the transforms send the table. */
  green: { schema: string; table: string };
  blueColumns: ColumnMeta[];
  /** Empty when green has no such table. */
  greenColumns: ColumnMeta[];
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

  let blueKeys = blueColumns
    .filter((c) => c.keyPosition !== null)
    .sort((a, b) => (a.keyPosition ?? 0) - (b.keyPosition ?? 0));
  if (blueKeys.length === 0) {
    const configured = config.keyColumns[blueName];
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
  };
}

/** What the consumer's write does to blue's text: the configured cast, then green's column type. */
export function castsFor(greenType: string, blueType: string, cast: string | undefined): string[] {
  if (cast !== undefined) return cast === greenType ? [cast] : [cast, greenType];
  return greenType === blueType ? [] : [greenType];
}

/** `(k1 COLLATE "C", k2)` and `($1::text, $2::int4)` for a keyset predicate and ORDER BY. */
function keyExprs(keys: readonly ColumnMeta[]): string {
  return keys.map((k) => `${quoteIdent(k.name)}${k.collatable ? ' COLLATE "C"' : ''}`).join(', ');
}

function keyParams(keys: readonly ColumnMeta[], first: number): string {
  return `(${keys.map((k, i) => `$${first + i}::${k.type}`).join(', ')})`;
}

export interface ChunkQuery {
  text: string;
  values: PgText[];
}

/** The next `limit` blue rows in key order, after blue's key `after`. */
export function blueChunkQuery(plan: TablePlan, after: PgText[] | null, limit: number): ChunkQuery {
  const order = keyExprs(plan.blueKeys);
  return {
    text:
      `SELECT ${plan.blueColumns.map((c) => quoteIdent(c.name)).join(', ')} FROM ${plan.blueRel}` +
      (after ? ` WHERE (${order}) > ${keyParams(plan.blueKeys, 1)}` : '') +
      ` ORDER BY ${order} LIMIT ${limit}`,
    values: after ?? [],
  };
}

/** Green's key columns then compared columns over the key range (after, upTo], in key order. */
export function greenRangeQuery(
  plan: TablePlan,
  after: PgText[] | null,
  upTo: PgText[] | null,
  limit: number | null,
): ChunkQuery {
  const order = keyExprs(plan.greenKeys);
  const select = [...plan.greenKeys.map((k) => k.name), ...plan.compared.map((c) => c.green)]
    .map(quoteIdent)
    .join(', ');
  const where: string[] = [];
  const values: PgText[] = [];
  if (after) {
    where.push(`(${order}) > ${keyParams(plan.greenKeys, values.length + 1)}`);
    values.push(...after);
  }
  if (upTo) {
    where.push(`(${order}) <= ${keyParams(plan.greenKeys, values.length + 1)}`);
    values.push(...upTo);
  }
  return {
    text:
      `SELECT ${select} FROM ${plan.greenRel}` +
      (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') +
      ` ORDER BY ${order}` +
      (limit === null ? '' : ` LIMIT ${limit}`),
    values,
  };
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
