import { parseTableName, qualifiedName } from '@teal/config';
import { TealError } from '@teal/errors';
import { DEFAULT_TABLES_SQL, quoteIdent, quoteTable } from '@teal/postgres';
import type pg from 'pg';

// Which blue tables teal replicates, whether each can be keyed, and the publication that
// carries them. Runs at start, before the slot is used, so a table that cannot be keyed
// stops teal before any event of it is produced; the catalog watch (catalog-watch.ts) runs
// the same checks for a table created while streaming.
//
// Partitioned tables replicate through their root: the publication has
// publish_via_partition_root = true, so pgoutput names every change of a leaf partition after
// the root (and converts its tuple to the root's columns). Leaves are never teal tables.

type Queryable = Pick<pg.ClientBase, 'query'>;

export interface ReplicatedTable {
  readonly schema: string;
  readonly table: string;
  /** "schema.table" */
  readonly name: string;
  /** Configured key columns for a table without a primary key, if any. */
  readonly keyColumns?: readonly string[];
  /** pg_class oid on blue: the table's identity across renames (pgoutput's relation id). */
  readonly oid: number;
  /** A partitioned table: its leaf partitions' changes arrive under its name. */
  readonly partitioned: boolean;
}

/** Configured tables ("schema.table"), or every table of blue's non-system schemas except teal's. */
export async function discoverTables(
  db: Queryable,
  tables: readonly string[] | 'all',
  keyColumns: Readonly<Record<string, readonly string[]>> = {},
): Promise<ReplicatedTable[]> {
  let found: Array<{ schema: string; table: string; oid: string; relkind?: string }>;
  if (tables === 'all') {
    found = (
      await db.query<{ schema: string; table: string; oid: string; relkind: string }>(DEFAULT_TABLES_SQL)
    ).rows;
  } else {
    const names = tables.map((text) => {
      const name = parseTableName(text);
      // resolveConfig lets through only names parseTableName reads; anything else is a caller's slip.
      if (!name)
        throw new TealError(
          'TEAL_CONFIG_INVALID',
          `${JSON.stringify(text)} in \`tables\` is not a table name: write "schema.table" or "table"`,
        );
      return qualifiedName(name.schema, name.table);
    });
    const rows = (
      await db.query<{ schema: string; table: string; oid: string; relkind: string; root: string | null }>(
        `SELECT n.nspname AS schema, c.relname AS table, c.oid::int8::text AS oid, c.relkind::text AS relkind,
                CASE WHEN c.relispartition THEN (SELECT rn.nspname || '.' || r.relname FROM pg_class r
                  JOIN pg_namespace rn ON rn.oid = r.relnamespace WHERE r.oid = pg_partition_root(c.oid)) END AS root
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND (n.nspname || '.' || c.relname) = ANY($1::text[])`,
        [names],
      )
    ).rows;
    const byName = new Map(rows.map((r) => [qualifiedName(r.schema, r.table), r]));
    const missing = names.filter((n) => !byName.has(n));
    if (missing.length > 0) {
      throw new TealError(
        'TEAL_TABLE_NOT_FOUND',
        `configured table(s) ${missing.join(', ')} do not exist on blue: create them or remove them from \`tables\` in teal.config.ts`,
      );
    }
    const leaves = rows.filter((r) => r.root !== null);
    if (leaves.length > 0) {
      const list = leaves.map((r) => `${qualifiedName(r.schema, r.table)} (a partition of ${r.root})`);
      throw new TealError(
        'TEAL_CONFIG_INVALID',
        `\`tables\` names leaf partition(s) ${list.join(', ')}: teal replicates a partitioned table through its root ` +
          '(every partition, attached now or later, as changes of the root). In teal.config.ts name the root instead ' +
          `(${[...new Set(leaves.map((r) => r.root))].join(', ')}) and remove the partitions from \`tables\`.`,
        {
          details: {
            partitions: leaves.map((r) => ({ partition: qualifiedName(r.schema, r.table), root: r.root })),
          },
        },
      );
    }
    found = names.map((n) => byName.get(n)!);
  }
  return found.map((r) => replicatedTable(r.schema, r.table, Number(r.oid), r.relkind === 'p', keyColumns));
}

