import { TealError } from '@teal/errors';
import type avro from 'avsc';

// Avro's Parsing Canonical Form and CRC-64-AVRO fingerprint, per the Avro specification
// ("Parsing Canonical Form for Schemas", "Schema Fingerprints"). avsc's own fingerprint()
// is MD5 by default, and its schema() may drop attributes; teal fingerprints the JSON it
// publishes, so writer and reader agree byte for byte.

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);

/** The Parsing Canonical Form of a schema (object or JSON text). */
export function parsingCanonicalForm(schema: unknown): string {
  const parsed = typeof schema === 'string' && !isBareName(schema) ? JSON.parse(schema) : schema;
  return canonical(parsed, '', new Set());
}

function isBareName(text: string): boolean {
  return !/^\s*[[{"]/.test(text);
}

function fullName(name: string, namespace: string): string {
  return name.includes('.') || namespace === '' || PRIMITIVES.has(name) ? name : `${namespace}.${name}`;
}

function namespaceOf(fullname: string): string {
  const dot = fullname.lastIndexOf('.');
  return dot < 0 ? '' : fullname.slice(0, dot);
}

// [PRIMITIVES] [FULLNAMES] [STRIP] [ORDER] [STRINGS] [INTEGERS] [WHITESPACE]; a named type
// is written out once, later occurrences by full name (as Java's SchemaNormalization does).
function canonical(schema: unknown, namespace: string, seen: Set<string>): string {
  if (typeof schema === 'string') return JSON.stringify(fullName(schema, namespace));
  if (Array.isArray(schema)) return `[${schema.map((s) => canonical(s, namespace, seen)).join(',')}]`;
  if (schema === null || typeof schema !== 'object')
    throw new TypeError(`not an Avro schema: ${JSON.stringify(schema)}`);
  const s = schema as Record<string, unknown>;
  const type = s.type;
  if (typeof type !== 'string') return canonical(type, namespace, seen);
  if (PRIMITIVES.has(type)) return JSON.stringify(type);
  switch (type) {
    case 'array':
      return `{"type":"array","items":${canonical(s.items, namespace, seen)}}`;
    case 'map':
      return `{"type":"map","values":${canonical(s.values, namespace, seen)}}`;
    case 'record':
    case 'error':
    case 'enum':
    case 'fixed': {
      const name = fullName(String(s.name), typeof s.namespace === 'string' ? s.namespace : namespace);
      if (seen.has(name)) return JSON.stringify(name);
      seen.add(name);
      const head = `{"name":${JSON.stringify(name)},"type":${JSON.stringify(type)}`;
      if (type === 'enum') return `${head},"symbols":${JSON.stringify(s.symbols)}}`;
      if (type === 'fixed') return `${head},"size":${Number(s.size)}}`;
      const inner = namespaceOf(name);
      const fields = (s.fields as { name: string; type: unknown }[]).map(
        (f) => `{"name":${JSON.stringify(f.name)},"type":${canonical(f.type, inner, seen)}}`,
      );
      return `${head},"fields":[${fields.join(',')}]}`;
    }
    default:
      // A reference written as {"type": "some.Name"}.
      return canonical(type, namespace, seen);
  }
}

// CRC-64-AVRO (the spec's Rabin fingerprint), on BigInt: it runs once per schema, not per row.
const EMPTY = 0xc15d213aa4d7a795n;
const TABLE: bigint[] = Array.from({ length: 256 }, (_, i) => {
  let fp = BigInt(i);
  for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (EMPTY & -(fp & 1n));
  return fp;
});

/** CRC-64-AVRO of the bytes, as an unsigned 64-bit value. */
export function crc64Avro(bytes: Uint8Array): bigint {
  let fp = EMPTY;
  for (const b of bytes) fp = (fp >> 8n) ^ TABLE[Number((fp ^ BigInt(b)) & 0xffn)];
  return fp;
}

/** The 8-byte little-endian CRC-64-AVRO fingerprint of a schema's canonical form. */
export function schemaFingerprint(schema: unknown): Buffer {
  const buf = Buffer.allocUnsafe(8);
  buf.writeBigUInt64LE(crc64Avro(Buffer.from(parsingCanonicalForm(schema), 'utf8')));
  return buf;
}

/** Fingerprint as teal writes it in `teal._schemas` keys: 16 lowercase hex chars of the LE bytes. */
export function fingerprintHex(fingerprint: Buffer): string {
  return fingerprint.toString('hex');
}

// Single-object encoding (Avro spec): C3 01, the 8-byte little-endian fingerprint, the body.
export const SINGLE_OBJECT_MARKER = Buffer.from([0xc3, 0x01]);
export const SINGLE_OBJECT_HEADER_LENGTH = 10;

// Bodies are written into one growing scratch buffer, then copied once into the message.
let scratch = Buffer.allocUnsafe(64 * 1024);

export function encodeSingleObject(type: avro.Type, fingerprint: Buffer, value: unknown): Buffer {
  let end = type.encode(value, scratch, SINGLE_OBJECT_HEADER_LENGTH);
  while (end < 0) {
    // avsc answers a too-small buffer with minus the bytes missing
    scratch = Buffer.allocUnsafe(Math.max(scratch.length * 2, scratch.length - end));
    end = type.encode(value, scratch, SINGLE_OBJECT_HEADER_LENGTH);
  }
  const out = Buffer.allocUnsafe(end);
  scratch.copy(out, 0, 0, end);
  out[0] = 0xc3;
  out[1] = 0x01;
  fingerprint.copy(out, 2, 0, 8);
  return out;
}

export function readSingleObjectHeader(buf: Buffer): { fingerprint: Buffer; body: Buffer } {
  if (buf.length < SINGLE_OBJECT_HEADER_LENGTH || buf[0] !== 0xc3 || buf[1] !== 0x01) {
    const head = buf.subarray(0, SINGLE_OBJECT_HEADER_LENGTH).toString('hex');
    throw new TealError(
      'TEAL_AVRO_BAD_HEADER',
      `not an Avro single-object message (want C3 01 + 8-byte fingerprint, got ${buf.length} bytes starting ${head || 'with nothing'}); ` +
        'was this topic written by teal?',
      { retriable: false },
    );
  }
  return {
    fingerprint: buf.subarray(2, SINGLE_OBJECT_HEADER_LENGTH),
    body: buf.subarray(SINGLE_OBJECT_HEADER_LENGTH),
  };
}
