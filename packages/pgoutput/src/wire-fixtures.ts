import { PG_EPOCH_OFFSET_US } from './byte-reader.ts';

// Hand-built pgoutput and replication bytes for tests (this package's and the producer's),
// written from the grammar in the PostgreSQL docs, independently of decoder.ts.

export class Wire {
  private readonly parts: Buffer[] = [];

  tag(c: string): this {
    return this.u8(c.charCodeAt(0));
  }
  u8(n: number): this {
    this.parts.push(Buffer.from([n & 0xff]));
    return this;
  }
  i16(n: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(n);
    this.parts.push(b);
    return this;
  }
  i32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    this.parts.push(b);
    return this;
  }
  u32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    this.parts.push(b);
    return this;
  }
  u64(n: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(n);
    this.parts.push(b);
    return this;
  }
  /** A TimestampTz given in Unix microseconds. */
  ts(unixUs: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(unixUs - PG_EPOCH_OFFSET_US);
    this.parts.push(b);
    return this;
  }
  str(s: string): this {
    this.parts.push(Buffer.from(s, 'utf8'), Buffer.from([0]));
    return this;
  }
  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** A tuple column: null, 'u' for unchanged TOAST, a string for text, { b } for binary. */
export type Col = null | { u: true } | string | { b: Buffer };
export const U: Col = { u: true };

export function tuple(w: Wire, cols: readonly Col[]): Wire {
  w.i16(cols.length);
  for (const c of cols) {
    if (c === null) w.tag('n');
    else if (typeof c === 'string') {
      const bytes = Buffer.from(c, 'utf8');
      w.tag('t').i32(bytes.length).raw(bytes);
    } else if ('u' in c) w.tag('u');
    else w.tag('b').i32(c.b.length).raw(c.b);
  }
  return w;
}

const withXid = (w: Wire, xid?: number) => (xid === undefined ? w : w.u32(xid));

export const pgo = {
  begin: (finalLsn: bigint, tsUs: bigint, xid: number) =>
    new Wire().tag('B').u64(finalLsn).ts(tsUs).u32(xid).build(),
  commit: (commitLsn: bigint, endLsn: bigint, tsUs: bigint) =>
    new Wire().tag('C').u8(0).u64(commitLsn).u64(endLsn).ts(tsUs).build(),
  origin: (lsn: bigint, name: string) => new Wire().tag('O').u64(lsn).str(name).build(),
  relation: (
    id: number,
    ns: string,
    name: string,
    ident: string,
    cols: readonly { name: string; oid: number; key?: boolean; typmod?: number }[],
    xid?: number,
  ) => {
    const w = withXid(new Wire().tag('R'), xid).u32(id).str(ns).str(name).tag(ident).i16(cols.length);
    for (const c of cols)
      w.u8(c.key ? 1 : 0)
        .str(c.name)
        .u32(c.oid)
        .i32(c.typmod ?? -1);
    return w.build();
  },
  type: (oid: number, ns: string, name: string, xid?: number) =>
    withXid(new Wire().tag('Y'), xid).u32(oid).str(ns).str(name).build(),
  insert: (rel: number, cols: readonly Col[], xid?: number) =>
    tuple(withXid(new Wire().tag('I'), xid).u32(rel).tag('N'), cols).build(),
  update: (
    rel: number,
    t: { key?: readonly Col[]; old?: readonly Col[]; new: readonly Col[] },
    xid?: number,
  ) => {
    const w = withXid(new Wire().tag('U'), xid).u32(rel);
    if (t.key) tuple(w.tag('K'), t.key);
    if (t.old) tuple(w.tag('O'), t.old);
    return tuple(w.tag('N'), t.new).build();
  },
  delete: (rel: number, t: { key?: readonly Col[]; old?: readonly Col[] }, xid?: number) => {
    const w = withXid(new Wire().tag('D'), xid).u32(rel);
    if (t.key) tuple(w.tag('K'), t.key);
    else tuple(w.tag('O'), t.old!);
    return w.build();
  },
  truncate: (rels: readonly number[], options: number, xid?: number) => {
    const w = withXid(new Wire().tag('T'), xid).i32(rels.length).u8(options);
    for (const r of rels) w.u32(r);
    return w.build();
  },
  message: (transactional: boolean, lsn: bigint, prefix: string, content: Buffer, xid?: number) =>
    withXid(new Wire().tag('M'), xid)
      .u8(transactional ? 1 : 0)
      .u64(lsn)
      .str(prefix)
      .i32(content.length)
      .raw(content)
      .build(),
  streamStart: (xid: number, first: boolean) =>
    new Wire()
      .tag('S')
      .u32(xid)
      .u8(first ? 1 : 0)
      .build(),
  streamStop: () => new Wire().tag('E').build(),
  streamCommit: (xid: number, commitLsn: bigint, endLsn: bigint, tsUs: bigint) =>
    new Wire().tag('c').u32(xid).u8(0).u64(commitLsn).u64(endLsn).ts(tsUs).build(),
  streamAbort: (xid: number, subxid: number, v4?: { lsn: bigint; tsUs: bigint }) => {
    const w = new Wire().tag('A').u32(xid).u32(subxid);
    if (v4) w.u64(v4.lsn).ts(v4.tsUs);
    return w.build();
  },
};

export const frames = {
  xlog: (walStart: bigint, walEnd: bigint, tsUs: bigint, payload: Buffer) =>
    new Wire().tag('w').u64(walStart).u64(walEnd).ts(tsUs).raw(payload).build(),
  keepalive: (walEnd: bigint, tsUs: bigint, reply: boolean) =>
    new Wire()
      .tag('k')
      .u64(walEnd)
      .ts(tsUs)
      .u8(reply ? 1 : 0)
      .build(),
};
