import { TealError } from '@teal/errors';

/** Microseconds between the Unix epoch and the Postgres epoch (2000-01-01 00:00:00 UTC). */
export const PG_EPOCH_OFFSET_US = 946_684_800_000_000n;

export function malformed(what: string, detail: string): TealError {
  return new TealError('TEAL_PGOUTPUT_MALFORMED', `malformed ${what}: ${detail}`);
}

// A cursor over one complete message. Every read checks its bounds first, so that any
// byte sequence, however mangled, ends in TEAL_PGOUTPUT_MALFORMED and never in a
// RangeError or a read past the message into a neighbour's bytes.
export class ByteReader {
  pos = 0;

  constructor(
    readonly buf: Buffer,
    readonly what: string,
  ) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, field: string): void {
    if (n > this.buf.length - this.pos) {
      throw malformed(
        this.what,
        `${field} needs ${n} bytes at offset ${this.pos}, message has ${this.buf.length}`,
      );
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.buf[this.pos++]!;
  }

  i16(field: string): number {
    this.need(2, field);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  i32(field: string): number {
    this.need(4, field);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(field: string): bigint {
    this.need(8, field);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** A TimestampTz (Int64 microseconds since 2000-01-01) as Unix microseconds. */
  timestampUs(field: string): bigint {
    this.need(8, field);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v + PG_EPOCH_OFFSET_US;
  }

  /** A protocol String: UTF-8 bytes up to a NUL terminator. */
  cstring(field: string): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw malformed(this.what, `${field} at offset ${this.pos} has no NUL terminator`);
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }

  /** n bytes, copied: the caller's buffer may be a view into a reused socket buffer. */
  bytes(n: number, field: string): Buffer {
    if (n < 0) throw malformed(this.what, `${field} has negative length ${n} at offset ${this.pos}`);
    this.need(n, field);
    const out = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }

  utf8(n: number, field: string): string {
    if (n < 0) throw malformed(this.what, `${field} has negative length ${n} at offset ${this.pos}`);
    this.need(n, field);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  end(): void {
    if (this.pos !== this.buf.length) {
      throw malformed(
        this.what,
        `${this.buf.length - this.pos} unexpected trailing bytes at offset ${this.pos}`,
      );
    }
  }
}
