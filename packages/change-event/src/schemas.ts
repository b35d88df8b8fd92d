import { TealError } from '@teal/errors';
import type avro from 'avsc';
import { avroTypeOf } from './avro-long.ts';
import { avroTypeForColumn, sanitizeAvroName, sanitizeFieldNames } from './avro-types.ts';
import type { ColumnInfo, PgType, TableSchema, TypeKind } from './event.ts';
import { crc64Avro, schemaFingerprint } from './fingerprint.ts';

// The key and value (envelope) schemas of one table version, as published to teal._schemas.
// Parsing Canonical Form keeps only names and types, so the pg.* attributes alone would not
// change a fingerprint: json -> jsonb or varchar(10) -> varchar(20) would reuse the old one
// and a consumer would rebuild the wrong TableSchema. The Row and Key record names therefore
// carry a hash of everything teal puts in attributes, and any change yields a new fingerprint.

export interface TableSchemas {
  readonly key: avro.Type;
  readonly value: avro.Type;
  /** Full JSON text with teal's pg.* attributes, what goes to teal._schemas. */
  readonly keyJson: string;
  readonly valueJson: string;
  readonly keyFingerprint: Buffer;
  readonly valueFingerprint: Buffer;
  /** Avro field name of each column, in column order. */
  readonly fieldNames: readonly string[];
}

export function avroNamespace(prefix: string, schema: string, table: string): string {
  return [...prefix.split('.'), schema, table].map(sanitizeAvroName).join('.');
}

export function buildTableSchemas(table: TableSchema, prefix = 'teal'): TableSchemas {
  const fieldNames = sanitizeFieldNames(table.columns.map((c) => c.name));
  const namespace = avroNamespace(prefix, table.schema, table.table);
  const version = shapeHash(table);
  const fieldOf = new Map(table.columns.map((c, i) => [c.name, columnField(c, fieldNames[i])]));
  for (const key of table.keyColumns) {
    if (!fieldOf.has(key)) {
      throw new TealError(
        'TEAL_SCHEMA_INVALID',
        `key column "${key}" of ${table.schema}.${table.table} is not among its columns`,
      );
    }
  }
  const tableAttrs = {
    'pg.schema': table.schema,
    'pg.table': table.table,
    'pg.keyColumns': [...table.keyColumns],
  };
  const keyJson = JSON.stringify({
    type: 'record',
    name: `Key_${version}`,
    namespace,
    'teal.role': 'key',
    ...tableAttrs,
    fields: table.keyColumns.map((k) => fieldOf.get(k)),
  });
  const rowName = `Row_${version}`;
  const valueJson = JSON.stringify({
    type: 'record',
    name: 'Envelope',
    namespace,
    'teal.role': 'envelope',
    ...tableAttrs,
    fields: [
      { name: 'op', type: 'string' },
      { name: 'lsn', type: 'long' },
      { name: 'seq', type: 'long' },
      { name: 'xid', type: 'long' },
      { name: 'commit_time_us', type: { type: 'long', logicalType: 'timestamp-micros' } },
      { name: 'schema', type: 'string' },
      { name: 'table', type: 'string' },
      {
        name: 'before',
        type: [
          'null',
          { type: 'record', name: rowName, fields: table.columns.map((c) => fieldOf.get(c.name)) },
        ],
        default: null,
      },
      { name: 'after', type: ['null', rowName], default: null },
      { name: 'unchanged', type: { type: 'array', items: 'string' }, default: [] },
    ],
  });
  return {
    key: avroTypeOf(JSON.parse(keyJson)),
    value: avroTypeOf(JSON.parse(valueJson)),
    keyJson,
    valueJson,
    keyFingerprint: schemaFingerprint(keyJson),
    valueFingerprint: schemaFingerprint(valueJson),
    fieldNames,
  };
}

function columnField(col: ColumnInfo, fieldName: string): Record<string, unknown> {
  const field: Record<string, unknown> = {
    name: fieldName,
    type: avroTypeForColumn(col),
    default: null,
    'pg.column': col.name,
    'pg.type': col.type.name,
    'pg.oid': col.type.oid,
    'pg.typmod': col.typmod,
    'pg.key': col.isKey,
    'pg.kind': col.type.kind,
  };
  if (col.type.elementOid !== undefined) field['pg.elementOid'] = col.type.elementOid;
  if (col.type.baseOid !== undefined) field['pg.baseOid'] = col.type.baseOid;
  return field;
}

function shapeHash(table: TableSchema): string {
  const shape = JSON.stringify([
    table.schema,
    table.table,
    table.keyColumns,
    table.columns.map((c) => [
      c.name,
      c.type.name,
      c.type.oid,
      c.type.kind,
      c.type.elementOid,
      c.type.baseOid,
      c.typmod,
      c.isKey,
    ]),
  ]);
  return crc64Avro(Buffer.from(shape, 'utf8')).toString(16).padStart(16, '0');
}

type Json = Record<string, unknown>;

function invalid(what: string): TealError {
  return new TealError(
    'TEAL_SCHEMA_INVALID',
    `writer schema is not a teal schema: ${what}; was it written by teal (schemas carry pg.* attributes)?`,
    { retriable: false },
  );
}

/** The columns a key or envelope schema describes, from its fields' pg.* attributes. */
export function columnsFromFields(fields: readonly Json[]): ColumnInfo[] {
  return fields.map((f) => {
    const name = f['pg.column'];
    const typeName = f['pg.type'];
    const oid = f['pg.oid'];
    const typmod = f['pg.typmod'];
    const kind = f['pg.kind'];
    if (typeof name !== 'string' || typeof typeName !== 'string' || typeof oid !== 'number') {
      throw invalid(`field ${JSON.stringify(f.name)} lacks pg.column/pg.type/pg.oid`);
    }
    const type: { -readonly [K in keyof PgType]: PgType[K] } = {
      oid,
      name: typeName,
      kind: (kind ?? 'base') as TypeKind,
    };
    if (typeof f['pg.elementOid'] === 'number') type.elementOid = f['pg.elementOid'];
    if (typeof f['pg.baseOid'] === 'number') type.baseOid = f['pg.baseOid'];
    return { name, type, typmod: typeof typmod === 'number' ? typmod : -1, isKey: f['pg.key'] === true };
  });
}

/** Rebuilds the TableSchema from a teal envelope (value) writer schema, attributes alone. */
export function tableSchemaFromAvro(valueJson: string | object): TableSchema {
  const json = (typeof valueJson === 'string' ? JSON.parse(valueJson) : valueJson) as Json;
  if (json['teal.role'] !== 'envelope') throw invalid('not an envelope record (teal.role != "envelope")');
  const before = (json.fields as Json[] | undefined)?.find((f) => f.name === 'before');
  const row = Array.isArray(before?.type) ? (before.type[1] as Json) : undefined;
  if (!row || !Array.isArray(row.fields)) throw invalid('no "before" Row record');
  const schema = json['pg.schema'];
  const table = json['pg.table'];
  const keyColumns = json['pg.keyColumns'];
  if (typeof schema !== 'string' || typeof table !== 'string' || !Array.isArray(keyColumns)) {
    throw invalid('missing pg.schema/pg.table/pg.keyColumns');
  }
  return {
    schema,
    table,
    columns: columnsFromFields(row.fields as Json[]),
    keyColumns: keyColumns.map(String),
  };
}
