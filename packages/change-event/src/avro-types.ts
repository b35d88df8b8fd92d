import type { ColumnInfo } from './event.ts';
import {
  formatBool,
  formatByteaHex,
  formatDate,
  formatFloat4,
  formatFloat8,
  formatTimestamp,
  isUuidText,
  parseBool,
  parseByteaHex,
  parseDate,
  parseFloat4,
  parseFloat8,
  parseInt32,
  parseInt64,
  parseTimestamp,
} from './pg-text.ts';

// The Postgres -> Avro type table (README.md repeats it with reasons). A type gets a natural
// Avro type only where every value of it survives the trip; everything else travels as the
// exact text Postgres printed, marked "pg.fallback": "text".

/** Avro value of one column (null handled by the caller): number, bigint, boolean, string or Buffer. */
export type AvroValue = number | bigint | boolean | string | Buffer;

export interface ColumnMapping {
  /** The Avro type of the value, without the null branch. */
  readonly avro: unknown;
  /** PG text -> Avro value; undefined when the text cannot be represented. */
  readonly encode: (text: string) => AvroValue | undefined;
  /** Avro value -> PG text. */
  readonly decode: (value: AvroValue) => string;
}

const identity = (text: string): string => text;
const asString = (value: AvroValue): string => value as string;

const INT: ColumnMapping = { avro: 'int', encode: parseInt32, decode: (v) => String(v) };
const LONG: ColumnMapping = { avro: 'long', encode: parseInt64, decode: (v) => String(v) };
const OID: ColumnMapping = {
  avro: 'long',
  encode: (text) => {
    const n = parseInt64(text);
    return n !== undefined && n >= 0n && n <= 0xffffffffn ? n : undefined;
  },
  decode: (v) => String(v),
};
const BOOLEAN: ColumnMapping = {
  avro: 'boolean',
  encode: parseBool,
  decode: (v) => formatBool(v as boolean),
};
const FLOAT: ColumnMapping = { avro: 'float', encode: parseFloat4, decode: (v) => formatFloat4(v as number) };
const DOUBLE: ColumnMapping = {
  avro: 'double',
  encode: parseFloat8,
  decode: (v) => formatFloat8(v as number),
};
const STRING: ColumnMapping = { avro: 'string', encode: identity, decode: asString };
const BYTES: ColumnMapping = {
  avro: 'bytes',
  encode: parseByteaHex,
  decode: (v) => formatByteaHex(v as Buffer),
};
const UUID: ColumnMapping = {
  avro: { type: 'string', logicalType: 'uuid' },
  encode: (text) => (isUuidText(text) ? text : undefined),
  decode: asString,
};
const DATE: ColumnMapping = {
  avro: { type: 'int', logicalType: 'date', 'pg.infinity': 'int32 max/min' },
  encode: parseDate,
  decode: (v) => formatDate(v as number),
};

// timestamp-micros since 1970 overflows int64 after 294247-01-10 while Postgres goes on to
// 294276-12-31: those few values take the union's string branch, as Postgres text.
function timestampMapping(withZone: boolean): ColumnMapping {
  return {
    avro: {
      type: 'long',
      logicalType: withZone ? 'timestamp-micros' : 'local-timestamp-micros',
      'pg.infinity': 'int64 max/min',
      'pg.overflow': 'string branch: Postgres text of values past int64 microseconds',
    },
    encode: (text) => {
      const micros = parseTimestamp(text, withZone);
      return micros === null ? text : micros;
    },
    decode: (v) => (typeof v === 'string' ? v : formatTimestamp(v as bigint, withZone)),
  };
}
const TIMESTAMP = timestampMapping(false);
const TIMESTAMPTZ = timestampMapping(true);

const BY_OID: ReadonlyMap<number, ColumnMapping> = new Map([
  [16, BOOLEAN],
  [17, BYTES],
  [19, STRING], // name
  [20, LONG], // int8
  [21, INT], // int2
  [23, INT], // int4
  [25, STRING], // text
  [26, OID],
  [700, FLOAT],
  [701, DOUBLE],
  [1042, STRING], // bpchar: the padding is part of the text and kept
  [1043, STRING], // varchar
  [1082, DATE],
  [1114, TIMESTAMP],
  [1184, TIMESTAMPTZ],
  [2950, UUID],
]);

/** How one column travels. Domains, arrays, enums, ranges and composites are text by design. */
export function columnMapping(col: ColumnInfo): ColumnMapping {
  const natural = col.type.kind === 'base' ? BY_OID.get(col.type.oid) : undefined;
  return (
    natural ?? {
      avro: { type: 'string', 'pg.fallback': 'text', 'pg.type': col.type.name },
      encode: identity,
      decode: asString,
    }
  );
}

/** The Avro type of a column's field: always nullable, since any column may be NULL in an old image. */
export function avroTypeForColumn(col: ColumnInfo): unknown[] {
  const mapping = columnMapping(col);
  const isTimestamp = mapping === TIMESTAMP || mapping === TIMESTAMPTZ;
  return isTimestamp ? ['null', mapping.avro, 'string'] : ['null', mapping.avro];
}

// Avro names are [A-Za-z_][A-Za-z0-9_]*. Postgres names are not; the original stays in
// "pg.column" (or "pg.schema"/"pg.table") and the Avro name only has to be valid and unique.
export function sanitizeAvroName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9_]/g, '_');
  return cleaned === '' || /^[0-9]/.test(cleaned) ? `_${cleaned}` : cleaned;
}

/** Sanitized, pairwise distinct Avro field names for the given column names, in order. */
export function sanitizeFieldNames(names: readonly string[]): string[] {
  const taken = new Set<string>();
  // Names already valid keep their spelling even when a sanitized one came first.
  for (const name of names) if (sanitizeAvroName(name) === name) taken.add(name);
  return names.map((name) => {
    const base = sanitizeAvroName(name);
    if (base === name) return name;
    let candidate = base;
    for (let n = 2; taken.has(candidate); n++) candidate = `${base}_${n}`;
    taken.add(candidate);
    return candidate;
  });
}
