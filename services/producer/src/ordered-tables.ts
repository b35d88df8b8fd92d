import { orderingIndexes, type UniqueIndexShape } from '@teal/postgres/unique-indexes';
import type pg from 'pg';

// Which tables keep blue's commit order across their keys (docs/architecture.md, "Big rows,
// partition counts, ordered tables"). A unique index other than the key's lets one value move
// between rows ("delete id=1 with email x, then insert id=2 with email x"): applied on
// different partitions in parallel, green could see the insert first and refuse it (23505).
// So every record of such a table goes to partition 0 of its topic, and the consumer applies
// them in stream order. `config.ordered[table]` decides when set (false opts out).

type Queryable = Pick<pg.ClientBase, 'query'>;

export interface OrderedTableRef {
  readonly schema: string;
  readonly table: string;
  /** The columns teal keys and partitions the table by. */
  readonly keyColumns: readonly string[];
}

export interface OrderedDecision {
  readonly ordered: boolean;
  /** Why, for the log: the config, or the index that makes it ordered. */
  readonly reason: string;
}

/** One unique (or exclusion) index of a blue table, as the catalog query reads it. */
export interface BlueUniqueIndex extends UniqueIndexShape {
  readonly name: string;
}

/** Decides for one table from its indexes and the config's flag (`schema.table` -> boolean). */
export function decideOrdered(
  name: string,
  indexes: readonly BlueUniqueIndex[],
  keyColumns: readonly string[],
  configured: Readonly<Record<string, boolean>>,
): OrderedDecision {
  const flag = configured[name];
  if (flag !== undefined) return { ordered: flag, reason: `ordered["${name}"] = ${flag} in the config` };
  const ordering = orderingIndexes(indexes, keyColumns);
  if (ordering.length === 0) return { ordered: false, reason: 'no unique index besides the key' };
  const names = ordering.map((i) => i.name).join(', ');
  return { ordered: true, reason: `unique index besides the key on blue: ${names}` };
}

// A partitioned table is read at its root (publish_via_partition_root): the root's own
// (partitioned) indexes are the ones every leaf enforces.
const UNIQUE_INDEXES_SQL = `
  SELECT n.nspname AS schema, c.relname AS "table", i.relname AS name,
         (x.indpred IS NULL AND x.indexprs IS NULL) AS plain, x.indisexclusion AS exclusion,
         (SELECT coalesce(json_agg(coalesce(a.attname, '') ORDER BY k.ord), '[]'::json)
            FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
            LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum)::text AS columns
    FROM pg_index x
    JOIN pg_class c ON c.oid = x.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN unnest($1::text[], $2::text[]) AS t(s, r) ON n.nspname = t.s AND c.relname = t.r
   WHERE x.indisunique OR x.indisexclusion`;

/** Reads blue's unique and exclusion indexes of `tables` and decides each ("schema.table" -> decision). */
export async function readOrderedTables(
  blue: Queryable,
  tables: readonly OrderedTableRef[],
  configured: Readonly<Record<string, boolean>>,
): Promise<Map<string, OrderedDecision>> {
  const decisions = new Map<string, OrderedDecision>();
  if (tables.length === 0) return decisions;
  const { rows } = await blue.query<{
    schema: string;
    table: string;
    name: string;
    plain: boolean | string;
    exclusion: boolean | string;
    columns: string;
  }>(UNIQUE_INDEXES_SQL, [tables.map((t) => t.schema), tables.map((t) => t.table)]);
  const byTable = new Map<string, BlueUniqueIndex[]>();
  for (const r of rows) {
    const name = `${r.schema}.${r.table}`;
    const list = byTable.get(name) ?? [];
    // teal's pools parse no types: booleans arrive as 't' / 'f'.
    list.push({
      name: r.name,
      columns: JSON.parse(r.columns) as string[],
      plain: r.plain === true || r.plain === 't',
      exclusion: r.exclusion === true || r.exclusion === 't',
    });
    byTable.set(name, list);
  }
  for (const t of tables) {
    const name = `${t.schema}.${t.table}`;
    decisions.set(name, decideOrdered(name, byTable.get(name) ?? [], t.keyColumns, configured));
  }
  return decisions;
}
