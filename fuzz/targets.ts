import {
  type ChangeEvent,
  decodeEvent,
  decodeKey,
  type PgType,
  type Row,
  SchemaCache,
  TableCodec,
  type TableSchema,
  type TypeKind,
} from '@teal/change-event';
import { isErrorCode, TealError } from '@teal/errors';
import { decodeCopyData, decodePgoutput, MemorySpillStore, TransactionAssembler } from '@teal/pgoutput';
import { type Col, frames, pgo, U, Wire } from '../packages/pgoutput/src/wire-fixtures.ts';
import { type MutateOptions, mutate } from './mutate.ts';
import { Rng } from './rng.ts';

// The four fuzz targets. A case is a pure function of an Rng (itself a function of seed,
// target and input index), so any failing input can be rebuilt from its index; `data` is
// what gets saved to fuzz/crashes/. The acceptance rule is the same everywhere: a target
// returns a value or throws a TealError whose code is TEAL_*; anything else is a crash.

export interface FuzzCase {
  readonly data: readonly Buffer[];
  readonly params: Record<string, number | boolean | string>;
}

export interface FuzzTarget {
  readonly name: string;
  generate(rng: Rng): FuzzCase;
  /** Throws only what the decoder threw. */
  run(c: FuzzCase): void | Promise<void>;
}

/** Undefined when the thrown value is acceptable; otherwise why it is not. */
export function unacceptable(err: unknown): string | undefined {
  if (err instanceof TealError && isErrorCode(err.code)) return undefined;
  if (err instanceof TealError)
    return `TealError with a code outside the catalog (non-TEAL_ code ${JSON.stringify(err.code)})`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return `non-Error thrown: ${String(err)}`;
}

// ---------------------------------------------------------------------------------------
// pgoutput: every message type, for protocol versions 1-4, in and out of stream blocks.

const TS = 1_704_164_645_123_456n;
const REL = 16_384;
const REL_COLS = [
  { name: 'id', oid: 23, key: true },
  { name: 'name', oid: 25 },
  { name: 'big', oid: 25 },
  { name: 'n', oid: 1700, typmod: 655366 },
  { name: 'at', oid: 1184 },
];
const rowCols = (i: number): Col[] => [
  String(i),
  `name ${i} ✓`,
  null,
  '-1.50',
  '2024-01-02 03:04:05.123456+00',
];

/** Valid messages; the xid-bearing ones built for the given stream context. */
function pgoutputCorpus(inStream: boolean): Buffer[] {
  const x = inStream ? 1234 : undefined;
  const withV = (w: Wire) => w.build();
  return [
    pgo.begin(0x16b3748n, TS, 1234),
    pgo.commit(0x16b3748n, 0x16b3780n, TS),
    pgo.origin(0x1000n, 'origin_a'),
    pgo.relation(REL, 'public', 'items', 'd', REL_COLS, x),
    pgo.relation(REL + 1, '', 'pg_thing', 'f', [{ name: 'a', oid: 20, key: true }], x),
    pgo.type(16_390, 'public', 'mood', x),
    pgo.insert(REL, rowCols(1), x),
    pgo.insert(REL, ['2', { b: Buffer.from([0, 1, 2, 255]) }, U, null, 'x'], x),
    pgo.update(REL, { new: ['1', 'renamed', U, '2', 'infinity'] }, x),
    pgo.update(REL, { key: ['1', null, null, null, null], new: rowCols(7) }, x),
    pgo.update(REL, { old: rowCols(1), new: rowCols(1) }, x),
    pgo.delete(REL, { key: ['1', null, null, null, null] }, x),
    pgo.delete(REL, { old: rowCols(3) }, x),
    pgo.truncate([REL, REL + 1], 3, x),
    pgo.message(true, 0x16b3700n, 'app.event', Buffer.from('{"hello":1}'), x),
    pgo.message(false, 0x16b3701n, 'teal.heartbeat', Buffer.alloc(0), x),
    pgo.streamStart(1234, true),
    pgo.streamStop(),
    pgo.streamCommit(1234, 0x16b3748n, 0x16b3780n, TS),
    pgo.streamAbort(1234, 1235),
    pgo.streamAbort(1234, 1234, { lsn: 0x16b3790n, tsUs: TS }),
    withV(new Wire().tag('b').u64(0x10n).u64(0x20n).ts(TS).u32(99).str('gid-1')),
    withV(new Wire().tag('P').u8(0).u64(0x10n).u64(0x20n).ts(TS).u32(99).str('gid-1')),
    withV(new Wire().tag('p').u8(0).u64(0x10n).u64(0x20n).ts(TS).u32(99).str('gid-1')),
    withV(new Wire().tag('K').u8(0).u64(0x10n).u64(0x20n).ts(TS).u32(99).str('gid-1')),
    withV(new Wire().tag('r').u8(0).u64(0x10n).u64(0x20n).ts(TS).ts(TS).u32(99).str('gid-1')),
  ];
}