/** A blue table as teal replicates it, with its configured key columns (by "schema.table", or "table" in public). */
export function replicatedTable(
  schema: string,
  table: string,
  oid: number,
  partitioned: boolean,
  keyColumns: Readonly<Record<string, readonly string[]>> = {},
): ReplicatedTable {
  const name = qualifiedName(schema, table);
  const keys = keyColumns[name] ?? (schema === 'public' ? keyColumns[table] : undefined);
  return keys
    ? { schema, table, name, oid, partitioned, keyColumns: keys }
    : { schema, table, name, oid, partitioned };
}

interface IdentityRow {
  schema: string;
  table: string;
  ident: string;
  has_pk: string;
  /** Leaf partitions of a partitioned table without a usable replica identity of their own. */
  bad_leaves: string | null;
}

/**
 * Refuses tables that cannot be keyed. A table is usable when it has a primary key (default
 * replica identity), a REPLICA IDENTITY USING INDEX, or REPLICA IDENTITY FULL. With
 * `keyColumns` configured for a table without a primary key, teal sets REPLICA IDENTITY
 * USING INDEX on a unique index over exactly those columns (all NOT NULL) when one exists;
 * otherwise it requires REPLICA IDENTITY FULL (then the key columns still decide the Kafka key).
 */
export async function checkReplicaIdentity(db: Queryable, tables: readonly ReplicatedTable[]): Promise<void> {
  if (tables.length === 0) return;
  const rows = (
    await db.query<IdentityRow>(
      `SELECT n.nspname AS schema, c.relname AS table, c.relreplident AS ident,
              EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)::text AS has_pk,
              CASE WHEN c.relkind = 'p' THEN
                (SELECT string_agg(ln.nspname || '.' || l.relname, ', ' ORDER BY l.relname)
                   FROM pg_partition_tree(c.oid) pt JOIN pg_class l ON l.oid = pt.relid
                   JOIN pg_namespace ln ON ln.oid = l.relnamespace
                  WHERE pt.isleaf AND NOT (l.relreplident IN ('f', 'i') OR (l.relreplident = 'd' AND
                        EXISTS (SELECT 1 FROM pg_index li WHERE li.indrelid = l.oid AND li.indisprimary))))
              END AS bad_leaves
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE (n.nspname || '.' || c.relname) = ANY($1::text[])`,
      [tables.map((t) => t.name)],
    )
  ).rows;
  const byName = new Map(rows.map((r) => [`${r.schema}.${r.table}`, r]));
  const refused: string[] = [];
  for (const t of tables) {
    const row = byName.get(t.name);
    if (!row) continue;
    const hasPk = row.has_pk === 'true';
    // Each leaf's own replica identity is what an UPDATE or DELETE on it logs: the root's does not reach them.
    if (row.bad_leaves !== null) {
      refused.push(
        `${t.name} (its partitions ${row.bad_leaves} have neither a primary key nor a replica identity: run ALTER TABLE <partition> REPLICA IDENTITY FULL on each, or add a primary key to ${t.name})`,
      );
      continue;
    }
    if (row.ident === 'f' || row.ident === 'i' || (row.ident === 'd' && hasPk)) continue;
    if (t.keyColumns && t.keyColumns.length > 0) {
      const index = await uniqueIndexOn(db, t, t.keyColumns);
      if (index) {
        await db.query(
          `ALTER TABLE ${quoteTable(t.schema, t.table)} REPLICA IDENTITY USING INDEX ${quoteIdent(index)}`,
        );
        continue;
      }
      refused.push(
        `${t.name} (keyColumns ${t.keyColumns.join(', ')} have no unique index over NOT NULL columns: run ALTER TABLE ${quoteTable(t.schema, t.table)} REPLICA IDENTITY FULL)`,
      );
      continue;
    }
    refused.push(t.name);
  }
  if (refused.length > 0) {
    throw new TealError(
      'TEAL_NO_REPLICA_IDENTITY',
      `teal cannot key the rows of ${refused.length} table(s) on blue: ${refused.join('; ')}. ` +
        'Updates and deletes of a table without a primary key or replica identity carry no key. ' +
        'For each table, do one of: (1) add a primary key (ALTER TABLE t ADD PRIMARY KEY (...)); ' +
        '(2) ALTER TABLE t REPLICA IDENTITY FULL; ' +
        '(3) configure `keyColumns: { "schema.table": ["col", ...] }` in teal.config.ts (a unique index over ' +
        'those NOT NULL columns is then used as replica identity; without one, REPLICA IDENTITY FULL is still required).',
      { details: { tables: refused } },
    );
  }
}

