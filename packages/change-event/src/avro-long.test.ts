import { describe, expect, it } from 'vitest';
// The reference: Avro's long is a zigzag varint of the 64-bit value (the fuzzer's writer).
import { zigzagVarint } from '../../../fuzz/mutate.ts';
import { avroTypeOf } from './avro-long.ts';

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

function samples(): bigint[] {
  const edges = [0n, 1n, -1n, 63n, 64n, -64n, -65n, 2n ** 31n, -(2n ** 31n), INT64_MAX, INT64_MIN];
  for (const e of [30n, 48n, 49n, 51n, 52n, 53n, 55n, 56n, 62n]) {
    const p = 2n ** e;
    edges.push(p - 1n, p, p + 1n, -p + 1n, -p, -p - 1n);
  }
  // Seeded LCG: values spread over every magnitude.
  let seed = 42n;
  for (let i = 0; i < 5000; i++) {
    seed = (seed * 6364136223846793005n + 1442695040888963407n) % 2n ** 64n;
    const bits = BigInt(i % 64);
    edges.push(BigInt.asIntN(64, seed) >> (63n - bits));
  }
  return edges;
}

describe('BigInt long', () => {
  const type = avroTypeOf('long');

  it('writes the standard zigzag varint and reads back the exact value on both paths', () => {
    for (const v of samples()) {
      const bytes = type.toBuffer(v);
      expect(bytes.equals(zigzagVarint(v)), `bytes of ${v}`).toBe(true);
      expect(type.fromBuffer(bytes)).toBe(v);
    }
  });

  it('reads values in a record next to other fields, and rejects a truncated one', () => {
    const record = avroTypeOf({
      type: 'record',
      name: 'R',
      fields: [
        { name: 'a', type: 'long' },
        { name: 's', type: 'string' },
        { name: 'b', type: 'long' },
      ],
    });
    const value = { a: 2n ** 52n + 3n, s: 'x', b: -5n };
    const buf = record.toBuffer(value);
    expect(record.fromBuffer(buf)).toEqual(value);
    const small = type.toBuffer(1_700_000_000_000_000n);
    expect(() => type.fromBuffer(small.subarray(0, small.length - 1))).toThrow();
  });

  it('refuses a number or an out-of-range BigInt on write', () => {
    expect(() => type.toBuffer(5 as unknown as bigint)).toThrow();
    expect(() => type.toBuffer(INT64_MAX + 1n)).toThrow();
  });
});
