import type { PgText } from '@teal/change-event';
// The pure quoting module alone: apply planning loads nothing that does I/O.
import { quoteIdent, quoteTable } from '@teal/postgres/sql';
import type { ApplyStep, TableRef } from './apply-plan.ts';
import { type GreenTable, isGenerated, isIdentityAlways, isKeyless } from './green-shape.ts';

// SQL for one apply step. Values travel as Postgres text: each column is one text[]
// parameter, unnested, and every element is cast to the green column's declared type
// (format_type from green's catalog). Casting per element, after unnest, is right for every
// type: array columns (unnest of a multi-dimensional int4[][] would flatten it), domains,
// enums, composites and ranges all go through their input function from text.

export interface Statement {
  readonly text: string;
  /** One Postgres array literal (`{"a",NULL}`) per column, for its `$n::text[]`. */
  readonly values: string[];
  /**
   * Set on a check run before a write: a row back means the write would change this
   * identity GENERATED ALWAYS column, which green refuses to UPDATE.
   */
  readonly identityCheck?: string;
}

/** Green column name -> the type to cast its text to; undefined when green has no such column. */
export type ColumnTypes = (column: string) => string | undefined;

/** What the statements of one step need to know of green's table (green-shape.ts). */
export interface WriteShape {
  readonly types: ColumnTypes;
  /** Green computes the column (stored generated): never written. */
  readonly generated?: (column: string) => boolean;
  /** Identity GENERATED ALWAYS: inserted with OVERRIDING SYSTEM VALUE, never in an UPDATE's SET. */
  readonly identityAlways?: (column: string) => boolean;
  /** No unique index on the key: no ON CONFLICT; a delete removes one matching row per key. */
  readonly keyless?: boolean;
  /** Another table's foreign key references the table: a truncate is a DELETE (TRUNCATE gets 0A000). */
  readonly referenced?: boolean;
  /** The transaction's session_replication_role, restored after a truncate's DELETE. */
  readonly replicationRole?: 'replica' | 'origin';
}

export function shapeOf(
  green: GreenTable,
  keyColumns: readonly string[],
  replicationRole: 'replica' | 'origin',
): WriteShape {
  return {
    types: (c) => green.columns.get(c)?.type,
    generated: (c) => isGenerated(green, c),
    identityAlways: (c) => isIdentityAlways(green, c),
    keyless: isKeyless(green, keyColumns),
    referenced: green.referenced,
    replicationRole,
  };
}

export function qualified(t: TableRef): string {
  return quoteTable(t.schema, t.table);
}

/**
 * The statements of one step, in order. Rows whose key holds NULL go apart, grouped by which
 * key columns are NULL: `=` never matches NULL, so those columns are matched with IS NULL
 * (which an index still serves), and ON CONFLICT, which never fires for NULL, is replaced by
 * an UPDATE of the matching rows and an INSERT of the others.
 */
export function stepStatements(step: ApplyStep, shape: WriteShape): Statement[] {
  const table = qualified(step.table);
  if (step.kind === 'truncate') {
    if (!shape.referenced) return [{ text: `TRUNCATE ${table}`, values: [] }];
    // EXCLUSIVE waits for the other partitions' transactions holding ROW EXCLUSIVE on the
    // table, as TRUNCATE's own lock does: none of their rows outlives this delete.
    const parts = [`LOCK TABLE ${table} IN EXCLUSIVE MODE`];
    if (shape.replicationRole !== 'replica') parts.push('SET LOCAL session_replication_role = replica');
    parts.push(`DELETE FROM ${table}`);
    if (shape.replicationRole !== 'replica') parts.push('SET LOCAL session_replication_role = origin');
    return [{ text: parts.join(';\n'), values: [] }];
  }
  const rows = step.kind === 'delete' ? step.keys : step.rows;
  const out: Statement[] = [];
  for (const group of byNullMask(rows, step.keyColumns.length))
    out.push(...groupStatements(step, shape, group));
  return out;
}

interface NullGroup {
  /** Per key column: true when every row of the group has NULL there. */
  readonly nulls: readonly boolean[];
  readonly rows: PgText[][];
}

