import { TealError } from '@teal/errors';
import type avro from 'avsc';
import { avroTypeOf } from './avro-long.ts';
import { type AvroValue, avroTypeForColumn, columnMapping } from './avro-types.ts';
import type { ChangeEvent, ColumnInfo, Op, Row, TableSchema } from './event.ts';
import {
  encodeSingleObject,
  fingerprintHex,
  parsingCanonicalForm,
  readSingleObjectHeader,
  schemaFingerprint,
} from './fingerprint.ts';
import { buildTableSchemas, columnsFromFields, tableSchemaFromAvro } from './schemas.ts';

// The surface the producer and consumer use. Per table version everything that can be
// decided once is: field names, converter closures, avsc types, fingerprints. Per row there
// is one pass over the columns and one avsc write or read.

type AvroRecord = Record<string, AvroValue | null>;

interface FieldCodec {
  readonly column: string;
  readonly field: string;
  readonly typeName: string;
  readonly encode: (text: string) => AvroValue | undefined;
  readonly decode: (value: AvroValue) => string;
}

function fieldCodecs(columns: readonly ColumnInfo[], fieldNames: readonly string[]): FieldCodec[] {
  return columns.map((col, i) => {
    const mapping = columnMapping(col);
    return {
      column: col.name,
      field: fieldNames[i],
      typeName: col.type.name,
      encode: mapping.encode,
      decode: mapping.decode,
    };
  });
}

function unencodable(table: TableSchema, f: FieldCodec, text: string): TealError {
  const shown = text.length > 64 ? `${JSON.stringify(text.slice(0, 64))}...` : JSON.stringify(text);
  return new TealError(
    'TEAL_VALUE_UNENCODABLE',
    `${table.schema}.${table.table}.${f.column} (${f.typeName}): ${shown} is not valid ${f.typeName} text ` +
      '(values must be Postgres output under DateStyle=ISO, TimeZone=UTC, extra_float_digits=3, bytea_output=hex)',
    {
      retriable: false,
      details: { schema: table.schema, table: table.table, column: f.column, type: f.typeName },
    },
  );
}

function writeRow(
  table: TableSchema,
  fields: readonly FieldCodec[],
  row: Row,
  skip?: ReadonlySet<string>,
): AvroRecord {
  const out: AvroRecord = {};
  for (const f of fields) {
    const text = row[f.column];
    if (text == null || skip?.has(f.column)) {
      out[f.field] = null;
      continue;
    }
    const value = f.encode(text);
    if (value === undefined) throw unencodable(table, f, text);
    out[f.field] = value;
  }
  return out;
}

function readRow(fields: readonly FieldCodec[], record: AvroRecord, skip?: ReadonlySet<string>): Row {
  const row: Row = {};
  for (const f of fields) {
    if (skip?.has(f.column)) continue;
    const value = record[f.field];
    row[f.column] = value === null ? null : f.decode(value);
  }
  return row;
}

const OPS: ReadonlySet<string> = new Set<Op>(['c', 'u', 'd', 'r', 't']);

/** Producer side: encodes keys and events of one table version. */
export class TableCodec {
  readonly table: TableSchema;
  readonly keyFingerprintHex: string;
  readonly valueFingerprintHex: string;
  readonly keySchemaJson: string;
  readonly valueSchemaJson: string;
  private readonly keyType: avro.Type;
  private readonly valueType: avro.Type;
  private readonly keyFingerprint: Buffer;
  private readonly valueFingerprint: Buffer;
  private readonly fields: FieldCodec[];
  private readonly keyFields: FieldCodec[];

  constructor(table: TableSchema, prefix = 'teal') {
    const schemas = buildTableSchemas(table, prefix);
    this.table = table;
    this.keyType = schemas.key;
    this.valueType = schemas.value;
    this.keyFingerprint = schemas.keyFingerprint;
    this.valueFingerprint = schemas.valueFingerprint;
    this.keyFingerprintHex = fingerprintHex(schemas.keyFingerprint);
    this.valueFingerprintHex = fingerprintHex(schemas.valueFingerprint);
    this.keySchemaJson = schemas.keyJson;
    this.valueSchemaJson = schemas.valueJson;
    this.fields = fieldCodecs(table.columns, schemas.fieldNames);
    const byColumn = new Map(this.fields.map((f) => [f.column, f]));
    this.keyFields = table.keyColumns.map((k) => byColumn.get(k)!);
  }

  /** Single-object encoding of the key record (the replica identity columns). */
  encodeKey(key: Row): Buffer {
    return encodeSingleObject(this.keyType, this.keyFingerprint, writeRow(this.table, this.keyFields, key));
  }