const CORPUS_OUT = pgoutputCorpus(false);
const CORPUS_IN = pgoutputCorpus(true);
const PG_MUTATE_OUT: MutateOptions = { lengths: 'int32be', protect: 1, corpus: CORPUS_OUT };
const PG_MUTATE_IN: MutateOptions = { lengths: 'int32be', protect: 1, corpus: CORPUS_IN };

export const pgoutputTarget: FuzzTarget = {
  name: 'pgoutput',
  generate(rng) {
    const inStreamBlock = rng.chance(0.5);
    const protoVersion = 1 + rng.int(4);
    const corpus = inStreamBlock ? CORPUS_IN : CORPUS_OUT;
    const seed = rng.pick(corpus);
    const bytes = rng.chance(0.97) ? mutate(rng, seed, inStreamBlock ? PG_MUTATE_IN : PG_MUTATE_OUT) : seed;
    return { data: [bytes], params: { protoVersion, inStreamBlock } };
  },
  run(c) {
    decodePgoutput(c.data[0]!, {
      protoVersion: c.params.protoVersion as number,
      inStreamBlock: c.params.inStreamBlock as boolean,
    });
  },
};

// ---------------------------------------------------------------------------------------
// CopyData frames (XLogData around pgoutput messages, keepalives); a decoded XLogData's
// payload goes on through decodePgoutput, as in the replication client.

const COPY_CORPUS: Buffer[] = [
  ...CORPUS_OUT.map((m, i) => frames.xlog(0x16b3700n + BigInt(i), 0x16b3800n, TS, m)),
  frames.keepalive(0x16b3800n, TS, true),
  frames.keepalive(0x16b3800n, TS, false),
  frames.xlog(0n, 0n, TS, Buffer.alloc(0)),
];
const COPY_MUTATE: MutateOptions = { lengths: 'int32be', corpus: COPY_CORPUS };

export const copyDataTarget: FuzzTarget = {
  name: 'copydata',
  generate(rng) {
    const seed = rng.pick(COPY_CORPUS);
    return { data: [rng.chance(0.97) ? mutate(rng, seed, COPY_MUTATE) : seed], params: {} };
  },
  run(c) {
    const frame = decodeCopyData(c.data[0]!);
    if (frame.kind === 'w' && frame.payload.length > 0) {
      decodePgoutput(frame.payload, { protoVersion: 4, inStreamBlock: false });
    }
  },
};

// ---------------------------------------------------------------------------------------
// TransactionAssembler fed whole sequences (relations, plain and streamed transactions,
// sub-transaction aborts), a few of whose messages are mutated, dropped, repeated or swapped.

function assemblerScript(rng: Rng): Buffer[] {
  const out: Buffer[] = [
    pgo.relation(REL, 'public', 'items', 'd', REL_COLS),
    pgo.type(16_390, 'public', 'mood'),
  ];
  let lsn = 0x16b0000n;
  for (let t = 0, n = 1 + rng.int(3); t < n; t++) {
    lsn += 0x100n;
    if (rng.chance(0.6)) {
      out.push(pgo.begin(lsn, TS, 500 + t));
      for (let i = 0, rows = 1 + rng.int(4); i < rows; i++) {
        const m = rng.int(6);
        if (m === 0) out.push(pgo.insert(REL, rowCols(i)));
        else if (m === 1) out.push(pgo.update(REL, { new: [String(i), 'x', U, '1', 'infinity'] }));
        else if (m === 2)
          out.push(pgo.update(REL, { key: [String(i + 100), null, null, null, null], new: rowCols(i) }));
        else if (m === 3) out.push(pgo.delete(REL, { key: [String(i), null, null, null, null] }));
        else if (m === 4) out.push(pgo.truncate([REL], 0));
        else out.push(pgo.message(true, lsn - 1n, 'app', Buffer.from('m')));
      }
      out.push(pgo.commit(lsn, lsn + 0x30n, TS));
    } else {
      const xid = 900 + t;
      for (let seg = 0, segs = 1 + rng.int(3); seg < segs; seg++) {
        out.push(pgo.streamStart(xid, seg === 0));
        if (seg === 0) out.push(pgo.relation(REL, 'public', 'items', 'd', REL_COLS, xid));
        for (let i = 0, rows = 1 + rng.int(3); i < rows; i++) {
          const sub = rng.chance(0.3) ? xid + 1000 : xid;
          out.push(
            rng.chance(0.7) ? pgo.insert(REL, rowCols(i), sub) : pgo.update(REL, { new: rowCols(i) }, sub),
          );
        }
        out.push(pgo.streamStop());
      }
      if (rng.chance(0.2)) out.push(pgo.streamAbort(xid, xid + 1000));
      out.push(
        rng.chance(0.85)
          ? pgo.streamCommit(xid, lsn, lsn + 0x30n, TS)
          : pgo.streamAbort(xid, xid, { lsn, tsUs: TS }),
      );
    }
  }
  return out;
}