function byNullMask(rows: PgText[][], keyCount: number): NullGroup[] {
  let anyNull = false;
  for (const r of rows) {
    for (let i = 0; i < keyCount; i++) if (r[i] === null) anyNull = true;
    if (anyNull) break;
  }
  if (!anyNull) return [{ nulls: new Array(keyCount).fill(false), rows }];
  const groups = new Map<string, NullGroup>();
  for (const r of rows) {
    const nulls = r.slice(0, keyCount).map((v) => v === null);
    const id = nulls.map((n) => (n ? '1' : '0')).join('');
    let g = groups.get(id);
    if (!g) {
      g = { nulls, rows: [] };
      groups.set(id, g);
    }
    g.rows.push(r);
  }
  return [...groups.values()];
}

function groupStatements(
  step: Exclude<ApplyStep, { kind: 'truncate' }>,
  shape: WriteShape,
  group: NullGroup,
): Statement[] {
  const table = qualified(step.table);
  const { types } = shape;
  const generated = shape.generated ?? (() => false);
  const identityAlways = shape.identityAlways ?? (() => false);
  const keyCount = step.keyColumns.length;
  const all = step.kind === 'delete' ? step.keyColumns : step.columns;
  // Green computes generated columns: they are not written, nor sent (key columns stay, to match).
  const used: number[] = [];
  for (let i = 0; i < all.length; i++) if (i < keyCount || !generated(all[i])) used.push(i);
  const columns = used.map((i) => all[i]);
  const values = used.map((i) => textArrayLiteral(group.rows, i));
  const aliases = columns.map((_, i) => `c${i + 1}`);
  const cast = (i: number, from = 'v') => `${from}.${aliases[i]}::${typeOf(step.table, columns[i], types)}`;
  const unnest = `unnest(${columns.map((_, i) => `$${i + 1}::text[]`).join(', ')})`;
  const source = `${unnest} AS v(${aliases.join(', ')})`;
  const hasNull = group.nulls.some((n) => n);
  // The key match, `=` per column and IS NULL where the group's key is NULL.
  const match = (alias: string, value: (i: number) => string) =>
    step.keyColumns
      .map((k, i) =>
        group.nulls[i] ? `${alias}.${quoteIdent(k)} IS NULL` : `${alias}.${quoteIdent(k)} = ${value(i)}`,
      )
      .join(' AND ');
  const overriding = columns.some((c) => identityAlways(c)) ? ' OVERRIDING SYSTEM VALUE' : '';
  // Non-key columns an UPDATE may set: green refuses any value for an identity GENERATED ALWAYS one.
  const settable: number[] = [];
  const identities: number[] = [];
  for (let i = keyCount; i < columns.length; i++)
    (identityAlways(columns[i]) ? identities : settable).push(i);
  const checks = identities.map(
    (i): Statement => ({
      text:
        `SELECT ${step.keyColumns.map((k) => `t.${quoteIdent(k)}::text`).join(', ')} FROM ${table} AS t, ${source} ` +
        `WHERE ${match('t', (j) => cast(j))} AND t.${quoteIdent(columns[i])} IS DISTINCT FROM ${cast(i)} LIMIT 1`,
      values,
      identityCheck: columns[i],
    }),
  );
  const keyList = step.keyColumns.map(quoteIdent).join(', ');
  switch (step.kind) {
    case 'delete': {
      if (shape.keyless) {
        // A key may name several equal rows; blue deleted one. `ctid = ANY` lets a TID scan find
        // the rows (no scan of the table); the (tableoid, ctid) pair names one row of a partition.
        return [
          {
            text:
              `WITH x AS MATERIALIZED (SELECT f.tableoid, f.ctid FROM ${source} CROSS JOIN LATERAL ` +
              `(SELECT r.tableoid, r.ctid FROM ${table} AS r WHERE ${match('r', (i) => cast(i))} LIMIT 1) AS f) ` +
              `DELETE FROM ${table} AS t WHERE t.ctid = ANY (ARRAY(SELECT x.ctid FROM x)) ` +
              'AND (t.tableoid, t.ctid) IN (SELECT x.tableoid, x.ctid FROM x)',
            values,
          },
        ];
      }
      if (hasNull)
        return [
          { text: `DELETE FROM ${table} AS t USING ${source} WHERE ${match('t', (i) => cast(i))}`, values },
        ];
      return [
        {
          text: `DELETE FROM ${table} WHERE (${keyList}) IN (SELECT ${columns.map((_, i) => cast(i)).join(', ')} FROM ${source})`,
          values,
        },
      ];
    }
    case 'insert':
      return [
        {
          text:
            `INSERT INTO ${table} (${columns.map(quoteIdent).join(', ')})${overriding} ` +
            `SELECT ${columns.map((_, i) => cast(i)).join(', ')} FROM ${source}`,
          values,
        },
      ];
    case 'fill': {
      // A snapshot row of a keyless table: a chunk read while streaming may find rows the stream
      // already wrote, and blue may hold equal rows (all in one chunk, consecutive). The n-th row
      // of a key is inserted when green has fewer than n; the first updates the rows it matches.
      const keyCols = aliases.slice(0, keyCount).join(', ');
      const typed = `src AS (SELECT ${columns.map((_, i) => `${cast(i)} AS ${aliases[i]}`).join(', ')}, v.o FROM ${unnest} WITH ORDINALITY AS v(${aliases.join(', ')}, o))`;
      const ranked = `ranked AS (SELECT src.*, row_number() OVER (PARTITION BY ${keyCols} ORDER BY src.o) AS n FROM src)`;
      const rMatch = (alias: string) => match(alias, (i) => `r.${aliases[i]}`);
      const pick = columns.map((_, i) => `r.${aliases[i]}`).join(', ');
      const set = settable.map((i) => `${quoteIdent(columns[i])} = r.${aliases[i]}`);
      const upd =
        set.length > 0
          ? `, upd AS (UPDATE ${table} AS t SET ${set.join(', ')} FROM ranked AS r WHERE r.n = 1 AND ${rMatch('t')})`
          : '';
      return [
        ...checks,
        {
          text:
            `WITH ${typed}, ${ranked}${upd} INSERT INTO ${table} (${columns.map(quoteIdent).join(', ')})${overriding} ` +
            `SELECT ${pick} FROM ranked AS r WHERE r.n > (SELECT count(*) FROM ${table} AS t WHERE ${rMatch('t')})`,
          values,
        },
      ];
    }
    case 'upsert': {
      const insert = `INSERT INTO ${table} (${columns.map(quoteIdent).join(', ')})${overriding}`;
      if (!shape.keyless && !hasNull) {
        const set = settable.map((i) => `${quoteIdent(columns[i])} = EXCLUDED.${quoteIdent(columns[i])}`);
        const conflict = set.length > 0 ? `DO UPDATE SET ${set.join(', ')}` : 'DO NOTHING';
        return [
          ...checks,
          {
            text: `${insert} SELECT ${columns.map((_, i) => cast(i)).join(', ')} FROM ${source} ON CONFLICT (${keyList}) ${conflict}`,
            values,
          },
        ];
      }
      // No arbiter for these rows: update the rows the key matches, insert the others.
      const typed = `src AS (SELECT ${columns.map((_, i) => `${cast(i)} AS ${aliases[i]}`).join(', ')}, v.o FROM ${unnest} WITH ORDINALITY AS v(${aliases.join(', ')}, o))`;
      const pick = columns.map((_, i) => `src.${aliases[i]}`).join(', ');
      const srcMatch = (alias: string) => match(alias, (i) => `src.${aliases[i]}`);
      if (settable.length === 0)
        return [
          ...checks,
          {
            text: `WITH ${typed} ${insert} SELECT ${pick} FROM src WHERE NOT EXISTS (SELECT 1 FROM ${table} AS t WHERE ${srcMatch('t')})`,
            values,
          },
        ];
      const set = settable.map((i) => `${quoteIdent(columns[i])} = src.${aliases[i]}`);
      return [
        ...checks,
        {
          text:
            `WITH ${typed}, upd AS (UPDATE ${table} AS t SET ${set.join(', ')} FROM src WHERE ${srcMatch('t')} RETURNING src.o) ` +
            `${insert} SELECT ${pick} FROM src WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.o = src.o)`,
          values,
        },
      ];
    }
    case 'update': {
      if (settable.length === 0) return checks;
      const set = settable.map((i) => `${quoteIdent(columns[i])} = ${cast(i)}`);
      return [
        ...checks,
        {
          text: `UPDATE ${table} AS t SET ${set.join(', ')} FROM ${source} WHERE ${match('t', (i) => cast(i))}`,
          values,
        },
      ];
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