  /**
   * Single-object encoding of the envelope. Columns listed in `unchanged` travel as null and
   * are named in `unchanged`; any other column missing from `after` is an error, never a NULL.
   * A delete without `before` carries its key there (non-key columns null) so the envelope
   * alone identifies the row.
   */
  encodeEvent(event: ChangeEvent): Buffer {
    const table = this.table;
    if (event.schema !== table.schema || event.table !== table.table) {
      throw new TealError(
        'TEAL_SCHEMA_MISMATCH',
        `event for ${event.schema}.${event.table} given to the codec of ${table.schema}.${table.table}`,
      );
    }
    const unchanged = event.unchanged.length === 0 ? undefined : new Set(event.unchanged);
    if (event.after) {
      for (const f of this.fields) {
        if (event.after[f.column] === undefined && !unchanged?.has(f.column)) {
          throw new TealError(
            'TEAL_VALUE_UNENCODABLE',
            `${table.schema}.${table.table}.${f.column} is missing from the new row of a '${event.op}' event ` +
              'and not listed as unchanged: teal never writes a missing value as NULL',
            { details: { schema: table.schema, table: table.table, column: f.column } },
          );
        }
      }
    }
    const before = event.before ?? (event.op === 'd' ? event.key : null);
    const envelope = {
      op: event.op,
      lsn: event.position.lsn,
      seq: BigInt(event.position.seq),
      xid: BigInt(event.xid),
      commit_time_us: event.commitTimeUs,
      schema: event.schema,
      table: event.table,
      before: before ? writeRow(table, this.fields, before) : null,
      after: event.after ? writeRow(table, this.fields, event.after, unchanged) : null,
      unchanged: event.unchanged,
    };
    return encodeSingleObject(this.valueType, this.valueFingerprint, envelope);
  }
}

/** Fingerprint, as teal writes it in `teal._schemas` keys, of a schema JSON text. */
export function fingerprintHexOfSchema(schemaJson: string): string {
  return fingerprintHex(schemaFingerprint(schemaJson));
}

interface ValueDecoder {
  readonly kind: 'envelope';
  readonly type: avro.Type;
  readonly table: TableSchema;
  readonly fields: FieldCodec[];
  readonly keyFields: FieldCodec[];
}

interface KeyDecoder {
  readonly kind: 'key';
  readonly type: avro.Type;
  readonly fields: FieldCodec[];
}

function undecodable(message: string, cause?: unknown): TealError {
  return new TealError('TEAL_AVRO_UNDECODABLE', message, { retriable: false, cause });
}

type Json = Record<string, unknown>;

// A writer schema's field types must be exactly what teal maps its pg type to today, or the
// converters would misread it; a mismatch is a loud error naming the field.
function checkedFieldCodecs(fields: readonly Json[], where: string): FieldCodec[] {
  const columns = columnsFromFields(fields);
  columns.forEach((col, i) => {
    const written = parsingCanonicalForm(fields[i].type);
    const expected = parsingCanonicalForm(avroTypeForColumn(col));
    if (written !== expected) {
      throw undecodable(
        `${where}: field ${String(fields[i].name)} (${col.type.name}) is ${written}, teal maps it to ${expected}; ` +
          'decode it with the teal version that wrote it',
      );
    }
  });
  return fieldCodecs(
    columns,
    fields.map((f) => String(f.name)),
  );
}

/** Consumer side: writer schemas by fingerprint, fed from teal._schemas, compiled on first use. */
export class SchemaCache {
  private readonly json = new Map<string, string>();
  private readonly compiled = new Map<string, ValueDecoder | KeyDecoder>();
  private readonly lastFingerprint = Buffer.alloc(8);
  private lastHex = '';

  /** Adds a writer schema; throws when the JSON does not hash to the fingerprint it came with. */
  add(fingerprintHex: string, schemaJson: string): void {
    const actual = fingerprintHexOfSchema(schemaJson);
    if (actual !== fingerprintHex.toLowerCase()) {
      throw new TealError(
        'TEAL_SCHEMA_FINGERPRINT_MISMATCH',
        `schema published under fingerprint ${fingerprintHex} hashes to ${actual}: the teal._schemas entry is corrupt`,
        { retriable: false },
      );
    }
    this.json.set(actual, schemaJson);
  }

  /**
   * The hex fingerprint of a single-object message (header checked by the caller). Records
   * come in runs of one table version: the previous record's string is reused when the 8
   * bytes match, instead of a hex string per record.
   */
  fingerprintHexOf(message: Buffer): string {
    const last = this.lastFingerprint;
    let same = this.lastHex !== '';
    for (let i = 0; same && i < 8; i++) same = message[2 + i] === last[i];
    if (same) return this.lastHex;
    message.copy(last, 0, 2, 10);
    this.lastHex = fingerprintHex(last);
    return this.lastHex;
  }

