import { describe, expect, it } from 'vitest';
import { sanitizeAvroName, sanitizeFieldNames } from './avro-types.ts';
import type { ColumnInfo, PgType, TableSchema } from './event.ts';
import { parsingCanonicalForm } from './fingerprint.ts';
import { buildTableSchemas, tableSchemaFromAvro } from './schemas.ts';

const base = (oid: number, name: string): PgType => ({ oid, name, kind: 'base' });
const col = (name: string, type: PgType, extra: Partial<ColumnInfo> = {}): ColumnInfo => ({
  name,
  type,
  typmod: -1,
  isKey: false,
  ...extra,
});

const TABLE: TableSchema = {
  schema: 'Sales Dept',
  table: 'order-lines',
  columns: [
    col('tenant', base(23, 'int4'), { isKey: true }),
    col('Order Id', base(20, 'int8'), { isKey: true }),
    col('1st', base(1043, 'varchar'), { typmod: 14 }),
    col('amount', base(1700, 'numeric'), { typmod: (12 << 16) + 2 + 4 }),
    col('tags', { oid: 1009, name: 'text[]', kind: 'array', elementOid: 25 }),
    col('mood', { oid: 16390, name: 'public.mood', kind: 'enum' }),
    col('qty', { oid: 16400, name: 'public.posint', kind: 'domain', baseOid: 23 }),
    col('at', base(1184, 'timestamptz')),
  ],
  // key order differs from column order on purpose
  keyColumns: ['Order Id', 'tenant'],
};

describe('buildTableSchemas / tableSchemaFromAvro', () => {
  it('rebuilds the TableSchema from the writer schema attributes alone', () => {
    const schemas = buildTableSchemas(TABLE);
    expect(tableSchemaFromAvro(schemas.valueJson)).toStrictEqual(TABLE);
    expect(tableSchemaFromAvro(JSON.parse(schemas.valueJson))).toStrictEqual(TABLE);
  });

  it('builds the envelope of architecture.md and a key record in key order', () => {
    const schemas = buildTableSchemas(TABLE, 'acme.teal');
    const value = JSON.parse(schemas.valueJson);
    expect(value.namespace).toBe('acme.teal.Sales_Dept.order_lines');
    expect(value.fields.map((f: { name: string }) => f.name)).toEqual([
      'op',
      'lsn',
      'seq',
      'xid',
      'commit_time_us',
      'schema',
      'table',
      'before',
      'after',
      'unchanged',
    ]);
    const key = JSON.parse(schemas.keyJson);
    expect(key.fields.map((f: Record<string, unknown>) => [f.name, f['pg.column'], f['pg.key']])).toEqual([
      ['Order_Id', 'Order Id', true],
      ['tenant', 'tenant', true],
    ]);
    expect(schemas.keyFingerprint).toHaveLength(8);
    expect(schemas.valueFingerprint).toHaveLength(8);
  });

  it('maps types naturally where lossless and to documented text otherwise', () => {
    const row = JSON.parse(buildTableSchemas(TABLE).valueJson).fields[7].type[1];
    const types = Object.fromEntries(
      row.fields.map((f: { name: string; type: unknown }) => [f.name, f.type]),
    );
    expect(types.tenant).toEqual(['null', 'int']);
    expect(types.Order_Id).toEqual(['null', 'long']);
    expect(types._1st).toEqual(['null', 'string']);
    expect(types.amount).toEqual(['null', { type: 'string', 'pg.fallback': 'text', 'pg.type': 'numeric' }]);
    expect(types.tags[1]['pg.fallback']).toBe('text');
    expect(types.mood[1]['pg.fallback']).toBe('text');
    expect(types.qty[1]['pg.fallback']).toBe('text');
    expect(types.at[1]).toMatchObject({
      type: 'long',
      logicalType: 'timestamp-micros',
      'pg.infinity': 'int64 max/min',
    });
    expect(types.at[2]).toBe('string');
  });

  // Parsing Canonical Form drops attributes: without the shape hash in the record names,
  // these changes would keep the fingerprint and consumers would rebuild the old TableSchema.
  it.each([
    [
      'a type that stays text in Avro (json -> jsonb)',
      (t: TableSchema) => retype(t, 'tags', base(3802, 'jsonb')),
    ],
    [
      'a typmod',
      (t: TableSchema) => ({
        ...t,
        columns: t.columns.map((c) => (c.name === '1st' ? { ...c, typmod: 24 } : c)),
      }),
    ],
    ['the key columns', (t: TableSchema) => ({ ...t, keyColumns: ['tenant', 'Order Id'] })],
    ['the table name', (t: TableSchema) => ({ ...t, table: 'order_lines' })],
  ])('gives a new value fingerprint when only %s changes', (_what, change) => {
    const before = buildTableSchemas(TABLE);
    const after = buildTableSchemas(change(TABLE));
    expect(after.valueFingerprint.equals(before.valueFingerprint)).toBe(false);
  });

  it('gives the same fingerprints for the same shape', () => {
    const a = buildTableSchemas(TABLE);
    const b = buildTableSchemas(structuredClone(TABLE));
    expect(b.valueFingerprint).toEqual(a.valueFingerprint);
    expect(b.keyFingerprint).toEqual(a.keyFingerprint);
    expect(parsingCanonicalForm(b.valueJson)).toBe(parsingCanonicalForm(a.valueJson));
  });

  it('rejects a key column that is not a column', () => {
    expect(() => buildTableSchemas({ ...TABLE, keyColumns: ['nope'] })).toThrow(/key column "nope"/);
  });

  it('refuses a schema that is not a teal envelope', () => {
    expect(() => tableSchemaFromAvro(buildTableSchemas(TABLE).keyJson)).toThrow(/not an envelope/);
    expect(() => tableSchemaFromAvro('{"type":"record","name":"X","fields":[]}')).toThrow(/TEAL|teal/);
  });
});

function retype(t: TableSchema, name: string, type: PgType): TableSchema {
  return { ...t, columns: t.columns.map((c) => (c.name === name ? { ...c, type } : c)) };
}

describe('column name sanitizing', () => {
  it.each([
    ['Order Id', 'Order_Id'],
    ['1st', '_1st'],
    ['', '_'],
    ['é', '_'],
    ['a-b.c', 'a_b_c'],
    ['_ok9', '_ok9'],
  ])('%j -> %j', (name, sanitized) => {
    expect(sanitizeAvroName(name)).toBe(sanitized);
    expect(sanitized).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
  });

  it('disambiguates collisions and lets valid names keep their spelling', () => {
    expect(sanitizeFieldNames(['a b', 'a_b', 'a-b', 'a_b_2'])).toEqual(['a_b_3', 'a_b', 'a_b_4', 'a_b_2']);
    expect(sanitizeFieldNames(['名前', '住所'])).toEqual(['__', '___2']);
  });
});
