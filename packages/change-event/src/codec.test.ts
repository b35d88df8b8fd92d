import { TealError } from '@teal/errors';
import { describe, expect, it } from 'vitest';
import { decodeEvent, decodeKey, fingerprintHexOfSchema, SchemaCache, TableCodec } from './codec.ts';
import type { ChangeEvent, PgType, Row, TableSchema, TypeKind } from './event.ts';
import { parseFloat4, parseFloat8 } from './pg-text.ts';

const t = (oid: number, name: string, kind: TypeKind = 'base', more: Partial<PgType> = {}): PgType => ({
  oid,
  name,
  kind,
  ...more,
});

// Brief item 4: every built-in type, with its edge values, as Postgres prints them under
// teal's session settings. [type, values]
const CASES: [PgType, string[]][] = [
  [t(16, 'bool'), ['t', 'f']],
  [t(21, 'int2'), ['-32768', '32767', '0']],
  [t(23, 'int4'), ['-2147483648', '2147483647']],
  [
    t(20, 'int8'),
    [
      '9223372036854775807',
      '-9223372036854775807',
      '-9223372036854775808',
      '9007199254740991',
      '9007199254740992',
      '9007199254740993',
      '-9007199254740993',
    ],
  ],
  [t(26, 'oid'), ['0', '4294967295']],
  [
    t(1700, 'numeric'),
    [
      'NaN',
      'Infinity',
      '-Infinity',
      '0',
      '-1.50',
      '123456789012345678901234567890.123456789012345678901234567890',
      '0.' + '0'.repeat(999) + '1',
    ],
  ],
  [t(25, 'text'), ['', 'héllo wörld ✓ 🐘', 'line\nbreak\ttab "quote" \\backslash', "it's"]],
  [t(1043, 'varchar'), ['abc']],
  [t(1042, 'bpchar'), ['ab  ']],
  [t(19, 'name'), ['pg_class']],
  [t(17, 'bytea'), ['\\x', '\\x' + Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex')]],
  [t(2950, 'uuid'), ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11']],
  [
    t(1082, 'date'),
    ['2024-02-29', '0044-03-15 BC', '4714-11-24 BC', '5874897-12-31', 'infinity', '-infinity'],
  ],
  [
    t(1114, 'timestamp'),
    ['2024-01-02 03:04:05.123456', '0044-03-15 12:00:00 BC', '12345-01-01 00:00:00', 'infinity', '-infinity'],
  ],
  [
    t(1184, 'timestamptz'),
    [
      '2024-01-02 03:04:05.123456+00',
      '2024-01-02 03:04:05.000001+00',
      '2024-01-02 03:04:05.5+00',
      '1969-12-31 23:59:59.999999+00',
      '0044-03-15 12:00:00+00 BC',
      '4714-11-24 00:00:00+00 BC',
      '12345-01-01 00:00:00+00',
      '294276-12-31 23:59:59.999999+00',
      'infinity',
      '-infinity',
    ],
  ],
  [t(3802, 'jsonb'), ['{"n": 123456789012345678901234567890.123}', '{"a": [1, null, "x"]}']],
  [t(114, 'json'), ['{"n":  1.0000000000000000000001 }']],
  [t(1007, 'int4[]', 'array', { elementOid: 23 }), ['{{1,NULL},{3,4}}', '{}', '[0:1]={1,2}']],
  [t(1009, 'text[]', 'array', { elementOid: 25 }), ['{"a b",NULL,"c\\"d",""}']],
  [t(16390, 'public.mood', 'enum'), ['happy']],
  [t(16400, 'public.posint', 'domain', { baseOid: 23 }), ['42']],
  [t(16410, 'public.pair', 'composite'), ['(1,"a b")', '(,)']],
  [t(3904, 'int4range', 'range'), ['[1,5)', 'empty', '(,)']],
  [t(4451, 'int4multirange', 'multirange'), ['{[1,5),[7,9)}']],
  [t(1186, 'interval'), ['1 year 2 mons 3 days 04:05:06.789', '-00:00:01', '00:00:00']],
  [t(790, 'money'), ['$1,234.56', '-$0.01']],
  [t(869, 'inet'), ['192.168.0.1/24', '::1', '10.0.0.1']],
  [t(650, 'cidr'), ['10.0.0.0/8']],
  [t(829, 'macaddr'), ['08:00:2b:01:02:03']],
  [t(1562, 'varbit'), ['10110', '']],
  [t(1560, 'bit'), ['101']],
  [t(142, 'xml'), ['<a b="c">d &amp; e</a>']],
  [t(3614, 'tsvector'), ["'a':1 'fat':2,4 'cat':3"]],
  [t(3615, 'tsquery'), ["'fat' & 'rat'"]],
  [t(1083, 'time'), ['24:00:00', '12:34:56.789']],
  [t(1266, 'timetz'), ['12:00:00+05:30']],
  [t(600, 'point'), ['(1,2)']],
  [t(999999, 'mystery')],
].map(([type, values]) => [type as PgType, (values as string[] | undefined) ?? ['anything']]);

function tableOf(type: PgType): TableSchema {
  return {
    schema: 'public',
    table: `t_${type.name.replace(/\W/g, '_')}`,
    columns: [
      { name: 'id', type: t(20, 'int8'), typmod: -1, isKey: true },
      { name: 'v', type, typmod: -1, isKey: false },
    ],
    keyColumns: ['id'],
  };
}

function event(table: TableSchema, after: Row | null, extra: Partial<ChangeEvent> = {}): ChangeEvent {
  return {
    op: 'c',
    schema: table.schema,
    table: table.table,
    position: { lsn: 0x16b374d848n, seq: 12 },
    xid: 4294967295,
    commitTimeUs: 1704164645123456n,
    key: after ? { id: after.id } : {},
    after,
    before: null,
    unchanged: [],
    ...extra,
  };
}

function roundTrip(codec: TableCodec, e: ChangeEvent) {
  const cache = new SchemaCache();
  cache.add(codec.valueFingerprintHex, codec.valueSchemaJson);
  return decodeEvent(codec.encodeEvent(e), cache);
}

describe('every type round-trips through Avro to the text Postgres reads as the same value', () => {
  for (const [type, values] of CASES) {
    it.each(values.map((v) => [v]))(`${type.name} %j`, (text) => {
      const table = tableOf(type);
      const codec = new TableCodec(table);
      const { event: back } = roundTrip(codec, event(table, { id: '1', v: text }));
      expect(back.after).toEqual({ id: '1', v: text });
    });

    it(`${type.name} NULL`, () => {
      const table = tableOf(type);
      const { event: back } = roundTrip(new TableCodec(table), event(table, { id: '1', v: null }));
      expect(back.after).toEqual({ id: '1', v: null });
    });
  }

  // Floats come back as the shortest text for the same binary value, which Postgres reads to
  // the identical float; the spelling may differ (1e-07 -> 1e-7).
  it.each([
    ['NaN', 'NaN'],
    ['-0', '-0'],
    ['Infinity', 'Infinity'],
    ['-Infinity', '-Infinity'],
    ['1e-07', '1e-7'],
    ['5e-324', '5e-324'],
    ['1.7976931348623157e+308', '1.7976931348623157e+308'],
    ['0.1', '0.1'],
    ['-2.2250738585072014e-308', '-2.2250738585072014e-308'],
  ])('float8 %s -> %s', (text, expected) => {
    const table = tableOf(t(701, 'float8'));
    const { event: back } = roundTrip(new TableCodec(table), event(table, { id: '1', v: text }));
    expect(back.after!.v).toBe(expected);
    expect(Object.is(parseFloat8(back.after!.v!), parseFloat8(text))).toBe(true);
  });

  it.each([
    'NaN',
    '-0',
    'Infinity',
    '-Infinity',
    '1.1',
    '3.4028235e+38',
    '1e-45',
    '1.1754944e-38',
    '-1.2345679e-10',
  ])('float4 %s keeps its float32 value', (text) => {
    const table = tableOf(t(700, 'float4'));
    const { event: back } = roundTrip(new TableCodec(table), event(table, { id: '1', v: text }));
    expect(Object.is(parseFloat4(back.after!.v!), parseFloat4(text))).toBe(true);
  });
});

const WIDE: TableSchema = {
  schema: 'public',
  table: 'Wide Table',
  columns: [
    { name: 'tenant', type: t(23, 'int4'), typmod: -1, isKey: true },
    { name: 'Order Id', type: t(20, 'int8'), typmod: -1, isKey: true },
    { name: 'body', type: t(25, 'text'), typmod: -1, isKey: false },
    { name: 'at', type: t(1184, 'timestamptz'), typmod: -1, isKey: false },
    { name: 'n', type: t(1700, 'numeric'), typmod: -1, isKey: false },
  ],
  keyColumns: ['Order Id', 'tenant'],
};

function wideCache(codec: TableCodec): SchemaCache {
  const cache = new SchemaCache();
  cache.add(codec.valueFingerprintHex, codec.valueSchemaJson);
  cache.add(codec.keyFingerprintHex, codec.keySchemaJson);
  return cache;
}

function thrown(fn: () => unknown): TealError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TealError);
    return err as TealError;
  }
  throw new Error('expected a TealError');
}

