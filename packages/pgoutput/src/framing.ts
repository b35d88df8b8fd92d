import type { Lsn } from '@teal/change-event';
import { ByteReader, malformed, PG_EPOCH_OFFSET_US } from './byte-reader.ts';

// The CopyData payloads of a walsender in CopyBoth mode. Source: PostgreSQL docs,
// "Streaming Replication Protocol" (protocol-replication.html), START_REPLICATION.
// Whole CopyData messages only: node-postgres's pg-protocol Parser reassembles protocol
// messages split across socket chunks before emitting 'copyData' (see
// pg-protocol/src/parser.ts, mergeBuffer), so a payload here is always complete.

export interface XLogData {
  readonly kind: 'w';
  readonly walStart: Lsn;
  readonly walEnd: Lsn;
  /** Server clock at transmission, Unix microseconds. */
  readonly sendTimeUs: bigint;
  readonly payload: Buffer;
}

export interface PrimaryKeepalive {
  readonly kind: 'k';
  readonly walEnd: Lsn;
  readonly sendTimeUs: bigint;
  readonly replyRequested: boolean;
}

export type ReplicationFrame = XLogData | PrimaryKeepalive;

export function decodeCopyData(buf: Buffer): ReplicationFrame {
  if (buf.length === 0) throw malformed('replication CopyData', 'empty message');
  const r = new ByteReader(buf, `replication CopyData '${String.fromCharCode(buf[0]!)}'`);
  r.pos = 1;
  switch (buf[0]) {
    // XLogData: Byte1('w') Int64 start of the WAL data, Int64 current end of WAL on the server,
    // Int64 server clock at transmission (microseconds since 2000-01-01), Byten WAL data.
    case 0x77: {
      const walStart = r.u64('WAL start');
      const walEnd = r.u64('WAL end');
      const sendTimeUs = r.timestampUs('send time');
      // A view, not a copy: the caller decides what to keep (the client copies once).
      return { kind: 'w', walStart, walEnd, sendTimeUs, payload: buf.subarray(r.pos) };
    }
    // Primary keepalive: Byte1('k') Int64 current end of WAL, Int64 server clock,
    // Byte1 1 = "the client should reply to this message as soon as possible".
    case 0x6b: {
      const frame: PrimaryKeepalive = {
        kind: 'k',
        walEnd: r.u64('WAL end'),
        sendTimeUs: r.timestampUs('send time'),
        replyRequested: r.u8('reply requested') === 1,
      };
      r.end();
      return frame;
    }
    default:
      throw malformed(
        'replication CopyData',
        `unknown message type byte 0x${buf[0]!.toString(16).padStart(2, '0')}`,
      );
  }
}

export interface StandbyStatus {
  readonly written: Lsn;
  readonly flushed: Lsn;
  readonly applied: Lsn;
  readonly replyRequested?: boolean;
  /** Client clock, Unix microseconds; default now. */
  readonly nowUs?: bigint;
}

// Standby status update: Byte1('r') Int64 last WAL byte + 1 written, Int64 flushed,
// Int64 applied, Int64 client clock (microseconds since 2000-01-01), Byte1 reply requested.
// For a logical slot the server takes `flushed` as the new confirmed_flush_lsn.
export function encodeStandbyStatus(status: StandbyStatus): Buffer {
  const out = Buffer.alloc(34);
  const nowUs = status.nowUs ?? BigInt(Date.now()) * 1000n;
  out[0] = 0x72;
  out.writeBigUInt64BE(status.written, 1);
  out.writeBigUInt64BE(status.flushed, 9);
  out.writeBigUInt64BE(status.applied, 17);
  out.writeBigInt64BE(nowUs - PG_EPOCH_OFFSET_US, 25);
  out[33] = status.replyRequested ? 1 : 0;
  return out;
}