const ASM_MUTATE: MutateOptions = { lengths: 'int32be', protect: 1, corpus: [...CORPUS_OUT, ...CORPUS_IN] };
/** A sequence may yield at most this many outputs: more would mean the assembler invents events. */
const MAX_OUTPUTS = 10_000;

export const assemblerTarget: FuzzTarget = {
  name: 'assembler',
  generate(rng) {
    const msgs = assemblerScript(rng);
    const protoVersion = 2 + rng.int(3);
    for (let n = 1 + rng.int(3); n > 0; n--) {
      const at = rng.int(msgs.length);
      const op = rng.int(10);
      if (op < 7) msgs[at] = mutate(rng, msgs[at]!, ASM_MUTATE);
      else if (op === 7) msgs.splice(at, 1);
      else if (op === 8) msgs.splice(at, 0, msgs[at]!);
      else if (at + 1 < msgs.length) [msgs[at], msgs[at + 1]] = [msgs[at + 1]!, msgs[at]!];
    }
    return { data: msgs, params: { protoVersion } };
  },
  async run(c) {
    const spill = new MemorySpillStore();
    const asm = new TransactionAssembler({ protoVersion: c.params.protoVersion as number, spill });
    let outputs = 0;
    for (const payload of c.data) {
      for await (const _ of asm.push(payload)) {
        if (++outputs > MAX_OUTPUTS) throw new Error(`assembler yielded more than ${MAX_OUTPUTS} outputs`);
      }
    }
  },
};

// ---------------------------------------------------------------------------------------
// Avro: decodeEvent / decodeKey with a SchemaCache holding the real writer schemas of a
// table with many types, from valid encodings of events.

const ty = (oid: number, name: string, kind: TypeKind = 'base', more: Partial<PgType> = {}): PgType => ({
  oid,
  name,
  kind,
  ...more,
});

