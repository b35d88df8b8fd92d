import avro from 'avsc';
import { boundedContainerType } from './avro-bounds.ts';
import { INT64_MAX, INT64_MIN } from './pg-text.ts';

// avsc's built-in long is a JS number and silently corrupts values near and past 2^53
// (upstream mtth/avsc#455). Every long in teal's schemas is this type instead: a BigInt,
// read and written through avsc's 8-byte two's-complement hooks, exact over all of int64.
// avsc packs the 8 bytes into the output at once and never keeps them: one scratch buffer
// serves every write (encoding is synchronous), which saves an allocation per long.
const SCRATCH = Buffer.alloc(8);

export const BigIntLongType: avro.types.LongType = avro.types.LongType.__with({
  fromBuffer: (buf: Buffer) => buf.readBigInt64LE(0),
  toBuffer: (value: bigint) => {
    SCRATCH.writeBigInt64LE(value, 0);
    return SCRATCH;
  },
  fromJSON: (json: unknown) => (typeof json === 'bigint' ? json : BigInt(json as number | string)),
  toJSON: (value: bigint) => {
    const n = Number(value);
    return Number.isSafeInteger(n) ? n : value.toString();
  },
  isValid: (value: unknown) => typeof value === 'bigint' && value >= INT64_MIN && value <= INT64_MAX,
  compare: (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0),
});

// A typeHook catches both `"long"` and `{"type": "long", "logicalType": ...}`: the registry
// alone would miss the second form.
function bigIntLongHook(schema: unknown, opts: unknown): avro.Type | undefined {
  if (schema === 'long') return BigIntLongType;
  if (schema !== null && typeof schema === 'object' && (schema as { type?: unknown }).type === 'long') {
    return BigIntLongType;
  }
  return boundedContainerType(schema, opts);
}

/** avsc's Type.forSchema with every long as BigInt, every union left unwrapped, block counts bounded. */
export function avroTypeOf(schema: unknown): avro.Type {
  return avro.Type.forSchema(schema as avro.Schema, { typeHook: bigIntLongHook, wrapUnions: 'auto' });
}
