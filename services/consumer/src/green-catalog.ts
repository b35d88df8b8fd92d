import { quoteIdent } from '@teal/postgres';
import type pg from 'pg';
import type { TableRef } from './apply-plan.ts';
import { qualified } from './apply-sql.ts';

// Green's columns and their declared types (format_type), read once per table and cached.
// Casting every value to the green column's own declared type is right for arrays, domains,
// enums and user types alike. The cache is dropped when green reports a missing table or
// column (42P01/42703), so a change made in green by the operator is seen on the next try.

export type ColumnTypeMap = ReadonlyMap<string, string>;

export class GreenCatalog {
  private readonly cache = new Map<string, Promise<ColumnTypeMap | undefined>>();

  constructor(private readonly pool: pg.Pool) {}

  columns(table: TableRef): Promise<ColumnTypeMap | undefined> {
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

  private async load(table: TableRef): Promise<ColumnTypeMap | undefined> {
    const { rows } = await this.pool.query<{ name: string; type: string; present: boolean }>(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
         FROM pg_attribute a
        WHERE a.attrelid = to_regclass(format('%I.%I', $1::text, $2::text))
          AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum`,
      [table.schema, table.table],
    );
    if (rows.length === 0) {
      const exists = await this.pool.query(
        `SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL AS e`,
        [table.schema, table.table],
      );
      if (exists.rows[0].e !== 't' && exists.rows[0].e !== true) return undefined;
    }
    return new Map(rows.map((r) => [r.name, r.type]));
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
