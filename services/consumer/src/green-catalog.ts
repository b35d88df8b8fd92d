import { quoteIdent } from '@teal/postgres';
import type pg from 'pg';
import type { TableRef } from './apply-plan.ts';
import { qualified } from './apply-sql.ts';
import type { GreenColumn, GreenTable, UniqueIndex } from './green-shape.ts';

// Green's tables as the apply statements need them (green-shape.ts): columns with their
// declared types (format_type) and whether green computes them, unique indexes, incoming
// foreign keys; read once per table and cached. Casting every value to the green column's own
// declared type is right for arrays, domains, enums and user types alike. The cache is dropped
// when green reports a missing table or column (42P01/42703), so a change made in green by the
// operator is seen on the next try.

export type ColumnTypeMap = ReadonlyMap<string, string>;

interface Entry {
  readonly table: GreenTable;
  readonly types: ColumnTypeMap;
}

export class GreenCatalog {
  private readonly cache = new Map<string, Promise<Entry | undefined>>();

  constructor(private readonly pool: pg.Pool) {}

  async columns(table: TableRef): Promise<ColumnTypeMap | undefined> {
    return (await this.entry(table))?.types;
  }

  /** Green's shape of `table`; undefined when green has no such table. */
  async table(table: TableRef): Promise<GreenTable | undefined> {
    return (await this.entry(table))?.table;
  }

  private entry(table: TableRef): Promise<Entry | undefined> {
    const id = `${table.schema}.${table.table}`;
    let entry = this.cache.get(id);
    if (!entry) {
      entry = this.load(table);
      this.cache.set(id, entry);
      entry.catch(() => this.cache.delete(id));
    }
    return entry;
  }

  invalidate(table?: TableRef): void {
    if (table) this.cache.delete(`${table.schema}.${table.table}`);
    else this.cache.clear();
  }

  private async load(table: TableRef): Promise<Entry | undefined> {
    const args = [table.schema, table.table];
    const { rows } = await this.pool.query<{
      name: string;
      type: string;
      identity: string;
      generated: string;
    }>(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
              a.attidentity::text AS identity, a.attgenerated::text AS generated
         FROM pg_attribute a
        WHERE a.attrelid = to_regclass(format('%I.%I', $1::text, $2::text))
          AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum`,
      args,
    );
    if (rows.length === 0) {
      const exists = await this.pool.query(
        `SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL AS e`,
        args,
      );
      if (exists.rows[0].e !== 't' && exists.rows[0].e !== true) return undefined;
    }
    // Unique indexes with their columns (none when an expression is among them), and whether a
    // foreign key of another table references this one.
    const indexes = await this.pool.query<{ name: string; columns: string | null; plain: boolean | string }>(
      `SELECT c.relname AS name,
              CASE WHEN 0 = ANY (i.indkey::int2[]) THEN NULL ELSE
                (SELECT json_agg(a.attname ORDER BY k.n)::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) END AS columns,
              (i.indpred IS NULL AND i.indexprs IS NULL) AS plain
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = to_regclass(format('%I.%I', $1::text, $2::text)) AND i.indisunique AND i.indisvalid`,
      args,
    );
    const referenced = await this.pool.query(
      `SELECT 1 FROM pg_constraint
        WHERE contype = 'f' AND confrelid = to_regclass(format('%I.%I', $1::text, $2::text)) AND conrelid <> confrelid
        LIMIT 1`,
      args,
    );
    const columns = new Map<string, GreenColumn>(
      rows.map((r) => [
        r.name,
        {
          type: r.type,
          identity: r.identity === 'a' || r.identity === 'd' ? r.identity : '',
          generated: r.generated,
        },
      ]),
    );
    const uniqueIndexes: UniqueIndex[] = indexes.rows.map((r) => ({
      name: r.name,
      columns: r.columns === null ? [] : (JSON.parse(r.columns) as string[]),
      plain: (r.plain === true || r.plain === 't') && r.columns !== null,
    }));
    return {
      table: { columns, uniqueIndexes, referenced: referenced.rows.length > 0 },
      types: new Map(rows.map((r) => [r.name, r.type])),
    };
  }

  async addColumns(table: TableRef, columns: readonly (readonly [string, string])[]): Promise<void> {
    const adds = columns.map(([name, type]) => `ADD COLUMN IF NOT EXISTS ${quoteIdent(name)} ${type}`);
    await this.ddl(`ALTER TABLE ${qualified(table)} ${adds.join(', ')}`);
    this.invalidate(table);
  }

  async createTable(
    table: TableRef,
    columns: readonly (readonly [string, string])[],
    keyColumns: readonly string[],
  ): Promise<void> {
    const defs = columns.map(([name, type]) => `${quoteIdent(name)} ${type}`);
    defs.push(`PRIMARY KEY (${keyColumns.map(quoteIdent).join(', ')})`);
    await this.ddl(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(table.schema)}`);
    await this.ddl(`CREATE TABLE IF NOT EXISTS ${qualified(table)} (${defs.join(', ')})`);
    this.invalidate(table);
  }

  // Two partitions of one table may run the same DDL at once; IF NOT EXISTS still races on
  // the catalog's unique indexes, and the loser's work is already done.
  private async ddl(text: string): Promise<void> {
    try {
      await this.pool.query(text);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== '23505' && code !== '42P07' && code !== '42701' && code !== '42P06') throw err;
    }
  }
}
