import type { Rng } from './rng.ts';

// Structure-blind mutations of valid messages, the classic set: bit flips, byte
// replacements, insertions, deletions, truncations, length-field corruption (Int32 big-endian
// for pgoutput, zigzag varints for Avro) and splicing with another valid message.

export type LengthEncoding = 'int32be' | 'varint';

export interface MutateOptions {
  /** How length fields are written in this format. */
  readonly lengths: LengthEncoding;
  /** Bytes at the front that most mutations leave alone (e.g. a header), so bodies get explored. */
  readonly protect?: number;
  /** Other valid messages to splice with. */
  readonly corpus: readonly Buffer[];
}

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x4e, 0x74, 0x75, 0x6e, 0x62, 0x4b, 0x4f];
// Lengths that have crashed parsers elsewhere: negative, sign boundary, past the message,
// and 2^31 / 2^32 - 1, which must never turn into a 2 GB allocation.
const INTERESTING_INT32 = [0, 1, -1, 0x7f, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, -0x80000000, -2];
const INTERESTING_LONGS = [
  0n,
  1n,
  -1n,
  2n ** 31n,
  2n ** 32n,
  2n ** 53n,
  2n ** 62n,
  2n ** 63n - 1n,
  -(2n ** 63n),
  1000000n,
];

export function zigzagVarint(n: bigint): Buffer {
  let z = n >= 0n ? n << 1n : (-n << 1n) - 1n;
  const out: number[] = [];
  do {
    let b = Number(z & 0x7fn);
    z >>= 7n;
    if (z > 0n) b |= 0x80;
    out.push(b);
  } while (z > 0n);
  return Buffer.from(out);
}

function start(rng: Rng, len: number, protect: number): number {
  return protect > 0 && protect < len && rng.chance(0.85) ? protect + rng.int(len - protect) : rng.int(len);
}

export function mutateOnce(rng: Rng, input: Buffer, opts: MutateOptions): Buffer {
  const protect = opts.protect ?? 0;
  const len = input.length;
  switch (rng.int(9)) {
    case 0: {
      // bit flips
      if (len === 0) return input;
      const out = Buffer.from(input);
      for (let n = 1 + rng.int(4); n > 0; n--) {
        const at = start(rng, len, protect);
        out[at]! ^= 1 << rng.int(8);
      }
      return out;
    }
    case 1: {
      // byte replacement
      if (len === 0) return input;
      const out = Buffer.from(input);
      out[start(rng, len, protect)] = rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.int(256);
      return out;
    }
    case 2: {
      // insertion
      const at = start(rng, len + 1, protect);
      const extra = Buffer.alloc(1 + rng.int(8));
      for (let i = 0; i < extra.length; i++)
        extra[i] = rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.int(256);
      return Buffer.concat([input.subarray(0, at), extra, input.subarray(at)]);
    }
    case 3: {
      // deletion
      if (len === 0) return input;
      const at = start(rng, len, protect);
      const n = 1 + rng.int(Math.min(16, len - at));
      return Buffer.concat([input.subarray(0, at), input.subarray(at + n)]);
    }
    case 4:
      // truncation
      return input.subarray(0, start(rng, len + 1, protect));
    case 5:
    case 6: {
      // length-field corruption
      if (opts.lengths === 'int32be') {
        if (len < 4) return input;
        const out = Buffer.from(input);
        out.writeInt32BE(rng.pick(INTERESTING_INT32), start(rng, len - 3, protect));
        return out;
      }
      const at = start(rng, len + 1, protect);
      const varint = zigzagVarint(rng.pick(INTERESTING_LONGS));
      // Replace the varint there (up to its continuation bytes) or insert a new one.
      let end = at;
      if (rng.chance(0.7)) {
        while (end < len && (input[end]! & 0x80) !== 0) end++;
        end = Math.min(len, end + 1);
      }
      return Buffer.concat([input.subarray(0, at), varint, input.subarray(end)]);
    }
    case 7: {
      // splice with another valid message
      const other = rng.pick(opts.corpus);
      const cut = start(rng, len + 1, protect);
      const from = rng.int(other.length + 1);
      return Buffer.concat([input.subarray(0, cut), other.subarray(from)]);
    }
    default: {
      // duplicate a chunk in place
      if (len === 0) return input;
      const at = start(rng, len, protect);
      const chunk = input.subarray(at, at + 1 + rng.int(16));
      return Buffer.concat([input.subarray(0, at), chunk, input.subarray(at)]);
    }
  }
}

/** One to four stacked mutations. */
export function mutate(rng: Rng, input: Buffer, opts: MutateOptions): Buffer {
  let out = input;
  for (let n = 1 + rng.int(4); n > 0; n--) out = mutateOnce(rng, out, opts);
  return out;
}
