import { type ChangeEvent, type Op, type Position, snapshotSeq } from '@teal/change-event';
import type { StoredPosition } from '@teal/postgres';
import { describe, expect, it } from 'vitest';
import type { BatchItem } from './batch-item.ts';
import { isSkipped, itemsToApply, nextStored, offsetCovered } from './skip-rule.ts';

const users = { schema: 'public', table: 'users' };
const at = (lsn: bigint, seq = 0): Position => ({ lsn, seq });
const stored: StoredPosition = { kafkaOffset: 10n, position: at(100n, 2) };

// An item as the applier holds it: decoded and planned unless `plain`.
function item(offset: bigint, position: Position, op: Op = 'u', plain = false): BatchItem {
  const event = { op, schema: 'public', table: 'users', position } as ChangeEvent;
  return {
    record: { topic: 't', partition: 0, offset, key: null, value: null, headers: {}, timestampMs: 0 },
    event,
    ...(plain ? {} : { plan: { op, table: users, keyColumns: ['id'], key: {}, row: null, partial: false } }),
  };
}

describe('the skip rule', () => {
  it('skips a record at or below the stored offset, whatever its position', () => {
    expect(offsetCovered(stored, 10n)).toBe(true);
    expect(offsetCovered(stored, 11n)).toBe(false);
    expect(isSkipped(stored, 10n, at(500n))).toBe(true);
    expect(isSkipped(stored, 3n, at(500n))).toBe(true);
  });

  it('skips a record at or below the stored position, whatever its offset (a replay from a restarted producer)', () => {
    expect(isSkipped(stored, 11n, at(100n, 2))).toBe(true);
    expect(isSkipped(stored, 11n, at(100n, 1))).toBe(true);
    expect(isSkipped(stored, 11n, at(99n, 9))).toBe(true);
  });

  it('keeps a record past both', () => {
    expect(isSkipped(stored, 11n, at(100n, 3))).toBe(false);
    expect(isSkipped(stored, 11n, at(101n))).toBe(false);
  });

  it('applies only the planned items it keeps, and none at or before an applied truncate', () => {
    const replay = item(11n, at(100n, 2));
    const unplanned = item(12n, at(150n), 'u', true);
    const beforeTruncate = item(13n, at(150n));
    const atTruncate = item(14n, at(200n), 't');
    const after = item(15n, at(250n));
    const items = [replay, unplanned, beforeTruncate, atTruncate, after];
    expect(itemsToApply(items, stored, undefined)).toEqual([beforeTruncate, atTruncate, after]);
    expect(itemsToApply(items, stored, at(200n))).toEqual([after]);
  });

  it('advances the offset past skipped records and never moves back', () => {
    expect(nextStored(stored, [item(9n, at(50n)), item(12n, at(90n))])).toEqual({
      kafkaOffset: 12n,
      position: at(100n, 2),
    });
    expect(nextStored(stored, [item(11n, at(300n)), item(8n, at(200n))])).toEqual({
      kafkaOffset: 10n,
      position: at(300n),
    });
  });

  it('applies a change committed at the consistent point after the snapshot rows positioned there', () => {
    const cp = 500n;
    const afterSnapshot: StoredPosition = { kafkaOffset: 40n, position: at(cp, snapshotSeq(41)) };
    expect(isSkipped(afterSnapshot, 41n, at(cp, 1))).toBe(false);
    expect(isSkipped(afterSnapshot, 41n, at(cp, snapshotSeq(7)))).toBe(true);
    expect(nextStored(afterSnapshot, [item(41n, at(cp, 1)), item(42n, at(cp, 2))]).position).toEqual(
      at(cp, 2),
    );
  });
});
