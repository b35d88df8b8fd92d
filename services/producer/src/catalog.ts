import type { ColumnInfo, PgType, TableSchema, TypeKind } from '@teal/change-event';
import type pg from 'pg';

// Blue's catalog, read as teal needs it: table shapes for the snapshot (which sees no
// Relation messages) and type descriptions for the stream (Relation messages carry only
// type oids). Both paths build PgType the same way, so a table read by the snapshot and
// then by the stream keeps the same Avro schema version when its shape did not change.

type Queryable = Pick<pg.ClientBase, 'query'>;

const TYPE_SQL = `
  SELECT t.oid::int8::text AS oid, n.nspname AS nsp, t.typname AS name, t.typtype AS typtype,
         t.typcategory AS category, t.typelem::int8::text AS elem, t.typbasetype::int8::text AS base,
         et.typname AS elem_name, en.nspname AS elem_nsp
    FROM pg_type t
    JOIN pg_namespace n ON n.oid = t.typnamespace
    LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
    LEFT JOIN pg_namespace en ON en.oid = et.typnamespace
   WHERE t.oid = ANY($1::oid[])`;

interface TypeRow {
  oid: string;
  nsp: string;
  name: string;
  typtype: string;
  category: string;
  elem: string;
  base: string;
  elem_name: string | null;
  elem_nsp: string | null;
}

function displayName(nsp: string, name: string): string {
  return nsp === 'pg_catalog' ? name : `${nsp}.${name}`;
}

export function pgTypeFromRow(row: TypeRow): PgType {
  const isArray = row.category === 'A' && row.elem !== '0';
  let kind: TypeKind;
  if (isArray) kind = 'array';
  else if (row.typtype === 'e') kind = 'enum';
  else if (row.typtype === 'd') kind = 'domain';
  else if (row.typtype === 'c') kind = 'composite';
  else if (row.typtype === 'r') kind = 'range';
  else if (row.typtype === 'm') kind = 'multirange';
  else if (row.typtype === 'p') kind = 'pseudo';
  else kind = 'base';
  const name =
    isArray && row.elem_name !== null
      ? `${displayName(row.elem_nsp ?? 'pg_catalog', row.elem_name)}[]`
      : displayName(row.nsp, row.name);
  const type: { -readonly [K in keyof PgType]: PgType[K] } = { oid: Number(row.oid), name, kind };
  if (isArray) type.elementOid = Number(row.elem);
  if (kind === 'domain') type.baseOid = Number(row.base);
  return type;
}

/** Caches pg_type lookups by oid (types do not change identity under an oid). */
export class TypeCatalog {
  private readonly types = new Map<number, PgType>();

  constructor(private readonly db: Queryable) {}

  /** Loads every type blue has now (a few hundred rows), so cached() answers synchronously. */
  async loadAll(): Promise<void> {
    const result = await this.db.query<TypeRow>(TYPE_SQL.replace('WHERE t.oid = ANY($1::oid[])', ''));
    for (const row of result.rows) this.types.set(Number(row.oid), pgTypeFromRow(row));
  }

  cached(oid: number): PgType | undefined {
    return this.types.get(oid);
  }

  async resolve(oids: readonly number[]): Promise<Map<number, PgType>> {
    const missing = [...new Set(oids)].filter((oid) => !this.types.has(oid));
    if (missing.length > 0) {
      const result = await this.db.query<TypeRow>(TYPE_SQL, [missing.map(String)]);
      for (const row of result.rows) this.types.set(Number(row.oid), pgTypeFromRow(row));
    }
    const out = new Map<number, PgType>();
    for (const oid of oids) {
      const type = this.types.get(oid);
      // A type dropped since (rare): keep the oid, name it by number.
      out.set(oid, type ?? { oid, name: `oid${oid}`, kind: 'base' });
    }
    return out;
  }
}

const COLUMNS_SQL = `
  SELECT a.attname AS name, a.atttypid::int8::text AS type_oid, a.atttypmod::text AS typmod,
         c.relreplident AS ident,
         (SELECT array_position(i.indkey::int2[], a.attnum)
            FROM pg_index i
           WHERE i.indrelid = c.oid
             AND ((c.relreplident IN ('d', 'f') AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))
           LIMIT 1)::text AS key_pos
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
   WHERE n.nspname = $1 AND c.relname = $2
   ORDER BY a.attnum`;

/**
 * The table's current shape. Key columns: the replica identity index (primary key or the
 * USING INDEX one), all columns under REPLICA IDENTITY FULL, or `keyColumns` when configured.
 * Stored generated columns are left out, as pgoutput leaves them out of Relation messages
 * and rows: the snapshot reads only these columns, and green computes its own values.
 */
export async function loadTableSchema(
  db: Queryable,
  types: TypeCatalog,
  schema: string,
  table: string,
  keyColumns?: readonly string[],
): Promise<TableSchema> {
  const result = await db.query<{
    name: string;
    type_oid: string;
    typmod: string;
    ident: string;
    key_pos: string | null;
  }>(COLUMNS_SQL, [schema, table]);
  if (result.rows.length === 0) throw new Error(`table ${schema}.${table} not found on blue`);
  const resolved = await types.resolve(result.rows.map((r) => Number(r.type_oid)));
  const full = result.rows[0].ident === 'f';
  let keys: string[] = result.rows
    .filter((r) => r.key_pos !== null)
    .sort((a, b) => Number(a.key_pos) - Number(b.key_pos))
    .map((r) => r.name);
  // Configured key columns win; under REPLICA IDENTITY FULL without a primary key, the whole row.
  if (keyColumns && keyColumns.length > 0) keys = [...keyColumns];
  else if (keys.length === 0 && full) keys = result.rows.map((r) => r.name);
  const keySet = new Set(keys);
  const columns: ColumnInfo[] = result.rows.map((r) => ({
    name: r.name,
    type: resolved.get(Number(r.type_oid))!,
    typmod: Number(r.typmod),
    isKey: keySet.has(r.name),
  }));
  return { schema, table, columns, keyColumns: keys };
}