const VALUES: [string, PgType, string[]][] = [
  ['id', ty(20, 'int8'), ['1', '9223372036854775807', '-9223372036854775808', '9007199254740993']],
  ['tenant', ty(25, 'text'), ['acme', '', 'héllo ✓ 🐘']],
  ['flag', ty(16, 'bool'), ['t', 'f']],
  ['small', ty(21, 'int2'), ['-32768', '32767']],
  ['num4', ty(23, 'int4'), ['-2147483648', '2147483647']],
  ['o', ty(26, 'oid'), ['0', '4294967295']],
  ['f4', ty(700, 'float4'), ['NaN', '-0', 'Infinity', '1.17549435e-38', '3.4028235e+38']],
  ['f8', ty(701, 'float8'), ['NaN', '-0', '-Infinity', '2.2250738585072014e-308', '0.1']],
  ['b', ty(17, 'bytea'), ['\\x', '\\x00ff10', `\\x${'ab'.repeat(40)}`]],
  ['nm', ty(19, 'name'), ['pg_class']],
  ['vc', ty(1043, 'varchar'), ['abc']],
  ['bp', ty(1042, 'bpchar'), ['ab  ']],
  ['d', ty(1082, 'date'), ['2024-02-29', '0044-03-15 BC', '5874897-12-31', 'infinity', '-infinity']],
  ['ts', ty(1114, 'timestamp'), ['2024-01-02 03:04:05.123456', '0044-03-15 12:00:00 BC', 'infinity']],
  [
    'tstz',
    ty(1184, 'timestamptz'),
    [
      '2024-01-02 03:04:05.123456+00',
      '294276-12-31 23:59:59.999999+00',
      '-infinity',
      '4714-11-24 00:00:00+00 BC',
    ],
  ],
  ['u', ty(2950, 'uuid'), ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11']],
  ['num', ty(1700, 'numeric'), ['NaN', '-1.50', '123456789012345678901234567890.12345']],
  ['j', ty(3802, 'jsonb'), ['{"n": 123456789012345678901234567890.123}']],
  ['arr', ty(1007, 'int4[]', 'array', { elementOid: 23 }), ['{{1,NULL},{3,4}}', '{}']],
  ['mood', ty(16_390, 'public.mood', 'enum'), ['happy']],
  ['r', ty(3904, 'int4range', 'range'), ['[1,5)', 'empty']],
  ['iv', ty(1186, 'interval'), ['1 year 2 mons 3 days 04:05:06.789']],
  ['big text', ty(25, 'text'), ['x'.repeat(300)]],
];

export const AVRO_TABLE: TableSchema = {
  schema: 'public',
  table: 'every_type',
  columns: VALUES.map(([name, type]) => ({
    name,
    type,
    typmod: -1,
    isKey: name === 'id' || name === 'tenant',
  })),
  keyColumns: ['id', 'tenant'],
};
// A second version of the table, so that two envelopes and two keys are known.
const AVRO_TABLE_V2: TableSchema = {
  ...AVRO_TABLE,
  columns: AVRO_TABLE.columns.slice(0, 6),
  keyColumns: ['id'],
};

function randomRow(rng: Rng, table: TableSchema): Row {
  const row: Row = {};
  for (const col of table.columns) {
    const pool = VALUES.find(([n]) => n === col.name)![2];
    row[col.name] = !col.isKey && rng.chance(0.15) ? null : rng.pick(pool);
  }
  return row;
}

function randomEvent(rng: Rng, table: TableSchema, seq: number): ChangeEvent {
  const op = rng.pick(['c', 'u', 'd', 'r', 't'] as const);
  const row = randomRow(rng, table);
  const key: Row = {};
  for (const k of table.keyColumns) key[k] = row[k]!;
  const unchanged = op === 'u' && rng.chance(0.5) ? ['big text', 'b'].filter((c) => c in row) : [];
  return {
    op,
    schema: table.schema,
    table: table.table,
    position: { lsn: 0x16b3748n + BigInt(seq), seq: 1 + rng.int(1000) },
    xid: rng.u32(),
    commitTimeUs: TS + BigInt(seq),
    key: op === 't' ? {} : key,
    after: op === 'd' || op === 't' ? null : row,
    before: op === 'u' && rng.chance(0.3) ? randomRow(rng, table) : null,
    unchanged,
  };
}

export interface AvroFixture {
  readonly cache: SchemaCache;
  readonly events: Buffer[];
  readonly keys: Buffer[];
}

/** Valid encodings from TableCodec over both table versions; deterministic for a given rng. */
export function avroFixture(rng: Rng, count = 200): AvroFixture {
  const codecs = [new TableCodec(AVRO_TABLE), new TableCodec(AVRO_TABLE_V2)];
  const cache = new SchemaCache();
  for (const c of codecs) {
    cache.add(c.valueFingerprintHex, c.valueSchemaJson);
    cache.add(c.keyFingerprintHex, c.keySchemaJson);
  }
  const events: Buffer[] = [];
  const keys: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const codec = codecs[i % 5 === 0 ? 1 : 0]!;
    const e = randomEvent(rng, codec.table, i);
    events.push(codec.encodeEvent(e));
    if (e.op !== 't') keys.push(codec.encodeKey(e.key));
  }
  return { cache, events, keys };
}

/** The corpus is built from the run's seed, so a crash reproduces from (seed, index). */
export function avroTarget(fixtureSeed: number): FuzzTarget {
  const fixture = avroFixture(new Rng(fixtureSeed, 0xa7a0));
  const opts: MutateOptions = {
    lengths: 'varint',
    protect: 10,
    corpus: [...fixture.events, ...fixture.keys],
  };
  return {
    name: 'avro',
    generate(rng) {
      const isKey = rng.chance(0.25);
      const seed = rng.pick(isKey ? fixture.keys : fixture.events);
      const bytes = rng.chance(0.97) ? mutate(rng, seed, opts) : seed;
      return { data: [bytes], params: { isKey } };
    },
    run(c) {
      if (c.params.isKey) decodeKey(c.data[0]!, fixture.cache);
      else decodeEvent(c.data[0]!, fixture.cache);
    },
  };
}
