import type { PgText } from '@teal/change-event';
// The pure quoting module alone: apply planning loads nothing that does I/O.
import { quoteIdent, quoteTable } from '@teal/postgres/sql';
import type { ApplyStep, TableRef } from './apply-plan.ts';

// SQL for one apply step. Values travel as Postgres text: each column is one text[]
// parameter, unnested, and every element is cast to the green column's declared type
// (format_type from green's catalog). Casting per element, after unnest, is right for every
// type: array columns (unnest of a multi-dimensional int4[][] would flatten it), domains,
// enums, composites and ranges all go through their input function from text.

export interface Statement {
  readonly text: string;
  /** One Postgres array literal (`{"a",NULL}`) per column, for its `$n::text[]`. */
  readonly values: string[];
}

/** Green column name -> the type to cast its text to; undefined when green has no such column. */
export type ColumnTypes = (column: string) => string | undefined;

export function qualified(t: TableRef): string {
  return quoteTable(t.schema, t.table);
}

export function stepStatement(step: ApplyStep, types: ColumnTypes): Statement {
  const table = qualified(step.table);
  if (step.kind === 'truncate') return { text: `TRUNCATE ${table}`, values: [] };
  const columns = step.kind === 'delete' ? step.keyColumns : step.columns;
  const rows = step.kind === 'delete' ? step.keys : step.rows;
  const values = columns.map((_, i) => textArrayLiteral(rows, i));
  const aliases = columns.map((_, i) => `c${i + 1}`);
  const casts = columns.map((c, i) => `v.${aliases[i]}::${typeOf(step.table, c, types)}`);
  const source = `unnest(${columns.map((_, i) => `$${i + 1}::text[]`).join(', ')}) AS v(${aliases.join(', ')})`;
  const keyList = step.keyColumns.map(quoteIdent).join(', ');
  switch (step.kind) {
    case 'delete':
      return {
        text: `DELETE FROM ${table} WHERE (${keyList}) IN (SELECT ${casts.join(', ')} FROM ${source})`,
        values,
      };
    case 'upsert': {
      const keys = new Set(step.keyColumns);
      const set = step.columns
        .filter((c) => !keys.has(c))
        .map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`);
      const conflict = set.length > 0 ? `DO UPDATE SET ${set.join(', ')}` : 'DO NOTHING';
      return {
        text:
          `INSERT INTO ${table} (${step.columns.map(quoteIdent).join(', ')}) ` +
          `SELECT ${casts.join(', ')} FROM ${source} ON CONFLICT (${keyList}) ${conflict}`,
        values,
      };
    }
    case 'update': {
      const set: string[] = [];
      const where: string[] = [];
      step.columns.forEach((c, i) => {
        if (step.keyColumns.includes(c)) where.push(`t.${quoteIdent(c)} = ${casts[i]}`);
        else set.push(`${quoteIdent(c)} = ${casts[i]}`);
      });
      return {
        text: `UPDATE ${table} AS t SET ${set.join(', ')} FROM ${source} WHERE ${where.join(' AND ')}`,
        values,
      };
    }
  }
}

function typeOf(table: TableRef, column: string, types: ColumnTypes): string {
  const type = types(column);
  if (type === undefined) throw new Error(`no type for column ${table.schema}.${table.table}.${column}`);
  return type;
}

/**
 * Column `column` of `rows` as a text[] literal, written straight from the rows: what pg's
 * array serialization produces from a transposed array (every element quoted, `\\` and `"`
 * escaped, NULL bare), without the transposed copy or two regex replaces per element.
 */
export function textArrayLiteral(rows: readonly (readonly PgText[])[], column: number): string {
  let out = '{';
  for (let r = 0; r < rows.length; r++) {
    const v = rows[r][column];
    if (r > 0) out += ',';
    if (v === null) out += 'NULL';
    else if (v.includes('"') || v.includes('\\')) out += `"${v.replace(/["\\]/g, '\\$&')}"`;
    else out += `"${v}"`;
  }
  return `${out}}`;
}
