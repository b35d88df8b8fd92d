import { parseTableName, qualifiedName, type TableName } from '@teal/config';
import { TealError } from '@teal/errors';
import { DEFAULT_TABLES_SQL, quoteIdent, quoteTable } from '@teal/postgres';
import type pg from 'pg';

// Which blue tables teal replicates, whether each can be keyed, and the publication that
// carries them. Runs once at start, before the slot is used, so a table that cannot be
// keyed stops teal before any event of it is produced.

type Queryable = Pick<pg.ClientBase, 'query'>;

export interface ReplicatedTable {
  readonly schema: string;
  readonly table: string;
  /** "schema.table" */
  readonly name: string;
  /** Configured key columns for a table without a primary key, if any. */
  readonly keyColumns?: readonly string[];
}

/** Configured tables ("schema.table"), or every table of blue's non-system schemas except teal's. */
export async function discoverTables(
  db: Queryable,
  tables: readonly string[] | 'all',
  keyColumns: Readonly<Record<string, readonly string[]>> = {},
): Promise<ReplicatedTable[]> {
  let names: TableName[];
  if (tables === 'all') {
    names = (await db.query<{ schema: string; table: string }>(DEFAULT_TABLES_SQL)).rows;
  } else {
    names = tables.map((text) => {
      const name = parseTableName(text);
      // resolveConfig lets through only names parseTableName reads; anything else is a caller's slip.
      if (!name)
        throw new TealError(
          'TEAL_CONFIG_INVALID',
          `${JSON.stringify(text)} in \`tables\` is not a table name: write "schema.table" or "table"`,
        );
      return name;
    });
    const found = await db.query<{ schema: string; table: string }>(
      `SELECT n.nspname AS schema, c.relname AS table FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND (n.nspname || '.' || c.relname) = ANY($1::text[])`,
      [names.map((n) => qualifiedName(n.schema, n.table))],
    );
    const present = new Set(found.rows.map((r) => qualifiedName(r.schema, r.table)));
    const missing = names.map((n) => qualifiedName(n.schema, n.table)).filter((n) => !present.has(n));
    if (missing.length > 0) {
      throw new TealError(
        'TEAL_TABLE_NOT_FOUND',
        `configured table(s) ${missing.join(', ')} do not exist on blue: create them or remove them from \`tables\` in teal.config.ts`,
      );
    }
  }
  return names.map(({ schema, table }) => {
    const name = qualifiedName(schema, table);
    const keys = keyColumns[name] ?? (schema === 'public' ? keyColumns[table] : undefined);
    return keys ? { schema, table, name, keyColumns: keys } : { schema, table, name };
  });
}

interface IdentityRow {
  schema: string;
  table: string;
  ident: string;
  has_pk: string;
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
              EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)::text AS has_pk
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

/**
 * Creates the publication FOR TABLE the listed tables when missing, and adds configured
 * tables it lacks. Returns the tables newly added to an existing publication (they need a
 * snapshot while streaming). Tables are never removed: an operator may have added them.
 */
export async function ensurePublication(
  db: Queryable,
  publication: string,
  tables: readonly ReplicatedTable[],
): Promise<{ created: boolean; added: ReplicatedTable[] }> {
  const exists = await db.query<{ all: string }>(
    'SELECT puballtables::text AS all FROM pg_publication WHERE pubname = $1',
    [publication],
  );
  const list = (ts: readonly ReplicatedTable[]) => ts.map((t) => quoteTable(t.schema, t.table)).join(', ');
  if (exists.rows.length === 0) {
    await db.query(
      tables.length > 0
        ? `CREATE PUBLICATION ${quoteIdent(publication)} FOR TABLE ${list(tables)}`
        : `CREATE PUBLICATION ${quoteIdent(publication)}`,
    );
    return { created: true, added: [] };
  }
  // FOR ALL TABLES already carries every table (and cannot take ADD TABLE).
  if (exists.rows[0].all === 'true') return { created: false, added: [] };
  const current = await db.query<{ schemaname: string; tablename: string }>(
    'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1',
    [publication],
  );
  const have = new Set(current.rows.map((r) => `${r.schemaname}.${r.tablename}`));
  const added = tables.filter((t) => !have.has(t.name));
  if (added.length > 0)
    await db.query(`ALTER PUBLICATION ${quoteIdent(publication)} ADD TABLE ${list(added)}`);
  return { created: false, added };
}
