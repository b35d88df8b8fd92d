import { parseTableName } from '@teal/config';
import { DEFAULT_TABLES_SQL } from '@teal/postgres';
import type pg from 'pg';
import type {
  BlueServerFacts,
  BlueTableFacts,
  ColumnFacts,
  ForeignKeyFacts,
  GreenTableFacts,
  ReplicaIdentity,
  TableKind,
  TriggerFacts,
  UniqueIndexFacts,
} from './check-facts.ts';

// The catalog reads of `teal check`: one query per kind of fact, over every table at once,
// on sessions that return text (teal's sessions); check-findings.ts judges the answers.

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Tables smaller than this (heap + TOAST + indexes) have every row measured; larger ones a sample. */
export const FULL_SCAN_BYTES = 64 * 1024 ** 2;
/** About how much of a large table the size sample reads. */
const SAMPLE_BYTES = 8 * 1024 ** 2;

const REPLICATED_SCHEMA = `n.nspname <> 'teal' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'`;

/** The tables teal replicates: the config's list, or every table of blue's replicated schemas. */
export async function tablesToCheck(blue: Queryable, tables: readonly string[] | 'all'): Promise<string[]> {
  if (tables !== 'all') return [...tables];
  const result = await blue.query<{ schema: string; table: string }>(DEFAULT_TABLES_SQL);
  return result.rows.map((r) => `${r.schema}.${r.table}`);
}

interface RelationRow {
  oid: string;
  name: string;
  relkind: string;
  relispartition: string;
  relpersistence: string;
  relreplident: string;
  selectable: string;
  owned: string;
  root: string | null;
  bad_leaves: string | null;
  total_bytes: string;
}

async function relations(db: Queryable, names: readonly string[]): Promise<Map<string, RelationRow>> {
  const parsed = names.map((n) => parseTableName(n) ?? { schema: '', table: n });
  const result = await db.query<RelationRow>(
    `SELECT c.oid::int8::text AS oid, n.nspname || '.' || c.relname AS name, c.relkind::text AS relkind,
            c.relispartition::text AS relispartition, c.relpersistence::text AS relpersistence,
            c.relreplident::text AS relreplident, has_table_privilege(c.oid, 'SELECT')::text AS selectable,
            pg_has_role(c.relowner, 'USAGE')::text AS owned,
            CASE WHEN c.relispartition THEN
              (SELECT rn.nspname || '.' || rc.relname FROM pg_class rc JOIN pg_namespace rn ON rn.oid = rc.relnamespace
                WHERE rc.oid = pg_partition_root(c.oid)) END AS root,
            -- Each leaf's own replica identity is what its UPDATEs and DELETEs log (as the producer checks).
            CASE WHEN c.relkind = 'p' THEN
              (SELECT json_agg(ln.nspname || '.' || l.relname ORDER BY l.relname)
                 FROM pg_partition_tree(c.oid) pt JOIN pg_class l ON l.oid = pt.relid
                 JOIN pg_namespace ln ON ln.oid = l.relnamespace
                WHERE pt.isleaf AND NOT (l.relreplident IN ('f', 'i') OR (l.relreplident = 'd' AND
                      EXISTS (SELECT 1 FROM pg_index li WHERE li.indrelid = l.oid AND li.indisprimary))))
            END::text AS bad_leaves,
            CASE WHEN c.relkind = 'p'
              THEN (SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0) FROM pg_partition_tree(c.oid) t)
              ELSE pg_total_relation_size(c.oid) END::text AS total_bytes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN unnest($1::text[], $2::text[]) AS wanted(nsp, rel) ON wanted.nsp = n.nspname AND wanted.rel = c.relname`,
    [parsed.map((p) => p.schema), parsed.map((p) => p.table)],
  );
  return new Map(result.rows.map((r) => [r.name, r]));
}

