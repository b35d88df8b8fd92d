import { describe, expect, it } from 'vitest';
import {
  comparePosition,
  formatPosition,
  parsePosition,
  SNAPSHOT_SEQ_BASE,
  snapshotSeq,
} from './position.ts';

describe('positions', () => {
  it('sorts every snapshot row at an LSN before every stream event at the same LSN (a commit at the consistent point)', () => {
    const lsn = 0x16b374d848n;
    const lastRow = { lsn, seq: snapshotSeq(2 ** 52 - 1) };
    const firstRow = { lsn, seq: snapshotSeq(1) };
    const firstChange = { lsn, seq: 1 };
    expect(comparePosition(firstRow, lastRow)).toBe(-1);
    expect(comparePosition(lastRow, firstChange)).toBe(-1);
    expect(comparePosition({ lsn: lsn - 1n, seq: 9 }, firstRow)).toBe(-1);
    expect(comparePosition(lastRow, { lsn: lsn + 1n, seq: 1 })).toBe(-1);
  });

  it('keeps snapshot sequences safe integers and refuses ordinals outside them', () => {
    expect(snapshotSeq(1)).toBe(SNAPSHOT_SEQ_BASE + 1);
    expect(Number.isSafeInteger(snapshotSeq(2 ** 52 - 1))).toBe(true);
    expect(() => snapshotSeq(0)).toThrow(RangeError);
    expect(() => snapshotSeq(2 ** 52)).toThrow(RangeError);
  });

  it('round-trips a snapshot position through its text form', () => {
    const p = { lsn: 0x16b374d848n, seq: snapshotSeq(12) };
    expect(formatPosition(p)).toBe(`16/B374D848:${SNAPSHOT_SEQ_BASE + 12}`);
    expect(parsePosition(formatPosition(p))).toEqual(p);
    expect(() => parsePosition(`0/1:${SNAPSHOT_SEQ_BASE}`)).toThrow(RangeError);
  });
});
