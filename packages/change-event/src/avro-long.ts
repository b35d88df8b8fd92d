import avro from 'avsc';
import { boundedContainerType } from './avro-bounds.ts';
import { INT64_MAX, INT64_MIN } from './pg-text.ts';

// avsc's built-in long is a JS number and silently corrupts values near and past 2^53
// (upstream mtth/avsc#455). Every long in teal's schemas is this type instead: a BigInt,
// read and written through avsc's 8-byte two's-complement hooks, exact over all of int64.
// avsc packs the 8 bytes into the output at once and never keeps them: one scratch buffer
// serves every write (encoding is synchronous), which saves an allocation per long.
const SCRATCH = Buffer.alloc(8);

const exactLongType: avro.types.LongType = avro.types.LongType.__with({
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

// Fast path. Most longs teal writes are far below 2^53 (seq, xid, commit time in µs, LSNs
// under 4 PiB, ordinary int8 values): avsc's number varint code is exact there, and skips
// the 8-byte detour and its BigInt buffer calls (~3 % of each pipeline thread's CPU in a
// snapshot profile). Anything larger takes the exact route above. avsc calls `_read` and
// `_write` on this one shared instance (compiled record readers call them by name).
interface TapLike {
  buf: Buffer;
  pos: number;
  writeLong(n: number): void;
}
type LongInternals = Record<string, unknown> & {
  _read(tap: TapLike): bigint | undefined;
  _write(tap: TapLike, value: unknown): void;
};
const FAST_MAX = 2n ** 52n;
const FAST_MIN = -FAST_MAX;
const exact = exactLongType as unknown as LongInternals;

function fastWrite(this: LongInternals, tap: TapLike, value: unknown): void {
  if (typeof value === 'bigint' && value < FAST_MAX && value > FAST_MIN) tap.writeLong(Number(value));
  else exact._write.call(this, tap, value);
}

function fastRead(this: LongInternals, tap: TapLike): bigint | undefined {
  // Up to 8 varint bytes, summed in doubles: exact while the zigzag value stays below 2^53
  // (each term is 7 bits times a power of two); a larger value comes out >= 2^53 either way.
  const buf = tap.buf;
  let pos = tap.pos;
  let zigzag = 0;
  let scale = 1;
  let byte: number;
  do {
    byte = buf[pos++] ?? 0;
    zigzag += (byte & 0x7f) * scale;
    scale *= 128;
  } while (byte & 0x80 && scale <= 2 ** 49);
  if (byte & 0x80 || zigzag > Number.MAX_SAFE_INTEGER) return exact._read.call(this, tap);
  tap.pos = pos;
  if (pos > buf.length) return undefined; // truncated: avsc sees the invalid tap and fails the read
  return BigInt(zigzag % 2 === 1 ? -(zigzag + 1) / 2 : zigzag / 2);
}

// avsc freezes the type __with returns, so the same construction is repeated with the two
// methods replaced (the names are avsc 5.7's, as in LongType.__with).
function withFastPath(base: LongInternals): avro.types.LongType {
  const AbstractLong = Object.getPrototypeOf(base).constructor as new (noUnpack: boolean) => LongInternals;
  const type = new AbstractLong(false);
  for (const name of ['_toBuffer', '_fromBuffer', '_fromJSON', '_toJSON', '_isValid', 'compare']) {
    type[name] = base[name];
  }
  type._read = fastRead;
  type._write = fastWrite;
  return Object.freeze(type) as unknown as avro.types.LongType;
}

export const BigIntLongType: avro.types.LongType = withFastPath(exact);

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