async function columns(db: Queryable, oids: readonly string[]): Promise<Map<string, ColumnFacts[]>> {
  const result = await db.query<{
    rel: string;
    name: string;
    type: string;
    base_type: string;
    user_type: string | null;
    not_null: string;
    generated: string;
    identity: string;
  }>(
    `SELECT a.attrelid::int8::text AS rel, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            format_type(a.atttypid, NULL) AS base_type,
            CASE WHEN tn.nspname IN ('pg_catalog', 'information_schema') THEN NULL
                 ELSE tn.nspname || '.' || t.typname END AS user_type,
            a.attnotnull::text AS not_null, a.attgenerated::text AS generated, a.attidentity::text AS identity
       FROM pg_attribute a
       JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace tn ON tn.oid = t.typnamespace
      WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attrelid, a.attnum`,
    [oids],
  );
  const out = new Map<string, ColumnFacts[]>();
  for (const r of result.rows) {
    const list = out.get(r.rel) ?? [];
    list.push({
      name: r.name,
      type: r.type,
      baseType: r.base_type,
      userType: r.user_type,
      notNull: r.not_null === 'true',
      // 's' stored; 'v' virtual (Postgres 18): neither is sent by pgoutput nor written by teal.
      generated: r.generated === 's' || r.generated === 'v',
      identity: r.identity === 'a' ? 'always' : r.identity === 'd' ? 'default' : null,
    });
    out.set(r.rel, list);
  }
  return out;
}

async function uniqueIndexes(
  db: Queryable,
  oids: readonly string[],
): Promise<Map<string, UniqueIndexFacts[]>> {
  const result = await db.query<{
    rel: string;
    name: string;
    is_primary: string;
    replident: string;
    partial: string;
    immediate: string;
    exclusion: string;
    columns: string;
  }>(
    `SELECT i.indrelid::int8::text AS rel, ic.relname AS name, i.indisprimary::text AS is_primary,
            i.indisreplident::text AS replident,
            (i.indpred IS NOT NULL OR i.indexprs IS NOT NULL)::text AS partial, i.indimmediate::text AS immediate,
            i.indisexclusion::text AS exclusion,
            coalesce((SELECT json_agg(a.attname ORDER BY k.ord)
                        FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum), '[]')::text AS columns
       FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
      WHERE i.indrelid = ANY($1::oid[]) AND (i.indisunique OR i.indisexclusion) AND i.indisvalid
      ORDER BY ic.relname`,
    [oids],
  );
  const out = new Map<string, UniqueIndexFacts[]>();
  for (const r of result.rows) {
    const list = out.get(r.rel) ?? [];
    list.push({
      name: r.name,
      columns: JSON.parse(r.columns) as string[],
      primary: r.is_primary === 'true',
      replicaIdentity: r.replident === 'true',
      partialOrExpression: r.partial === 'true',
      immediate: r.immediate === 'true',
      exclusion: r.exclusion === 'true',
    });
    out.set(r.rel, list);
  }
  return out;
}

const KINDS: Record<string, TableKind> = { r: 'table', p: 'partitioned' };
const IDENTITIES: Record<string, ReplicaIdentity> = { d: 'default', f: 'full', i: 'index', n: 'nothing' };

/** A table's columns, key and replica identity: what planning the reverse direction needs of each side. */
export interface TableShape {
  name: string;
  replicaIdentity: ReplicaIdentity;
  /** Has a primary key (REPLICA IDENTITY DEFAULT logs it). */
  hasPrimaryKey: boolean;
  /** The primary key's columns, else the replica identity index's; empty when neither. */
  key: string[];
  columns: ColumnFacts[];
}

/** The shapes of the tables `db` has among `names` (those it lacks are left out); no row is read. */
export async function readTableShapes(
  db: Queryable,
  names: readonly string[],
): Promise<Map<string, TableShape>> {
  const rels = await relations(db, names);
  const oids = [...rels.values()].map((r) => r.oid);
  const cols = await columns(db, oids);
  const uniques = await uniqueIndexes(db, oids);
  const out = new Map<string, TableShape>();
  for (const [name, r] of rels) {
    const indexes = uniques.get(r.oid) ?? [];
    const primary = indexes.find((i) => i.primary);
    const identity = IDENTITIES[r.relreplident] ?? 'default';
    const keyIndex = identity === 'index' ? indexes.find((i) => i.replicaIdentity) : primary;
    out.set(name, {
      name,
      replicaIdentity: identity,
      hasPrimaryKey: primary !== undefined,
      key: [...(keyIndex?.columns ?? [])],
      columns: cols.get(r.oid) ?? [],
    });
  }
  return out;
}

