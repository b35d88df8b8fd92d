import type { PgText } from '@teal/change-event';
import { quoteIdent } from './sql.ts';

// Keyset paging that holds when key columns hold NULL (REPLICA IDENTITY FULL, nullable
// keyColumns). A row comparison `(k1, k2) > ($1, $2)` is NULL as soon as it meets a NULL,
// so rows with a NULL key column were never "after" anything and a NULL in the last key
// matched nothing: paging skipped rows or, fed '' for NULL, looped. Rows are ordered
// `ORDER BY k1, k2` (ASC, NULLS LAST, each column's own collation, so the key index serves
// it), and "after" is spelled out for that order with the NULLs of the last key known when
// the statement is built: `k = $n` or `k IS NULL`, both index conditions, never
// IS NOT DISTINCT FROM. Columns known NOT NULL with a last key free of NULLs keep the plain
// row comparison, which a B-tree scans as one range. Pure: SQL text and parameter values.

export interface KeysetColumn {
  readonly name: string;
  /** NULL may occur in this column (false only when the catalog says NOT NULL). */
  readonly nullable: boolean;
  /** The parameter's type, safe after `::` (format_type()); none lets Postgres infer it. */
  readonly type?: string;
}

export interface SqlPart {
  readonly sql: string;
  readonly values: string[];
}

function param(column: KeysetColumn, index: number): string {
  return column.type ? `$${index}::${column.type}` : `$${index}`;
}

/** `k1, k2`: the order keysetAfter pages in. */
export function keysetOrder(columns: readonly KeysetColumn[], alias?: string): string {
  return columns.map((c) => qualified(c, alias)).join(', ');
}

function qualified(column: KeysetColumn, alias: string | undefined): string {
  return alias ? `${alias}.${quoteIdent(column.name)}` : quoteIdent(column.name);
}

/**
 * A predicate true for the rows strictly after `after` in keysetOrder(): for some position i,
 * the columns before i equal `after`'s (NULL equals NULL here) and column i is greater,
 * a NULL being greater than every value and nothing greater than a NULL.
 * Parameters are numbered from `first`; `values` are the non-NULL values of `after`.
 */
export function keysetAfter(
  columns: readonly KeysetColumn[],
  after: readonly PgText[],
  first: number,
  alias?: string,
): SqlPart {
  if (after.length !== columns.length) throw new Error('keysetAfter: one value per key column');
  const values: string[] = [];
  const params: (string | null)[] = after.map((v, i) => {
    if (v === null) return null;
    values.push(v);
    return param(columns[i], first + values.length - 1);
  });
  const cols = columns.map((c) => qualified(c, alias));
  if (columns.every((c) => !c.nullable) && params.every((p) => p !== null)) {
    return { sql: `(${cols.join(', ')}) > (${params.join(', ')})`, values };
  }
  const terms: string[] = [];
  const prefix: string[] = [];
  columns.forEach((c, i) => {
    const p = params[i];
    if (p !== null) {
      const greater = c.nullable ? `(${cols[i]} > ${p} OR ${cols[i]} IS NULL)` : `${cols[i]} > ${p}`;
      terms.push(prefix.length === 0 ? greater : `(${prefix.join(' AND ')} AND ${greater})`);
    }
    prefix.push(p === null ? `${cols[i]} IS NULL` : `${cols[i]} = ${p}`);
  });
  return { sql: terms.length === 0 ? 'false' : `(${terms.join(' OR ')})`, values };
}

/** A predicate true for the rows whose key is `key` (NULL matched by IS NULL). */
export function keyEquals(
  columns: readonly KeysetColumn[],
  key: readonly PgText[],
  first: number,
  alias?: string,
): SqlPart {
  const values: string[] = [];
  const sql = columns
    .map((c, i) => {
      const v = key[i];
      if (v === null) return `${qualified(c, alias)} IS NULL`;
      values.push(v);
      return `${qualified(c, alias)} = ${param(c, first + values.length - 1)}`;
    })
    .join(' AND ');
  return { sql: sql || 'true', values };
}

/** Which key columns are NULL, as a string: keys of one pattern are looked up by one statement. */
export function nullPattern(key: readonly PgText[]): string {
  return key.map((v) => (v === null ? 'n' : 'v')).join('');
}
