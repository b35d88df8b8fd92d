import type pg from 'pg';
import { auditTriggers, makeShape, type Shape, type ShapeKind } from './shapes.ts';

// The soak's tables. Blue and green get the same shape (same column order, so a row's text
// is comparable). Green additionally records every row version it is written with, through
// a trigger ENABLED ALWAYS (it fires under session_replication_role = replica, which teal's
// apply uses): `ver` is unique per blue write, so one (table, key, ver) recorded twice is one
// change applied twice.

export interface SoakTables {
  base: string;
  items: string;
  ledger: string;
  probe: string;
  audit: string;
  ver: string;
  /** The issue-12 shapes this run writes (`--shapes`). */
  shapes: Shape[];
  /** Tables added while the run streams (the chunk-kill fault), snapshotted by chunk. */
  chunks: string[];
  /** A table of many small rows whose initial snapshot lasts long enough to stop green in it (green-snapshot). */
  bulk?: string;
}

export function soakTables(base: string, shapes: ShapeKind[] = []): SoakTables {
  return {
    base,
    items: `${base}_items`,
    ledger: `${base}_ledger`,
    probe: `${base}_probe`,
    audit: `${base}_audit`,
    ver: `${base}_ver`,
    shapes: shapes.map((k) => makeShape(k, base)),
    chunks: [],
  };
}

/** Key columns of every replicated table, for ordering the digest. */
export function keyColumns(t: SoakTables): Array<[string, string[]]> {
  return [
    [t.items, ['id']],
    [t.ledger, ['account', 'entry']],
    [t.probe, ['id']],
    ...t.shapes.flatMap((s) => s.tables.map((x): [string, string[]] => [x.name, x.keys])),
    ...t.chunks.map((c): [string, string[]] => [c, ['id']]),
    ...(t.bulk ? [[t.bulk, ['id']] as [string, string[]]] : []),
  ];
}

/** Every table teal replicates in this run (config `tables`, the drain's list). */
export function replicatedTables(t: SoakTables): string[] {
  return keyColumns(t).map(([name]) => `public.${name}`);
}

/** A chunk-kill table: items' shape without the audit (a re-read chunk legitimately writes a version again). */
export function chunkTableDdl(name: string): string {
  return `CREATE TABLE ${name} (id bigint PRIMARY KEY, ver bigint NOT NULL, n int NOT NULL, body text);
    ALTER TABLE ${name} ALTER COLUMN body SET STORAGE EXTERNAL;`;
}

export function bulkTableDdl(name: string): string {
  return `CREATE TABLE ${name} (id bigint PRIMARY KEY, ver bigint NOT NULL, v text NOT NULL);`;
}

function shapes(t: SoakTables): string {
  return `
    CREATE TABLE ${t.items} (
      id bigint PRIMARY KEY,
      ver bigint NOT NULL,
      n int NOT NULL DEFAULT 0,
      body text,
      amount numeric,
      doc jsonb,
      at timestamptz,
      tags text[]
    );
    CREATE TABLE ${t.ledger} (
      account int NOT NULL,
      entry int NOT NULL,
      ver bigint NOT NULL,
      amount numeric(20, 6),
      memo text,
      flags int[],
      at timestamptz,
      PRIMARY KEY (account, entry)
    );
    CREATE TABLE ${t.probe} (id int PRIMARY KEY, at timestamptz NOT NULL);`;
}

export async function createBlue(blue: pg.ClientBase, t: SoakTables): Promise<void> {
  await blue.query(`${shapes(t)}
    ${t.shapes.map((s) => s.ddl).join('\n')}
    ${t.bulk ? bulkTableDdl(t.bulk) : ''}
    CREATE SEQUENCE ${t.ver};
    -- Out-of-line TOAST without compression, so an UPDATE that leaves it alone really sends it as unchanged.
    ALTER TABLE ${t.items} ALTER COLUMN body SET STORAGE EXTERNAL;`);
}

export async function createGreen(green: pg.ClientBase, t: SoakTables): Promise<void> {
  await green.query(`${shapes(t)}
    CREATE UNLOGGED TABLE ${t.audit} (tbl text NOT NULL, k text NOT NULL, ver bigint NOT NULL);
    CREATE FUNCTION ${t.audit}_items() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO ${t.audit} VALUES (TG_TABLE_NAME, NEW.id::text, NEW.ver);
      RETURN NULL;
    END $$;
    CREATE FUNCTION ${t.audit}_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO ${t.audit} VALUES (TG_TABLE_NAME, NEW.account || '/' || NEW.entry, NEW.ver);
      RETURN NULL;
    END $$;
    CREATE TRIGGER audit AFTER INSERT OR UPDATE ON ${t.items} FOR EACH ROW EXECUTE FUNCTION ${t.audit}_items();
    CREATE TRIGGER audit AFTER INSERT OR UPDATE ON ${t.ledger} FOR EACH ROW EXECUTE FUNCTION ${t.audit}_ledger();
    ALTER TABLE ${t.items} ENABLE ALWAYS TRIGGER audit;
    ALTER TABLE ${t.ledger} ENABLE ALWAYS TRIGGER audit;
    ${t.shapes.map((s) => s.ddl).join('\n')}
    ${t.bulk ? bulkTableDdl(t.bulk) : ''}
    ${
      t.shapes.length
        ? auditTriggers(
            t.audit,
            t.shapes.flatMap((s) => s.audited),
          )
        : ''
    }`);
}

