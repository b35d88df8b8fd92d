import avro from 'avsc';

// avsc reads an array or map block count from the body and then loops that many times,
// even after the buffer has run out (its reads past the end yield zeros and are only
// checked once, at the end). One corrupt count (2^31 in teal's `unchanged` array) is then a
// two-billion-step loop that fills the heap. Every item of an array whose item type is not
// `null` takes at least one byte (so does every map entry: its key), so a block claiming
// more items than bytes remain is corruption: these readers stop there with an error, which
// the codec turns into TEAL_AVRO_UNDECODABLE. avsc freezes its types, so the bounded
// readers are subclasses, built through the typeHook.

interface Tap {
  buf: Buffer;
  pos: number;
  readLong(): number;
  skipLong(): void;
  readString(): string;
}
interface Readable {
  _read(tap: Tap): unknown;
}

function blockCount(tap: Tap, what: string, itemsTakeBytes: boolean): number {
  let n = tap.readLong();
  if (n < 0) {
    n = -n;
    tap.skipLong(); // the block's size in bytes
  }
  const left = tap.buf.length - tap.pos;
  if (itemsTakeBytes && n > left) {
    throw new Error(`${what} block of ${n} items with ${Math.max(0, left)} bytes left: corrupt count`);
  }
  return n;
}

class BoundedArrayType extends avro.types.ArrayType {
  _read(tap: Tap): unknown[] {
    const items = this.itemsType as unknown as Readable;
    const takeBytes = this.itemsType.typeName !== 'null';
    const out: unknown[] = [];
    for (let n = blockCount(tap, 'array', takeBytes); n > 0; n = blockCount(tap, 'array', takeBytes)) {
      while (n-- > 0) out.push(items._read(tap));
    }
    return out;
  }
}

class BoundedMapType extends avro.types.MapType {
  _read(tap: Tap): Record<string, unknown> {
    const values = this.valuesType as Readable;
    const out: Record<string, unknown> = {};
    for (let n = blockCount(tap, 'map', true); n > 0; n = blockCount(tap, 'map', true)) {
      while (n-- > 0) {
        const key = tap.readString();
        out[key] = values._read(tap);
      }
    }
    return out;
  }
}

/** For a typeHook: a bounded array or map type for such a schema, else undefined. */
export function boundedContainerType(schema: unknown, opts: unknown): avro.Type | undefined {
  if (schema === null || typeof schema !== 'object') return undefined;
  const type = (schema as { type?: unknown }).type;
  const Ctor = type === 'array' ? BoundedArrayType : type === 'map' ? BoundedMapType : undefined;
  return Ctor ? new (Ctor as unknown as new (s: unknown, o: unknown) => avro.Type)(schema, opts) : undefined;
}
