import { TealError } from '@teal/errors';
import { describe, expect, it } from 'vitest';
import { decodeEvent, SchemaCache, TableCodec } from './codec.ts';
import type { ChangeEvent, TableSchema } from './event.ts';

// Regression (found by fuzz/): avsc loops over an array's block count even after the body
// has run out, so an event whose `unchanged` count was corrupted to 2^31 spun for minutes
// and died with "JavaScript heap out of memory" instead of being rejected.

const table: TableSchema = {
  schema: 'public',
  table: 'regression_array_count',
  columns: [
    { name: 'id', type: { oid: 20, name: 'int8', kind: 'base' }, typmod: -1, isKey: true },
    { name: 'v', type: { oid: 25, name: 'text', kind: 'base' }, typmod: -1, isKey: false },
  ],
  keyColumns: ['id'],
};

const event = (unchanged: string[]): ChangeEvent => ({
  op: 'u',
  schema: table.schema,
  table: table.table,
  position: { lsn: 0x16b3748n, seq: 1 },
  xid: 7,
  commitTimeUs: 1_704_164_645_123_456n,
  key: { id: '1' },
  after: unchanged.length ? { id: '1' } : { id: '1', v: 'x' },
  before: null,
  unchanged,
});

/** Zigzag varint, as Avro writes longs. */
function varint(n: bigint): Buffer {
  let z = n >= 0n ? n << 1n : (-n << 1n) - 1n;
  const out: number[] = [];
  do {
    out.push(Number(z & 0x7fn) | (z > 0x7fn ? 0x80 : 0));
    z >>= 7n;
  } while (z > 0n);
  return Buffer.from(out);
}

describe('a corrupt array block count in an Avro body', () => {
  const codec = new TableCodec(table);
  const cache = new SchemaCache();
  cache.add(codec.valueFingerprintHex, codec.valueSchemaJson);

  it.each([2n ** 31n, 2n ** 53n, -(2n ** 31n), 1_000_000n])(
    'count %s is rejected as TEAL_AVRO_UNDECODABLE at once, without a loop over it',
    (count) => {
      const valid = codec.encodeEvent(event([]));
      // `unchanged` is the envelope's last field; an empty array is the single byte 0.
      expect(valid.at(-1)).toBe(0);
      const corrupt = Buffer.concat([valid.subarray(0, -1), varint(count), Buffer.from([2, 0x76, 0])]);
      let thrown: unknown;
      try {
        decodeEvent(corrupt, cache);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(TealError);
      expect((thrown as TealError).code).toBe('TEAL_AVRO_UNDECODABLE');
      // Rejected by the block-count bound before any loop over the count (avro-bounds.ts),
      // not by running out of body after a loop: a check of the kind, not of the clock.
      expect((thrown as TealError).message).toMatch(
        /array block of \d+ items with \d+ bytes left: corrupt count/,
      );
    },
  );

  it('arrays that fit their bytes still decode, across several blocks too', () => {
    const valid = codec.encodeEvent(event(['v']));
    expect(decodeEvent(valid, cache).event.unchanged).toEqual(['v']);
    // Same array written as two blocks (1 item, then 1 item) with a negative count + size.
    const oneBlock = Buffer.concat([varint(1n), varint(1n), Buffer.from('v'), Buffer.from([0])]);
    expect(valid.subarray(-oneBlock.length).equals(oneBlock)).toBe(true);
    const twoBlocks = Buffer.concat([
      valid.subarray(0, -oneBlock.length),
      varint(-1n),
      varint(2n),
      varint(1n),
      Buffer.from('v'),
      varint(1n),
      varint(1n),
      Buffer.from('w'),
      Buffer.from([0]),
    ]);
    expect(decodeEvent(twoBlocks, cache).event.unchanged).toEqual(['v', 'w']);
  });
});
