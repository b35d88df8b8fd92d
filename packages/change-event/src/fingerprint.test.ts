import { TealError } from '@teal/errors';
import { describe, expect, it } from 'vitest';
// Independent zigzag varint writer (Avro spec, "long"): the fuzzer's, to check avsc's byte hooks.
import { zigzagVarint } from '../../../fuzz/mutate.ts';
import { avroTypeOf, BigIntLongType } from './avro-long.ts';
import {
  crc64Avro,
  encodeSingleObject,
  parsingCanonicalForm,
  readSingleObjectHeader,
  schemaFingerprint,
} from './fingerprint.ts';

// Test vectors from the Avro project, share/test/data/schema-tests.txt (fingerprints there are
// signed 64-bit decimals).
const VECTORS: [input: string, canonical: string, fingerprint: bigint][] = [
  ['"null"', '"null"', 7195948357588979594n],
  ['{"type":"null"}', '"null"', 7195948357588979594n],
  ['"boolean"', '"boolean"', -6970731678124411036n],
  ['"int"', '"int"', 8247732601305521295n],
  ['{"type":"long"}', '"long"', -3434872931120570953n],
  ['"string"', '"string"', -8142146995180207161n],
  ['["int","boolean"]', '["int","boolean"]', 5392556393470105090n],
  [
    '{"type":"fixed","name":"foo","size":15}',
    '{"name":"foo","type":"fixed","size":15}',
    1756455273707447556n,
  ],
  [
    '{"type":"record","name":"foo","fields":[{"name":"f1","type":"boolean"}]}',
    '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}',
    7843277075252814651n,
  ],
  [
    '{"type":"record","name":"foo","fields":[]}',
    '{"name":"foo","type":"record","fields":[]}',
    -4824392279771201922n,
  ],
  [
    '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
    '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
    -1759257747318642341n,
  ],
];

describe('Parsing Canonical Form and CRC-64-AVRO', () => {
  it.each(VECTORS)('%s', (input, canonical, fingerprint) => {
    expect(parsingCanonicalForm(input)).toBe(canonical);
    expect(BigInt.asIntN(64, crc64Avro(Buffer.from(canonical)))).toBe(fingerprint);
    expect(schemaFingerprint(input).readBigInt64LE(0)).toBe(fingerprint);
  });

  it('starts from the EMPTY constant', () => {
    expect(crc64Avro(Buffer.alloc(0))).toBe(0xc15d213aa4d7a795n);
  });

  it('strips attributes, orders keys, qualifies names and writes a named type once', () => {
    const schema = {
      doc: 'x',
      fields: [
        {
          name: 'a',
          type: ['null', { type: 'long', logicalType: 'timestamp-micros' }],
          default: null,
          'pg.oid': 20,
        },
        {
          type: {
            type: 'record',
            name: 'Row',
            fields: [{ name: 'x', type: { type: 'string', 'pg.fallback': 'text' } }],
          },
          name: 'b',
        },
        { name: 'c', type: ['null', 'Row'] },
        { name: 'd', type: { type: 'enum', name: 'other.E', symbols: ['A', 'B'] } },
        { name: 'e', type: { type: 'map', values: { type: 'array', items: 'E' } } },
      ],
      namespace: 'teal.public',
      name: 'Envelope',
      type: 'record',
    };
    expect(parsingCanonicalForm(schema)).toBe(
      '{"name":"teal.public.Envelope","type":"record","fields":[' +
        '{"name":"a","type":["null","long"]},' +
        '{"name":"b","type":{"name":"teal.public.Row","type":"record","fields":[{"name":"x","type":"string"}]}},' +
        '{"name":"c","type":["null","teal.public.Row"]},' +
        '{"name":"d","type":{"name":"other.E","type":"enum","symbols":["A","B"]}},' +
        '{"name":"e","type":{"type":"map","values":{"type":"array","items":"teal.public.E"}}}]}',
    );
  });
});

describe('single-object encoding', () => {
  it('writes C3 01, the fingerprint little-endian, then the body', () => {
    const type = avroTypeOf('string');
    const buf = encodeSingleObject(type, schemaFingerprint('"string"'), 'a');
    // "string" fingerprints to -8142146995180207161 = 0x8f014872634503c7; body = zigzag len 1, 'a'.
    expect(buf.toString('hex')).toBe('c301' + 'c7034563724801' + '8f' + '0261');
    const { fingerprint, body } = readSingleObjectHeader(buf);
    expect(fingerprint.toString('hex')).toBe('c7034563724801' + '8f');
    expect(type.fromBuffer(body)).toBe('a');
  });

  it.each([
    ['empty', Buffer.alloc(0)],
    ['short', Buffer.from('c3010102', 'hex')],
    ['wrong marker', Buffer.from('c30201020304050607080261', 'hex')],
    ['confluent framing', Buffer.from('000000000102', 'hex')],
  ])('rejects a %s buffer with TEAL_AVRO_BAD_HEADER', (_what, buf) => {
    let caught: unknown;
    try {
      readSingleObjectHeader(buf);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(TealError);
    expect((caught as TealError).code).toBe('TEAL_AVRO_BAD_HEADER');
    expect((caught as TealError).retriable).toBe(false);
  });
});

describe('BigInt long', () => {
  it.each([
    0n,
    -1n,
    1n,
    2n ** 53n - 1n,
    2n ** 53n,
    2n ** 53n + 1n,
    -(2n ** 53n) - 1n,
    9223372036854775807n,
    -9223372036854775807n,
    -9223372036854775808n,
  ])('%s is written as the spec zigzag varint and read back exactly', (n) => {
    const buf = BigIntLongType.toBuffer(n);
    expect(buf.toString('hex')).toBe(zigzagVarint(n).toString('hex'));
    expect(BigIntLongType.fromBuffer(buf)).toBe(n);
  });

  it('2^53+1 survives where a Number cannot hold it (avsc #455)', () => {
    const type = avroTypeOf({ type: 'record', name: 'R', fields: [{ name: 'v', type: ['null', 'long'] }] });
    const decoded = type.fromBuffer(type.toBuffer({ v: 9007199254740993n })) as { v: bigint };
    expect(decoded.v).toBe(9007199254740993n);
    expect(Number(decoded.v)).toBe(9007199254740992); // what a number-based long would have given
  });

  it('is used for longs with logical types too', () => {
    const type = avroTypeOf({ type: 'long', logicalType: 'timestamp-micros' });
    expect(type.fromBuffer(type.toBuffer(-9223372036854775808n))).toBe(-9223372036854775808n);
  });
});