  has(fingerprintHex: string): boolean {
    return this.json.has(fingerprintHex.toLowerCase());
  }

  /** The schema JSON of a fingerprint, if known. */
  get(fingerprintHex: string): string | undefined {
    return this.json.get(fingerprintHex.toLowerCase());
  }

  /** @internal */
  decoder(fingerprintHex: string): ValueDecoder | KeyDecoder {
    const done = this.compiled.get(fingerprintHex);
    if (done) return done;
    const text = this.json.get(fingerprintHex);
    if (text === undefined) {
      throw new TealError(
        'TEAL_SCHEMA_UNKNOWN',
        `no writer schema with fingerprint ${fingerprintHex} is loaded yet (it is published to the _schemas topic before its first record)`,
        { retriable: true },
      );
    }
    const decoder = compile(fingerprintHex, text);
    this.compiled.set(fingerprintHex, decoder);
    return decoder;
  }
}

function compile(fingerprintHex: string, text: string): ValueDecoder | KeyDecoder {
  let json: Json;
  try {
    json = JSON.parse(text) as Json;
  } catch (err) {
    throw undecodable(`writer schema ${fingerprintHex} is not JSON`, err);
  }
  const where = `writer schema ${fingerprintHex}`;
  let type: avro.Type;
  try {
    type = avroTypeOf(json);
  } catch (err) {
    throw undecodable(`${where} is not a valid Avro schema: ${(err as Error).message}`, err);
  }
  if (json['teal.role'] === 'key') {
    return { kind: 'key', type, fields: checkedFieldCodecs(json.fields as Json[], where) };
  }
  const table = tableSchemaFromAvro(json);
  const before = (json.fields as Json[]).find((f) => f.name === 'before')!;
  const fields = checkedFieldCodecs((before.type as Json[])[1].fields as Json[], where);
  const byColumn = new Map(fields.map((f) => [f.column, f]));
  return { kind: 'envelope', type, table, fields, keyFields: table.keyColumns.map((k) => byColumn.get(k)!) };
}

function readBody(type: avro.Type, body: Buffer, fingerprintHex: string): Record<string, unknown> {
  try {
    return type.fromBuffer(body) as Record<string, unknown>;
  } catch (err) {
    throw undecodable(
      `record body does not decode with writer schema ${fingerprintHex}: ${(err as Error).message}`,
      err,
    );
  }
}

export function decodeEvent(
  buf: Buffer,
  cache: SchemaCache,
): { event: ChangeEvent; table: TableSchema; fingerprintHex: string } {
  const { body } = readSingleObjectHeader(buf);
  const hex = cache.fingerprintHexOf(buf);
  const decoder = cache.decoder(hex);
  if (decoder.kind !== 'envelope')
    throw undecodable(`fingerprint ${hex} names a key schema, not an event envelope`);
  const rec = readBody(decoder.type, body, hex);
  const op = rec.op as string;
  if (!OPS.has(op)) throw undecodable(`event op ${JSON.stringify(op)} is not one of c, u, d, r, t`);
  const unchangedList = rec.unchanged as string[];
  const unchanged = unchangedList.length === 0 ? undefined : new Set(unchangedList);
  const after = rec.after ? readRow(decoder.fields, rec.after as AvroRecord, unchanged) : null;
  const before = rec.before ? readRow(decoder.fields, rec.before as AvroRecord) : null;
  const key: Row = {};
  if (op !== 't') {
    for (const f of decoder.keyFields) {
      const source = after && f.column in after ? after : before;
      if (source && f.column in source) key[f.column] = source[f.column];
    }
  }
  const event: ChangeEvent = {
    op: op as Op,
    schema: rec.schema as string,
    table: rec.table as string,
    position: { lsn: rec.lsn as bigint, seq: Number(rec.seq as bigint) },
    xid: Number(rec.xid as bigint),
    commitTimeUs: rec.commit_time_us as bigint,
    key,
    after,
    before,
    unchanged: unchangedList,
  };
  return { event, table: decoder.table, fingerprintHex: hex };
}

export function decodeKey(buf: Buffer, cache: SchemaCache): { key: Row; fingerprintHex: string } {
  const { fingerprint, body } = readSingleObjectHeader(buf);
  const hex = fingerprintHex(fingerprint);
  const decoder = cache.decoder(hex);
  if (decoder.kind !== 'key')
    throw undecodable(`fingerprint ${hex} names an event envelope, not a key schema`);
  return {
    key: readRow(decoder.fields, readBody(decoder.type, body, hex) as AvroRecord),
    fingerprintHex: hex,
  };
}