async function uniqueIndexOn(
  db: Queryable,
  t: ReplicatedTable,
  columns: readonly string[],
): Promise<string | undefined> {
  const result = await db.query<{ index: string }>(
    `SELECT ic.relname AS index
       FROM pg_index i
       JOIN pg_class c ON c.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_class ic ON ic.oid = i.indexrelid
      WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indimmediate AND i.indpred IS NULL
        AND i.indexprs IS NULL
        AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum = ANY(i.indkey::int2[])) = (SELECT array_agg(x ORDER BY x) FROM unnest($3::text[]) x)
        AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = ANY(i.indkey::int2[]) AND NOT a.attnotnull)
      LIMIT 1`,
    [t.schema, t.table, [...columns]],
  );
  return result.rows[0]?.index;
}

export interface PublicationChange {
  created: boolean;
  /** Tables newly added to an existing publication (they need a snapshot while streaming). */
  added: ReplicatedTable[];
  /** An existing publication was switched to publish_via_partition_root = true. */
  viaRootSet: boolean;
}

/**
 * Creates the publication FOR TABLE the listed tables with publish_via_partition_root when
 * missing; switches an existing one to publish_via_partition_root; adds the tables it lacks.
 * Tables are never removed: an operator may have added them.
 */
export async function ensurePublication(
  db: Queryable,
  publication: string,
  tables: readonly ReplicatedTable[],
): Promise<PublicationChange> {
  const exists = await db.query<{ all: string; viaroot: string }>(
    'SELECT puballtables::text AS all, pubviaroot::text AS viaroot FROM pg_publication WHERE pubname = $1',
    [publication],
  );
  const list = (ts: readonly ReplicatedTable[]) => ts.map((t) => quoteTable(t.schema, t.table)).join(', ');
  const pub = quoteIdent(publication);
  if (exists.rows.length === 0) {
    await db.query(
      tables.length > 0
        ? `CREATE PUBLICATION ${pub} FOR TABLE ${list(tables)} WITH (publish_via_partition_root = true)`
        : `CREATE PUBLICATION ${pub} WITH (publish_via_partition_root = true)`,
    );
    return { created: true, added: [], viaRootSet: false };
  }
  // Without it, pgoutput names a leaf's changes after the leaf, which teal does not replicate.
  const viaRootSet = exists.rows[0].viaroot !== 'true';
  if (viaRootSet) await db.query(`ALTER PUBLICATION ${pub} SET (publish_via_partition_root = true)`);
  // FOR ALL TABLES already carries every table (and cannot take ADD TABLE).
  if (exists.rows[0].all === 'true') return { created: false, added: [], viaRootSet };
  const current = await db.query<{ schemaname: string; tablename: string }>(
    'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1',
    [publication],
  );
  const have = new Set(current.rows.map((r) => `${r.schemaname}.${r.tablename}`));
  const added = tables.filter((t) => !have.has(t.name));
  if (added.length > 0) await db.query(`ALTER PUBLICATION ${pub} ADD TABLE ${list(added)}`);
  return { created: false, added, viaRootSet };
}
