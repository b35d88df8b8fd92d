import type { ColumnInfo } from '@teal/change-event';
import type { OnMissingColumn } from '@teal/config';
import type { TableRef } from './apply-plan.ts';

// What to do when blue sends a column green's table lacks (brief item 8): fail (default)
// stops the partition with a message naming table, column and the config key to change;
// ignore drops the column from the row; add adds it to green with the writer schema's type.

export type ColumnDecision =
  | { readonly kind: 'ok' }
  | { readonly kind: 'ignore'; readonly drop: readonly string[] }
  | { readonly kind: 'add'; readonly add: readonly string[] }
  | { readonly kind: 'block'; readonly reason: string };

export function decideColumns(
  table: TableRef,
  source: TableRef,
  greenColumns: ReadonlyMap<string, string>,
  rowColumns: Iterable<string>,
  policy: OnMissingColumn,
): ColumnDecision {
  const missing = [...new Set(rowColumns)].filter((c) => !greenColumns.has(c));
  if (missing.length === 0) return { kind: 'ok' };
  if (policy === 'ignore') return { kind: 'ignore', drop: missing };
  if (policy === 'add') return { kind: 'add', add: missing };
  const names = missing.map((c) => `"${c}"`).join(', ');
  return {
    kind: 'block',
    reason:
      `green table ${name(table)} has no column${missing.length === 1 ? '' : 's'} ${names}, which blue table ` +
      `${name(source)} sends: add ${missing.length === 1 ? 'it' : 'them'} to green (ALTER TABLE ${name(table)} ADD COLUMN ...), ` +
      `or set apply.onMissingColumn to 'ignore' or 'add' in teal.config.ts`,
  };
}

export function missingTableReason(table: TableRef, source: TableRef): string {
  return (
    `green has no table ${name(table)} (target of blue table ${name(source)}): create it in green, ` +
    `or set apply.createTables to true in teal.config.ts to create it from blue's shape`
  );
}

function name(t: TableRef): string {
  return `${t.schema}.${t.table}`;
}

/**
 * The DDL type of a writer-schema column: its type name with the typmod rendered for the
 * types that have one (varchar(n), numeric(p,s), timestamp(p) ...). User types (enums,
 * domains, composites) are named as blue names them and must exist in green.
 */
export function ddlType(col: ColumnInfo): string {
  const isArray = col.type.name.endsWith('[]');
  const base = isArray ? col.type.name.slice(0, -2) : col.type.name;
  const t = col.typmod;
  let rendered = base;
  if (t >= 0) {
    switch (base) {
      case 'varchar':
      case 'character varying':
      case 'bpchar':
      case 'character':
        rendered = `${base}(${t - 4})`;
        break;
      case 'numeric':
        rendered = `numeric(${((t - 4) >> 16) & 0xffff},${(t - 4) & 0xffff})`;
        break;
      case 'timestamp':
      case 'timestamptz':
      case 'time':
      case 'timetz':
      case 'bit':
      case 'varbit':
      case 'bit varying':
        rendered = `${base}(${t})`;
        break;
    }
  }
  return isArray ? `${rendered}[]` : rendered;
}
