import { TealError } from '@teal/errors';
import { describe, expect, it } from 'vitest';
import { decodePgoutput } from './decoder.ts';
import { pgo, U, Wire } from './wire-fixtures.ts';

const v1 = { protoVersion: 1, inStreamBlock: false };
const v2 = { protoVersion: 2, inStreamBlock: false };
const v4 = { protoVersion: 4, inStreamBlock: false };
const inBlock = { protoVersion: 2, inStreamBlock: true };
// 2024-02-29T12:34:56.789012Z in Unix microseconds: the microseconds must survive.
const TS = 1_709_210_096_789_012n;
const BIG_LSN = 0xffff_fffe_0000_0001n;

describe('decodePgoutput', () => {
  it('decodes Begin and Commit, converting timestamps from the 2000 epoch to Unix micros', () => {
    expect(decodePgoutput(pgo.begin(BIG_LSN, TS, 4_000_000_000), v1)).toEqual({
      tag: 'begin',
      finalLsn: BIG_LSN,
      commitTimeUs: TS,
      xid: 4_000_000_000,
    });
    expect(decodePgoutput(pgo.commit(0x16b3748n, 0x16b3778n, TS), v1)).toEqual({
      tag: 'commit',
      flags: 0,
      commitLsn: 0x16b3748n,
      endLsn: 0x16b3778n,
      commitTimeUs: TS,
    });
    // The Postgres epoch itself is 946684800 s after the Unix one.
    const raw = new Wire().tag('B').u64(1n).u64(0n).u32(1).build();
    expect(decodePgoutput(raw, v1)).toMatchObject({ commitTimeUs: 946_684_800_000_000n });
  });

  it('decodes Origin and Type', () => {
    expect(decodePgoutput(pgo.origin(42n, 'node_a'), v1)).toEqual({
      tag: 'origin',
      originLsn: 42n,
      name: 'node_a',
    });
    expect(decodePgoutput(pgo.type(16_385, 'public', 'mood'), v1)).toEqual({
      tag: 'type',
      typeOid: 16_385,
      namespace: 'public',
      name: 'mood',
    });
  });

  it('decodes a Relation with key flags, type oids and typmods', () => {
    const buf = pgo.relation(16_390, 'public', 'accounts', 'd', [
      { name: 'id', oid: 20, key: true },
      { name: 'balance', oid: 1700, typmod: 655_366 },
      { name: 'ñame', oid: 25 },
    ]);
    expect(decodePgoutput(buf, v1)).toEqual({
      tag: 'relation',
      relationId: 16_390,
      namespace: 'public',
      name: 'accounts',
      replicaIdentity: 'd',
      columns: [
        { flags: 1, isKey: true, name: 'id', typeOid: 20, typmod: -1 },
        { flags: 0, isKey: false, name: 'balance', typeOid: 1700, typmod: 655_366 },
        { flags: 0, isKey: false, name: 'ñame', typeOid: 25, typmod: -1 },
      ],
    });
  });

  it('decodes every tuple kind: null, unchanged TOAST (not null), exact text, binary', () => {
    const text = '{"n": 123456789012345678901234567890.5, "s": "héllo ☃ 𝄞"}';
    const msg = decodePgoutput(pgo.insert(7, [null, U, text, { b: Buffer.from([0, 255, 10]) }, '']), v1);
    expect(msg).toEqual({
      tag: 'insert',
      relationId: 7,
      newTuple: [
        { kind: 'null' },
        { kind: 'unchanged' },
        { kind: 'text', value: text },
        { kind: 'binary', value: Buffer.from([0, 255, 10]) },
        { kind: 'text', value: '' },
      ],
    });
  });

  it('decodes Update without old tuple, with old key (K) and with old row (O)', () => {
    expect(decodePgoutput(pgo.update(7, { new: ['1', U] }), v1)).toEqual({
      tag: 'update',
      relationId: 7,
      newTuple: [{ kind: 'text', value: '1' }, { kind: 'unchanged' }],
    });
    expect(decodePgoutput(pgo.update(7, { key: ['1', null], new: ['2', 'x'] }), v1)).toMatchObject({
      keyTuple: [{ kind: 'text', value: '1' }, { kind: 'null' }],
      newTuple: [
        { kind: 'text', value: '2' },
        { kind: 'text', value: 'x' },
      ],
    });
    const full = decodePgoutput(pgo.update(7, { old: ['1', 'a'], new: ['1', 'b'] }), v1);
    expect(full).toMatchObject({ oldTuple: [{ value: '1' }, { value: 'a' }] });
    expect(full).not.toHaveProperty('keyTuple');
  });

  it('decodes Delete with K or O', () => {
    expect(decodePgoutput(pgo.delete(7, { key: ['1', null] }), v1)).toMatchObject({
      tag: 'delete',
      keyTuple: [{ kind: 'text', value: '1' }, { kind: 'null' }],
    });
    expect(decodePgoutput(pgo.delete(7, { old: ['1', 'a'] }), v1)).toMatchObject({
      tag: 'delete',
      oldTuple: [{ value: '1' }, { value: 'a' }],
    });
  });

  it('decodes Truncate options and relation ids', () => {
    expect(decodePgoutput(pgo.truncate([7, 8, 4_000_000_001], 3), v1)).toEqual({
      tag: 'truncate',
      cascade: true,
      restartIdentity: true,
      relationIds: [7, 8, 4_000_000_001],
    });
    expect(decodePgoutput(pgo.truncate([7], 2), v1)).toMatchObject({ cascade: false, restartIdentity: true });
  });

  it('decodes logical decoding messages with their flag, LSN, prefix and bytes', () => {
    const content = Buffer.from([0, 1, 2, 0xff]);
    expect(decodePgoutput(pgo.message(true, 99n, 'teal.watermark', content), v1)).toEqual({
      tag: 'message',
      transactional: true,
      lsn: 99n,
      prefix: 'teal.watermark',
      content,
    });
    expect(decodePgoutput(pgo.message(false, 99n, 'x', Buffer.alloc(0)), v1)).toMatchObject({
      transactional: false,
    });
  });

  it('reads the leading xid of R, Y, I, U, D, T and M inside a stream block', () => {
    const xid = 3_000_000_000;
    const cases: [Buffer, string][] = [
      [pgo.relation(7, 'public', 't', 'f', [{ name: 'id', oid: 23, key: true }], xid), 'relation'],
      [pgo.type(16_385, 'public', 'mood', xid), 'type'],
      [pgo.insert(7, ['1'], xid), 'insert'],
      [pgo.update(7, { new: ['1'] }, xid), 'update'],
      [pgo.delete(7, { key: ['1'] }, xid), 'delete'],
      [pgo.truncate([7], 0, xid), 'truncate'],
      [pgo.message(true, 5n, 'p', Buffer.from('c'), xid), 'message'],
    ];
    for (const [buf, tag] of cases) {
      expect(decodePgoutput(buf, inBlock)).toMatchObject({ tag, xid });
      // The same bytes outside a block are misread, and the decoder notices.
      expect(() => decodePgoutput(buf, v2)).toThrow(TealError);
    }
  });

  it('decodes the streaming messages of protocol 2 and the v4 Stream Abort', () => {
    expect(decodePgoutput(pgo.streamStart(500, true), v2)).toEqual({
      tag: 'stream_start',
      xid: 500,
      firstSegment: true,
    });
    expect(decodePgoutput(pgo.streamStart(500, false), v2)).toMatchObject({ firstSegment: false });
    expect(decodePgoutput(pgo.streamStop(), inBlock)).toEqual({ tag: 'stream_stop' });
    expect(decodePgoutput(pgo.streamCommit(500, 0x100n, 0x130n, TS), v2)).toEqual({
      tag: 'stream_commit',
      xid: 500,
      flags: 0,
      commitLsn: 0x100n,
      endLsn: 0x130n,
      commitTimeUs: TS,
    });
    expect(decodePgoutput(pgo.streamAbort(500, 501), v2)).toEqual({
      tag: 'stream_abort',
      xid: 500,
      subxid: 501,
    });
    // v4 with streaming = parallel adds the abort LSN and time; with streaming = on it does not.
    expect(decodePgoutput(pgo.streamAbort(500, 500, { lsn: 0x200n, tsUs: TS }), v4)).toEqual({
      tag: 'stream_abort',
      xid: 500,
      subxid: 500,
      abortLsn: 0x200n,
      abortTimeUs: TS,
    });
    expect(decodePgoutput(pgo.streamAbort(500, 500), v4)).toEqual({
      tag: 'stream_abort',
      xid: 500,
      subxid: 500,
    });
    // Before v4 the extra fields are trailing garbage.
    expect(() => decodePgoutput(pgo.streamAbort(500, 500, { lsn: 1n, tsUs: TS }), v2)).toThrow(/trailing/);
  });

  it('refuses streaming messages under protocol 1', () => {
    expect(() => decodePgoutput(pgo.streamStart(1, true), v1)).toThrow(/protocol version 2/);
  });

  it('decodes the two-phase messages of protocol 3', () => {
    const v3 = { protoVersion: 3, inStreamBlock: false };
    const bp = new Wire().tag('b').u64(1n).u64(2n).ts(TS).u32(9).str('gid1').build();
    expect(decodePgoutput(bp, v3)).toEqual({
      tag: 'begin_prepare',
      prepareLsn: 1n,
      endLsn: 2n,
      prepareTimeUs: TS,
      xid: 9,
      gid: 'gid1',
    });
    const p = new Wire().tag('P').u8(0).u64(1n).u64(2n).ts(TS).u32(9).str('g').build();
    expect(decodePgoutput(p, v3)).toMatchObject({ tag: 'prepare', xid: 9, gid: 'g' });
    const sp = new Wire().tag('p').u8(0).u64(1n).u64(2n).ts(TS).u32(9).str('g').build();
    expect(decodePgoutput(sp, v3)).toMatchObject({ tag: 'stream_prepare' });
    const k = new Wire().tag('K').u8(0).u64(3n).u64(4n).ts(TS).u32(9).str('g').build();
    expect(decodePgoutput(k, v3)).toMatchObject({ tag: 'commit_prepared', commitLsn: 3n, endLsn: 4n });
    const r = new Wire()
      .tag('r')
      .u8(0)
      .u64(3n)
      .u64(4n)
      .ts(TS)
      .ts(TS + 1n)
      .u32(9)
      .str('g')
      .build();
    expect(decodePgoutput(r, v3)).toMatchObject({ tag: 'rollback_prepared', rollbackTimeUs: TS + 1n });
  });
});

