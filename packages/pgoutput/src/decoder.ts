import { ByteReader, malformed } from './byte-reader.ts';
import {
  NULL_VALUE,
  type PgoutputMessage,
  type RelationColumn,
  type ReplicaIdentity,
  type TupleData,
  type TupleValue,
  UNCHANGED_VALUE,
} from './messages.ts';

export interface DecodeOptions {
  /** The proto_version given to START_REPLICATION (1-4). */
  readonly protoVersion: number;
  /** Between Stream Start and Stream Stop, where data messages carry a leading xid. */
  readonly inStreamBlock: boolean;
}

// Decodes one pgoutput message (the payload of one XLogData). Pure: bytes in, value out.
// Grammar: PostgreSQL docs "Logical Replication Message Formats" (quoted above each case)
// and src/backend/replication/logical/proto.c. Any malformed or truncated input throws
// TealError TEAL_PGOUTPUT_MALFORMED.
export function decodePgoutput(buf: Buffer, opts: DecodeOptions): PgoutputMessage {
  if (buf.length === 0) throw malformed('pgoutput message', 'empty payload');
  const tag = String.fromCharCode(buf[0]!);
  const r = new ByteReader(buf, `pgoutput message '${tag}'`);
  r.pos = 1;
  // "Xid of the transaction (only present for streamed transactions). This field is
  // available since protocol version 2." — on R, Y, I, U, D, T and M.
  // (A module function, not a closure: this runs per change, and tsx's keepNames wraps
  // every closure it creates in a defineProperty call.)
  const streamXid = readStreamXid;
  let msg: PgoutputMessage;
  switch (tag) {
    // Begin: Byte1('B') Int64 final LSN, Int64 commit timestamp, Int32 xid.
    case 'B':
      msg = {
        tag: 'begin',
        finalLsn: r.u64('final LSN'),
        commitTimeUs: r.timestampUs('commit time'),
        xid: r.u32('xid'),
      };
      break;
    // Message: Byte1('M') [Int32 xid] Int8 flags (1 = transactional), Int64 LSN, String prefix,
    // Int32 content length, Byten content.
    case 'M': {
      const xid = streamXid(r, opts);
      const flags = r.u8('flags');
      const lsn = r.u64('LSN');
      const prefix = r.cstring('prefix');
      const content = r.bytes(r.i32('content length'), 'content');
      msg = {
        tag: 'message',
        ...(xid === undefined ? {} : { xid }),
        transactional: (flags & 1) === 1,
        lsn,
        prefix,
        content,
      };
      break;
    }
    // Commit: Byte1('C') Int8 flags (unused), Int64 commit LSN, Int64 end LSN, Int64 commit timestamp.
    case 'C':
      msg = {
        tag: 'commit',
        flags: r.u8('flags'),
        commitLsn: r.u64('commit LSN'),
        endLsn: r.u64('end LSN'),
        commitTimeUs: r.timestampUs('commit time'),
      };
      break;
    // Origin: Byte1('O') Int64 commit LSN on the origin server, String origin name.
    case 'O':
      msg = { tag: 'origin', originLsn: r.u64('origin LSN'), name: r.cstring('origin name') };
      break;
    // Relation: Byte1('R') [Int32 xid] Int32 relation oid, String namespace ("" for pg_catalog),
    // String name, Int8 replica identity, Int16 column count, then per column: Int8 flags
    // (1 = part of the key), String name, Int32 type oid, Int32 atttypmod.
    case 'R': {
      const xid = streamXid(r, opts);
      const relationId = r.u32('relation id');
      const namespace = r.cstring('namespace');
      const name = r.cstring('relation name');
      const ident = String.fromCharCode(r.u8('replica identity'));
      if (ident !== 'd' && ident !== 'n' && ident !== 'f' && ident !== 'i') {
        throw malformed(r.what, `unknown replica identity ${JSON.stringify(ident)}`);
      }
      const count = r.i16('column count');
      if (count < 0) throw malformed(r.what, `negative column count ${count}`);
      const columns: RelationColumn[] = [];
      for (let i = 0; i < count; i++) {
        const flags = r.u8('column flags');
        columns.push({
          flags,
          isKey: (flags & 1) === 1,
          name: r.cstring('column name'),
          typeOid: r.u32('column type oid'),
          typmod: r.i32('column typmod'),
        });
      }
      msg = {
        tag: 'relation',
        ...(xid === undefined ? {} : { xid }),
        relationId,
        namespace,
        name,
        replicaIdentity: ident as ReplicaIdentity,
        columns,
      };
      break;
    }
    // Type: Byte1('Y') [Int32 xid] Int32 type oid, String namespace, String name.
    case 'Y': {
      const xid = streamXid(r, opts);
      msg = {
        tag: 'type',
        ...(xid === undefined ? {} : { xid }),
        typeOid: r.u32('type oid'),
        namespace: r.cstring('namespace'),
        name: r.cstring('type name'),
      };
      break;
    }
    // Insert: Byte1('I') [Int32 xid] Int32 relation oid, Byte1('N'), TupleData.
    case 'I': {
      const xid = streamXid(r, opts);
      const relationId = r.u32('relation id');
      expectByte(r, 'N', 'new tuple marker');
      const newTuple = readTuple(r);
      msg =
        xid === undefined
          ? { tag: 'insert', relationId, newTuple }
          : { tag: 'insert', xid, relationId, newTuple };
      break;
    }
    // Update: Byte1('U') [Int32 xid] Int32 relation oid, optionally Byte1('K') TupleData (old key,
    // when the key changed) or Byte1('O') TupleData (old row, REPLICA IDENTITY FULL),
    // then Byte1('N') TupleData.
    case 'U': {
      const xid = streamXid(r, opts);
      const relationId = r.u32('relation id');
      let marker = String.fromCharCode(r.u8('tuple marker'));
      let keyTuple: TupleData | undefined;
      let oldTuple: TupleData | undefined;
      if (marker === 'K' || marker === 'O') {
        const old = readTuple(r);
        if (marker === 'K') keyTuple = old;
        else oldTuple = old;
        marker = String.fromCharCode(r.u8('new tuple marker'));
      }
      if (marker !== 'N')
        throw malformed(r.what, `expected 'N' before the new tuple, got ${JSON.stringify(marker)}`);
      const newTuple = readTuple(r);
      msg =
        xid === undefined && !keyTuple && !oldTuple
          ? { tag: 'update', relationId, newTuple }
          : {
              tag: 'update',
              ...(xid === undefined ? {} : { xid }),
              relationId,
              ...(keyTuple ? { keyTuple } : {}),
              ...(oldTuple ? { oldTuple } : {}),
              newTuple,
            };
      break;
    }
    // Delete: Byte1('D') [Int32 xid] Int32 relation oid, Byte1('K') or Byte1('O'), TupleData.
    case 'D': {
      const xid = streamXid(r, opts);
      const relationId = r.u32('relation id');
      const marker = String.fromCharCode(r.u8('tuple marker'));
      if (marker !== 'K' && marker !== 'O') {
        throw malformed(r.what, `expected 'K' or 'O' before the old tuple, got ${JSON.stringify(marker)}`);
      }
      const old = readTuple(r);
      msg = {
        tag: 'delete',
        ...(xid === undefined ? {} : { xid }),
        relationId,
        ...(marker === 'K' ? { keyTuple: old } : { oldTuple: old }),
      };
      break;
    }
    // Truncate: Byte1('T') [Int32 xid] Int32 relation count, Int8 options (1 = CASCADE,
    // 2 = RESTART IDENTITY), Int32 relation oid * count.
    case 'T': {
      const xid = streamXid(r, opts);
      const count = r.i32('relation count');
      if (count < 0) throw malformed(r.what, `negative relation count ${count}`);
      const options = r.u8('options');
      const relationIds: number[] = [];
      for (let i = 0; i < count; i++) relationIds.push(r.u32('relation id'));
      msg = {
        tag: 'truncate',
        ...(xid === undefined ? {} : { xid }),
        cascade: (options & 1) === 1,
        restartIdentity: (options & 2) === 2,
        relationIds,
      };
      break;
    }
    // Stream Start: Byte1('S') Int32 xid, Int8 1 if this is the first segment for the xid.
    case 'S':
      requireVersion(r, opts, 2);
      msg = { tag: 'stream_start', xid: r.u32('xid'), firstSegment: r.u8('first segment') === 1 };
      break;
    // Stream Stop: Byte1('E').
    case 'E':
      requireVersion(r, opts, 2);
      msg = { tag: 'stream_stop' };
      break;
    // Stream Commit: Byte1('c') Int32 xid, Int8 flags (unused), Int64 commit LSN, Int64 end LSN,
    // Int64 commit timestamp.
    case 'c':
      requireVersion(r, opts, 2);
      msg = {
        tag: 'stream_commit',
        xid: r.u32('xid'),
        flags: r.u8('flags'),
        commitLsn: r.u64('commit LSN'),
        endLsn: r.u64('end LSN'),
        commitTimeUs: r.timestampUs('commit time'),
      };
      break;
    // Stream Abort: Byte1('A') Int32 xid, Int32 subtransaction xid, and since protocol 4 —
    // "present only when streaming is set to parallel" — Int64 abort LSN, Int64 abort timestamp.
    // The message length is what tells the two shapes apart.
    case 'A': {
      requireVersion(r, opts, 2);
      const xid = r.u32('xid');
      const subxid = r.u32('subxid');
      if (opts.protoVersion >= 4 && r.remaining > 0) {
        msg = {
          tag: 'stream_abort',
          xid,
          subxid,
          abortLsn: r.u64('abort LSN'),
          abortTimeUs: r.timestampUs('abort time'),
        };
      } else {
        msg = { tag: 'stream_abort', xid, subxid };
      }
      break;
    }
    // Begin Prepare: Byte1('b') Int64 prepare LSN, Int64 end LSN, Int64 prepare timestamp,
    // Int32 xid, String gid.
    case 'b':
      requireVersion(r, opts, 3);
      msg = {
        tag: 'begin_prepare',
        prepareLsn: r.u64('prepare LSN'),
        endLsn: r.u64('end LSN'),
        prepareTimeUs: r.timestampUs('prepare time'),
        xid: r.u32('xid'),
        gid: r.cstring('gid'),
      };
      break;
    // Prepare ('P') / Stream Prepare ('p'): Int8 flags, Int64 prepare LSN, Int64 end LSN,
    // Int64 prepare timestamp, Int32 xid, String gid.
    case 'P':
    case 'p':
      requireVersion(r, opts, 3);
      msg = {
        tag: tag === 'P' ? 'prepare' : 'stream_prepare',
        flags: r.u8('flags'),
        prepareLsn: r.u64('prepare LSN'),
        endLsn: r.u64('end LSN'),
        prepareTimeUs: r.timestampUs('prepare time'),
        xid: r.u32('xid'),
        gid: r.cstring('gid'),
      };
      break;
    // Commit Prepared: Byte1('K') Int8 flags, Int64 commit LSN, Int64 end LSN, Int64 commit
    // timestamp, Int32 xid, String gid.
    case 'K':
      requireVersion(r, opts, 3);
      msg = {
        tag: 'commit_prepared',
        flags: r.u8('flags'),
        commitLsn: r.u64('commit LSN'),
        endLsn: r.u64('end LSN'),
        commitTimeUs: r.timestampUs('commit time'),
        xid: r.u32('xid'),
        gid: r.cstring('gid'),
      };
      break;
    // Rollback Prepared: Byte1('r') Int8 flags, Int64 prepare end LSN, Int64 rollback end LSN,
    // Int64 prepare timestamp, Int64 rollback timestamp, Int32 xid, String gid.
    case 'r':
      requireVersion(r, opts, 3);
      msg = {
        tag: 'rollback_prepared',
        flags: r.u8('flags'),
        prepareEndLsn: r.u64('prepare end LSN'),
        rollbackEndLsn: r.u64('rollback end LSN'),
        prepareTimeUs: r.timestampUs('prepare time'),
        rollbackTimeUs: r.timestampUs('rollback time'),
        xid: r.u32('xid'),
        gid: r.cstring('gid'),
      };
      break;
    default:
      throw malformed(
        'pgoutput message',
        `unknown message type byte 0x${buf[0]!.toString(16).padStart(2, '0')}`,
      );
  }
  r.end();
  return msg;
}