describe('TableCodec and decodeEvent', () => {
  const codec = new TableCodec(WIDE);
  const row = { tenant: '7', 'Order Id': '9007199254740993', body: 'x', at: 'infinity', n: 'NaN' };

  it('decodes records of several table versions interleaved in one cache (fingerprint reuse)', () => {
    const other = new TableCodec(tableOf(t(25, 'text')));
    const cache = wideCache(codec);
    cache.add(other.valueFingerprintHex, other.valueSchemaJson);
    const wide = event(WIDE, row, { key: { 'Order Id': row['Order Id'], tenant: '7' } });
    const narrow = event(other.table, { id: '1', v: 'text' });
    for (const e of [wide, wide, narrow, wide, narrow, narrow]) {
      const codecOf = e === wide ? codec : other;
      const back = decodeEvent(codecOf.encodeEvent(e), cache);
      expect(back.event).toEqual(e);
      expect(back.fingerprintHex).toBe(codecOf.valueFingerprintHex);
    }
  });

  it('round-trips the whole event: position, xid, commit time, rows, original column names', () => {
    const e = event(WIDE, row, {
      op: 'u',
      before: { ...row, body: 'old' },
      key: { 'Order Id': row['Order Id'], tenant: '7' },
    });
    const { event: back, table, fingerprintHex } = decodeEvent(codec.encodeEvent(e), wideCache(codec));
    expect(back).toEqual(e);
    expect(table).toEqual(WIDE);
    expect(fingerprintHex).toBe(codec.valueFingerprintHex);
    expect(fingerprintHexOfSchema(codec.valueSchemaJson)).toBe(codec.valueFingerprintHex);
  });

  it('keeps int8 2^53+1 and uint32 xids exact in the envelope', () => {
    const e = event(WIDE, row, {
      position: { lsn: 0xffffffffffffffffn >> 1n, seq: 2 ** 31 },
      commitTimeUs: -1n,
    });
    const { event: back } = decodeEvent(codec.encodeEvent(e), wideCache(codec));
    expect(back.after!['Order Id']).toBe('9007199254740993');
    expect(back.xid).toBe(4294967295);
    expect(back.position).toEqual(e.position);
    expect(back.commitTimeUs).toBe(-1n);
  });

  it('writes the architecture header: C3 01 + the value fingerprint', () => {
    const buf = codec.encodeEvent(event(WIDE, row));
    expect(buf.subarray(0, 2).toString('hex')).toBe('c301');
    expect(buf.subarray(2, 10).toString('hex')).toBe(codec.valueFingerprintHex);
  });

  it('leaves unchanged TOAST columns out of the decoded row instead of writing NULL', () => {
    const after = { tenant: '7', 'Order Id': '1', at: '2024-01-02 03:04:05+00', n: '1' };
    const e = event(WIDE, after, { op: 'u', unchanged: ['body'], key: { 'Order Id': '1', tenant: '7' } });
    const { event: back } = decodeEvent(codec.encodeEvent(e), wideCache(codec));
    expect(back.after).toEqual(after);
    expect('body' in back.after!).toBe(false);
    expect(back.unchanged).toEqual(['body']);
  });

  it('refuses a new row with a column neither present nor unchanged', () => {
    const err = thrown(() =>
      codec.encodeEvent(event(WIDE, { tenant: '7', 'Order Id': '1', at: null, n: null })),
    );
    expect(err.code).toBe('TEAL_VALUE_UNENCODABLE');
    expect(err.message).toContain('body');
  });

  it('carries the key of a delete in before when blue sent no old row', () => {
    const key = { 'Order Id': '5', tenant: '7' };
    const { event: back } = decodeEvent(
      codec.encodeEvent(event(WIDE, null, { op: 'd', key })),
      wideCache(codec),
    );
    expect(back.op).toBe('d');
    expect(back.key).toEqual(key);
    expect(back.after).toBeNull();
    expect(back.before).toEqual({ ...key, body: null, at: null, n: null });
  });

  it('encodes a truncate with no rows and an empty key', () => {
    const { event: back } = decodeEvent(codec.encodeEvent(event(WIDE, null, { op: 't' })), wideCache(codec));
    expect(back.op).toBe('t');
    expect(back.key).toEqual({});
    expect(back.before).toBeNull();
  });

  it('encodes and decodes keys in key order with original names', () => {
    const key = { 'Order Id': '-9223372036854775808', tenant: '-1' };
    const buf = codec.encodeKey(key);
    expect(buf.subarray(2, 10).toString('hex')).toBe(codec.keyFingerprintHex);
    expect(decodeKey(buf, wideCache(codec))).toEqual({ key, fingerprintHex: codec.keyFingerprintHex });
    // the same key always encodes to the same bytes: one key, one partition
    expect(codec.encodeKey({ tenant: '-1', 'Order Id': '-9223372036854775808' })).toEqual(buf);
  });

  it('names table, column and type of a value it cannot represent', () => {
    const err = thrown(() => codec.encodeEvent(event(WIDE, { ...row, tenant: 'abc' })));
    expect(err.code).toBe('TEAL_VALUE_UNENCODABLE');
    expect(err.retriable).toBe(false);
    expect(err.message).toContain('public.Wide Table.tenant (int4)');
    expect(err.details).toMatchObject({ table: 'Wide Table', column: 'tenant', type: 'int4' });
  });

  it('refuses an event of another table', () => {
    expect(thrown(() => codec.encodeEvent({ ...event(WIDE, row), table: 'other' })).code).toBe(
      'TEAL_SCHEMA_MISMATCH',
    );
  });

  it('answers an unknown fingerprint with a retriable TEAL_SCHEMA_UNKNOWN', () => {
    const err = thrown(() => decodeEvent(codec.encodeEvent(event(WIDE, row)), new SchemaCache()));
    expect(err.code).toBe('TEAL_SCHEMA_UNKNOWN');
    expect(err.retriable).toBe(true);
  });

  it.each([
    ['truncated', (b: Buffer) => b.subarray(0, b.length - 3)],
    ['trailing bytes', (b: Buffer) => Buffer.concat([b, Buffer.from([0])])],
    // op "c", lsn/seq/xid/commit_time_us 0, schema "", table "", then union branch 5 of 2
    [
      'bad union branch',
      (b: Buffer) => Buffer.concat([b.subarray(0, 10), Buffer.from('0263000000000000000a', 'hex')]),
    ],
    [
      'bad op',
      (b: Buffer) => Buffer.concat([b.subarray(0, 10), Buffer.from('02780000000000000000000000', 'hex')]),
    ],
  ])('answers a %s body with a final TEAL_AVRO_UNDECODABLE', (_what, corrupt) => {
    const err = thrown(() => decodeEvent(corrupt(codec.encodeEvent(event(WIDE, row))), wideCache(codec)));
    expect(err.code).toBe('TEAL_AVRO_UNDECODABLE');
    expect(err.retriable).toBe(false);
  });

  it('does not decode a key as an event or an event as a key', () => {
    expect(
      thrown(() => decodeEvent(codec.encodeKey({ 'Order Id': '1', tenant: '1' }), wideCache(codec))).code,
    ).toBe('TEAL_AVRO_UNDECODABLE');
    expect(thrown(() => decodeKey(codec.encodeEvent(event(WIDE, row)), wideCache(codec))).code).toBe(
      'TEAL_AVRO_UNDECODABLE',
    );
  });

  it('refuses a schema published under a fingerprint it does not hash to', () => {
    const cache = new SchemaCache();
    expect(thrown(() => cache.add('0000000000000000', codec.valueSchemaJson)).code).toBe(
      'TEAL_SCHEMA_FINGERPRINT_MISMATCH',
    );
    expect(cache.has(codec.valueFingerprintHex)).toBe(false);
  });

  it('decodes with the writer schema alone, by a cache that never saw the TableCodec', () => {
    const json = new TableCodec(WIDE, 'other').valueSchemaJson;
    const writer = new TableCodec(WIDE, 'other');
    const cache = new SchemaCache();
    cache.add(fingerprintHexOfSchema(json), json);
    const { table } = decodeEvent(writer.encodeEvent(event(WIDE, row)), cache);
    expect(table).toEqual(WIDE);
  });
});