/** The run's own tables on one side (every table named `<base>_...`), partitions left to their root. */
async function ownTables(db: pg.ClientBase, base: string): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        AND starts_with(c.relname, $1)`,
    [`${base}_`],
  );
  return rows.map((r) => r.name);
}

export async function dropBlue(blue: pg.ClientBase, t: SoakTables): Promise<void> {
  const tables = await ownTables(blue, t.base);
  if (tables.length > 0) await blue.query(`DROP TABLE IF EXISTS ${tables.join(', ')} CASCADE`);
  await blue.query(`DROP SEQUENCE IF EXISTS ${t.ver}`);
}

export async function dropGreen(green: pg.ClientBase, t: SoakTables): Promise<void> {
  const tables = await ownTables(green, t.base);
  if (tables.length > 0) await green.query(`DROP TABLE IF EXISTS ${tables.join(', ')} CASCADE`);
  await green.query(`DROP FUNCTION IF EXISTS ${t.audit}_items(), ${t.audit}_ledger(), ${t.audit}_row()`);
}

export interface TableDigest {
  table: string;
  rows: number;
  md5: string;
}

export interface TableComparison {
  table: string;
  blue: TableDigest;
  green: TableDigest;
  onlyInBlue: number;
  onlyInGreen: number;
  different: number;
  /** Up to 5 differing keys, for the report. */
  examples: string[];
}

// Row text is the record's own output (`t::text`) under the same session settings on both
// sides (DateStyle ISO, TimeZone UTC, extra_float_digits 3): an independent check, not teal's
// verify. md5 per row keeps the aggregate small whatever the TOAST sizes.
function rowHashes(table: string, keys: string[]): string {
  const key = keys.map((k) => `${k}::text`).join(` || '/' || `);
  return `SELECT ${key} AS k, md5(t::text) AS h FROM ${table} t ORDER BY ${keys.join(', ')}`;
}

export async function digest(db: pg.ClientBase, table: string, keys: string[]): Promise<TableDigest> {
  const { rows } = await db.query<{ c: string; d: string | null }>(
    `SELECT count(*)::text AS c, md5(coalesce(string_agg(md5(t::text), '' ORDER BY ${keys.join(', ')}), '')) AS d FROM ${table} t`,
  );
  return { table, rows: Number(rows[0].c), md5: rows[0].d ?? '' };
}

export async function compareTable(
  blue: pg.ClientBase,
  green: pg.ClientBase,
  table: string,
  keys: string[],
): Promise<TableComparison> {
  const [b, g] = await Promise.all([digest(blue, table, keys), digest(green, table, keys)]);
  const result: TableComparison = {
    table,
    blue: b,
    green: g,
    onlyInBlue: 0,
    onlyInGreen: 0,
    different: 0,
    examples: [],
  };
  if (b.md5 === g.md5 && b.rows === g.rows) return result;
  // Narrow down to keys only when the digests disagree.
  const [br, gr] = await Promise.all([
    blue.query<{ k: string; h: string }>(rowHashes(table, keys)),
    green.query<{ k: string; h: string }>(rowHashes(table, keys)),
  ]);
  const greenRows = new Map(gr.rows.map((r) => [r.k, r.h]));
  for (const r of br.rows) {
    const h = greenRows.get(r.k);
    if (h === undefined) {
      result.onlyInBlue++;
      if (result.examples.length < 5) result.examples.push(`${r.k}: missing in green`);
    } else if (h !== r.h) {
      result.different++;
      if (result.examples.length < 5) result.examples.push(`${r.k}: differs`);
    }
    greenRows.delete(r.k);
  }
  result.onlyInGreen = greenRows.size;
  for (const k of [...greenRows.keys()].slice(0, Math.max(0, 5 - result.examples.length)))
    result.examples.push(`${k}: only in green`);
  return result;
}

/** Changes green recorded more than once (same table, key and blue version). */
export async function appliedTwice(
  green: pg.ClientBase,
  t: SoakTables,
): Promise<{ duplicates: number; examples: string[]; recorded: number }> {
  const { rows } = await green.query<{ tbl: string; k: string; ver: string; c: string }>(
    `SELECT tbl, k, ver::text AS ver, count(*)::text AS c FROM ${t.audit} GROUP BY 1, 2, 3 HAVING count(*) > 1 ORDER BY 3`,
  );
  const total = await green.query<{ c: string }>(`SELECT count(*)::text AS c FROM ${t.audit}`);
  return {
    duplicates: rows.reduce((sum, r) => sum + Number(r.c) - 1, 0),
    examples: rows.slice(0, 5).map((r) => `${r.tbl} ${r.k} ver ${r.ver} x${r.c}`),
    recorded: Number(total.rows[0].c),
  };
}