/** Blue's facts for each table; a table blue lacks maps to null. */
export async function readBlueTables(
  blue: Queryable,
  names: readonly string[],
): Promise<Map<string, BlueTableFacts | null>> {
  const rels = await relations(blue, names);
  const oids = [...rels.values()].map((r) => r.oid);
  const cols = await columns(blue, oids);
  const uniques = await uniqueIndexes(blue, oids);
  const out = new Map<string, BlueTableFacts | null>();
  for (const name of names) {
    const r = rels.get(name);
    if (!r) {
      out.set(name, null);
      continue;
    }
    const kind: TableKind = r.relispartition === 'true' ? 'partition' : (KINDS[r.relkind] ?? 'other');
    const unlogged = r.relpersistence === 'u';
    const selectable = r.selectable === 'true';
    const size =
      selectable && (kind === 'table' || kind === 'partitioned')
        ? await largestRow(blue, name, Number(r.total_bytes))
        : { bytes: null, sampled: false };
    out.set(name, {
      name,
      kind,
      partitionRoot: r.root,
      leavesWithoutIdentity: r.bad_leaves ? (JSON.parse(r.bad_leaves) as string[]) : [],
      unlogged,
      selectable,
      owned: r.owned === 'true',
      replicaIdentity: IDENTITIES[r.relreplident] ?? 'default',
      columns: cols.get(r.oid) ?? [],
      uniqueIndexes: uniques.get(r.oid) ?? [],
      largestRowBytes: size.bytes,
      rowSizeSampled: size.sampled,
    });
  }
  return out;
}

function quoteName(name: string): string {
  const p = parseTableName(name);
  if (!p) throw new Error(`not a table name: ${name}`);
  return `"${p.schema.replaceAll('"', '""')}"."${p.table.replaceAll('"', '""')}"`;
}

/**
 * The largest row's size: what it takes on disk (pg_column_size, TOAST compressed) or as
 * text (what teal sends, values as Postgres text), whichever is larger. Every row of a small
 * table; a TABLESAMPLE SYSTEM of about SAMPLE_BYTES of a large one.
 */
async function largestRow(
  blue: Queryable,
  name: string,
  totalBytes: number,
): Promise<{ bytes: number | null; sampled: boolean }> {
  const sampled = totalBytes > FULL_SCAN_BYTES;
  const percent = sampled ? Math.max(0.001, Math.min(100, (100 * SAMPLE_BYTES) / totalBytes)) : 100;
  const result = await blue.query<{ largest: string | null }>(
    `SELECT max(greatest(pg_column_size(t.*), octet_length(t::text)))::text AS largest
       FROM ${quoteName(name)} AS t${sampled ? ` TABLESAMPLE SYSTEM (${percent.toFixed(3)})` : ''}`,
  );
  const largest = result.rows[0]?.largest;
  return { bytes: largest === null || largest === undefined ? null : Number(largest), sampled };
}

/** Green's facts for the target tables it has (those it lacks are left out). */
export async function readGreenTables(
  green: Queryable,
  names: readonly string[],
): Promise<Map<string, GreenTableFacts>> {
  const rels = await relations(green, names);
  const oids = [...rels.values()].map((r) => r.oid);
  const cols = await columns(green, oids);
  const uniques = await uniqueIndexes(green, oids);
  const fks = await green.query<{ rel: string; name: string; other: string; direction: 'out' | 'in' }>(
    `SELECT con.conrelid::int8::text AS rel, con.conname AS name, rn.nspname || '.' || rc.relname AS other, 'out' AS direction
       FROM pg_constraint con JOIN pg_class rc ON rc.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
      WHERE con.contype = 'f' AND con.conparentid = 0 AND con.conrelid = ANY($1::oid[])
     UNION ALL
     SELECT con.confrelid::int8::text, con.conname, rn.nspname || '.' || rc.relname, 'in'
       FROM pg_constraint con JOIN pg_class rc ON rc.oid = con.conrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
      WHERE con.contype = 'f' AND con.conparentid = 0 AND con.confrelid = ANY($1::oid[])
      ORDER BY 2`,
    [oids],
  );
  const triggers = await green.query<{ rel: string; name: string; enabled: TriggerFacts['enabled'] }>(
    `SELECT tgrelid::int8::text AS rel, tgname AS name, tgenabled::text AS enabled
       FROM pg_trigger WHERE tgrelid = ANY($1::oid[]) AND NOT tgisinternal ORDER BY tgname`,
    [oids],
  );
  const out = new Map<string, GreenTableFacts>();
  for (const [name, r] of rels) {
    const outgoing: ForeignKeyFacts[] = [];
    const incoming: ForeignKeyFacts[] = [];
    for (const fk of fks.rows) {
      if (fk.rel !== r.oid) continue;
      (fk.direction === 'out' ? outgoing : incoming).push({ name: fk.name, table: fk.other });
    }
    out.set(name, {
      name,
      columns: cols.get(r.oid) ?? [],
      uniqueIndexes: uniques.get(r.oid) ?? [],
      foreignKeys: outgoing,
      referencedBy: incoming,
      triggers: triggers.rows
        .filter((t) => t.rel === r.oid)
        .map((t) => ({ name: t.name, enabled: t.enabled })),
    });
  }
  return out;
}