function readStreamXid(r: ByteReader, opts: DecodeOptions): number | undefined {
  return opts.inStreamBlock ? r.u32('xid') : undefined;
}

function requireVersion(r: ByteReader, opts: DecodeOptions, min: number): void {
  if (opts.protoVersion < min)
    throw malformed(r.what, `needs protocol version ${min}, stream uses ${opts.protoVersion}`);
}

function expectByte(r: ByteReader, expected: string, field: string): void {
  const got = String.fromCharCode(r.u8(field));
  if (got !== expected)
    throw malformed(r.what, `expected ${JSON.stringify(expected)} as ${field}, got ${JSON.stringify(got)}`);
}

// TupleData: Int16 column count, then per column Byte1 kind: 'n' (null), 'u' (unchanged
// TOASTed value, the value itself is not sent), 't' (Int32 length, Byten text in the type's
// output format), 'b' (Int32 length, Byten binary, only with binary = true).
function readTuple(r: ByteReader): TupleData {
  const count = r.i16('tuple column count');
  if (count < 0) throw malformed(r.what, `negative tuple column count ${count}`);
  const values: TupleValue[] = [];
  for (let i = 0; i < count; i++) {
    const kind = r.u8('tuple column kind');
    switch (kind) {
      case 0x6e: // 'n'
        values.push(NULL_VALUE);
        break;
      case 0x75: // 'u'
        values.push(UNCHANGED_VALUE);
        break;
      case 0x74: // 't'
        values.push({ kind: 'text', value: r.utf8(r.i32('text length'), 'text value') });
        break;
      case 0x62: // 'b'
        values.push({ kind: 'binary', value: r.bytes(r.i32('binary length'), 'binary value') });
        break;
      default:
        throw malformed(r.what, `unknown tuple column kind 0x${kind.toString(16)} at offset ${r.pos - 1}`);
    }
  }
  return values;
}
