import { formatLsn, type Lsn, parseLsn } from './lsn.ts';

// Every event carries its position: the LSN of its transaction's commit record and its
// sequence within that transaction. Positions order the events of one topic-partition;
// the consumer stores the highest applied position per partition in green, in the same
// transaction as the rows, and skips any record at or below it (a replay).
//
// Snapshot rows ('r') use the LSN the snapshot is consistent at (the slot's consistent
// point, or a chunk's high watermark) and a negative sequence, SNAPSHOT_SEQ_BASE + ordinal.
// A transaction whose commit record starts exactly at that LSN is decoded but is not in the
// snapshot (PostgreSQL's snapshot builder exports the state before it); its events carry
// sequences from 1, so every snapshot row sorts strictly before them, whatever the ordinal.
export interface Position {
  readonly lsn: Lsn;
  readonly seq: number;
}

export const ZERO_POSITION: Position = Object.freeze({ lsn: 0n, seq: 0 });

/** -2^52: ordinals 1 .. 2^52 - 1 map to negative safe integers (a bigint column and an Avro long hold them). */
export const SNAPSHOT_SEQ_BASE = -(2 ** 52);

/** The sequence of a snapshot row with this 1-based ordinal: below every stream sequence at the same LSN. */
export function snapshotSeq(ordinal: number): number {
  if (!Number.isSafeInteger(ordinal) || ordinal < 1 || ordinal >= -SNAPSHOT_SEQ_BASE)
    throw new RangeError(`snapshot ordinal out of range: ${ordinal}`);
  return SNAPSHOT_SEQ_BASE + ordinal;
}

export function comparePosition(a: Position, b: Position): -1 | 0 | 1 {
  if (a.lsn !== b.lsn) return a.lsn < b.lsn ? -1 : 1;
  return a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0;
}

/** "16/B374D848:12" — the form used in Kafka headers, logs and the API. */
export function formatPosition(p: Position): string {
  return `${formatLsn(p.lsn)}:${p.seq}`;
}

export function parsePosition(text: string): Position {
  const colon = text.lastIndexOf(':');
  if (colon < 0) throw new RangeError(`not a teal position: ${JSON.stringify(text)} (expected "LSN:seq")`);
  const seq = Number(text.slice(colon + 1));
  if (!Number.isSafeInteger(seq) || seq <= SNAPSHOT_SEQ_BASE)
    throw new RangeError(`bad sequence in position ${JSON.stringify(text)}`);
  return { lsn: parseLsn(text.slice(0, colon)), seq };
}