/** Which of `types` ("schema.name") green has. */
export async function readGreenTypes(green: Queryable, types: readonly string[]): Promise<Set<string>> {
  if (types.length === 0) return new Set();
  const result = await green.query<{ name: string }>(
    `SELECT n.nspname || '.' || t.typname AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE n.nspname || '.' || t.typname = ANY($1::text[])`,
    [types],
  );
  return new Set(result.rows.map((r) => r.name));
}

export async function readBlueServer(
  blue: Queryable,
  slot: string,
  publication: string,
  listUnlogged: boolean,
): Promise<BlueServerFacts> {
  const s = await blue.query<Record<string, string>>(
    `SELECT current_setting('server_version') AS version, current_setting('wal_level') AS wal_level,
            current_setting('max_replication_slots') AS max_slots,
            (SELECT count(*) FROM pg_replication_slots)::text AS slots_used,
            current_setting('max_wal_senders') AS max_senders,
            (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'
                AND pid IS DISTINCT FROM (SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1))::text AS senders_used,
            coalesce((SELECT setting FROM pg_settings WHERE name = 'max_slot_wal_keep_size'), '-1') AS keep_mb,
            current_user AS role, r.rolsuper::text AS superuser, r.rolreplication::text AS replication,
            EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)::text AS own_slot,
            current_database() AS database,
            has_database_privilege(current_database(), 'CREATE')::text AS can_create,
            (SELECT p.puballtables::text FROM pg_publication p WHERE p.pubname = $2) AS pub_all_tables,
            (SELECT json_agg(n.nspname || '.' || c.relname)
               FROM pg_publication p JOIN pg_publication_rel pr ON pr.prpubid = p.oid
               JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE p.pubname = $2)::text AS pub_tables,
            (SELECT count(*) FROM pg_largeobject_metadata)::text AS large_objects,
            (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'S' AND ${REPLICATED_SCHEMA})::text AS sequences
       FROM pg_roles r WHERE r.rolname = current_user`,
    [slot, publication],
  );
  const row = s.rows[0];
  const unlogged = listUnlogged
    ? (
        await blue.query<{ name: string }>(
          `SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'u' AND ${REPLICATED_SCHEMA} ORDER BY 1`,
        )
      ).rows.map((r) => r.name)
    : [];
  return {
    serverVersion: row.version,
    walLevel: row.wal_level,
    maxReplicationSlots: Number(row.max_slots),
    replicationSlotsUsed: Number(row.slots_used),
    maxWalSenders: Number(row.max_senders),
    walSendersUsed: Number(row.senders_used),
    maxSlotWalKeepSizeMb: Number(row.keep_mb),
    role: { name: row.role, superuser: row.superuser === 'true', replication: row.replication === 'true' },
    ownSlotExists: row.own_slot === 'true',
    database: row.database,
    canCreateInDatabase: row.can_create === 'true',
    publication:
      row.pub_all_tables === null
        ? null
        : {
            allTables: row.pub_all_tables === 'true',
            tables: row.pub_tables ? (JSON.parse(row.pub_tables) as string[]) : [],
          },
    largeObjects: Number(row.large_objects),
    sequences: Number(row.sequences),
    unloggedTables: unlogged,
  };
}