describe('decodePgoutput on malformed input', () => {
  const samples: [Buffer, { protoVersion: number; inStreamBlock: boolean }][] = [
    [pgo.begin(1n, TS, 2), v1],
    [pgo.commit(1n, 2n, TS), v1],
    [pgo.origin(1n, 'o'), v1],
    [
      pgo.relation(7, 'public', 't', 'd', [
        { name: 'id', oid: 23, key: true },
        { name: 'v', oid: 25 },
      ]),
      v1,
    ],
    [pgo.type(1, 'public', 'x'), v1],
    [pgo.insert(7, ['1', null, U, { b: Buffer.from([1]) }]), v1],
    [pgo.update(7, { key: ['1', null], new: ['2', 'x'] }), v1],
    [pgo.update(7, { old: ['1', 'a'], new: ['1', 'b'] }, 9), inBlock],
    [pgo.delete(7, { key: ['1'] }), v1],
    [pgo.truncate([7, 8], 1), v1],
    [pgo.message(true, 1n, 'p', Buffer.from('abc')), v1],
    [pgo.streamStart(1, true), v2],
    [pgo.streamCommit(1, 2n, 3n, TS), v2],
    [pgo.streamAbort(1, 2), v2],
  ];

  it('reports every truncation of every message as TEAL_PGOUTPUT_MALFORMED', () => {
    let checked = 0;
    for (const [buf, opts] of samples) {
      expect(() => decodePgoutput(buf, opts)).not.toThrow();
      for (let n = 0; n < buf.length; n++) {
        let error: unknown;
        try {
          decodePgoutput(buf.subarray(0, n), opts);
        } catch (err) {
          error = err;
        }
        expect(error, `${buf.subarray(0, 1).toString()} cut at ${n}`).toBeInstanceOf(TealError);
        expect((error as TealError).code).toBe('TEAL_PGOUTPUT_MALFORMED');
        checked++;
      }
    }
    expect(checked).toBe(295);
  });

  it('reports trailing bytes, unknown tags, bad markers and negative lengths as malformed', () => {
    const bad = [
      Buffer.concat([pgo.begin(1n, TS, 2), Buffer.from([0])]),
      Buffer.from('Z'),
      Buffer.alloc(0),
      new Wire().tag('I').u32(7).tag('X').i16(0).build(),
      new Wire().tag('U').u32(7).tag('K').i16(0).tag('K').i16(0).build(),
      new Wire().tag('I').u32(7).tag('N').i16(1).tag('t').i32(-5).build(),
      new Wire().tag('I').u32(7).tag('N').i16(1).tag('t').i32(0x7fffffff).build(),
      new Wire().tag('I').u32(7).tag('N').i16(-1).build(),
      new Wire().tag('I').u32(7).tag('N').i16(1).tag('q').build(),
      new Wire().tag('R').u32(7).str('public').str('t').tag('x').i16(0).build(),
      new Wire().tag('O').u64(1n).raw(Buffer.from('no terminator')).build(),
      new Wire().tag('M').u8(1).u64(1n).str('p').i32(-1).build(),
    ];
    for (const buf of bad) {
      expect(() => decodePgoutput(buf, v1)).toThrow(
        expect.objectContaining({ code: 'TEAL_PGOUTPUT_MALFORMED' }),
      );
    }
  });

  it('survives 30k random mutations with a value or TEAL_PGOUTPUT_MALFORMED, never anything else', () => {
    let seed = 12_345;
    const rand = () => {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
      return seed;
    };
    let decoded = 0;
    for (let i = 0; i < 30_000; i++) {
      const [orig] = samples[rand() % samples.length]!;
      const buf = Buffer.from(orig);
      const edits = 1 + (rand() % 3);
      for (let e = 0; e < edits; e++) buf[rand() % buf.length] = rand() & 0xff;
      try {
        decodePgoutput(buf, { protoVersion: 1 + (rand() % 4), inStreamBlock: rand() % 2 === 0 });
        decoded++;
      } catch (err) {
        if (!(err instanceof TealError) || err.code !== 'TEAL_PGOUTPUT_MALFORMED') throw err;
      }
    }
    expect(decoded).toBeGreaterThan(0);
  });
});
