import { comparePosition, type Position } from '@teal/change-event';
import type { StoredPosition } from '@teal/postgres';
import type { BatchItem } from './batch-item.ts';

// The effectively-once rule (brief item 1), used with the position cached at the start of a
// batch (to skip decoding and transforming replays) and with the locked position row inside
// the transaction (which is authoritative): a record at or below the stored offset or
// position is skipped, and its offset still advances.

/** A Kafka offset green's position already covers; checked before the record is decoded. */
export function offsetCovered(stored: StoredPosition, offset: bigint): boolean {
  return offset <= stored.kafkaOffset;
}

/** The skip rule: a replay (a restarted producer, a re-delivered batch) is passed over. */
export function isSkipped(stored: StoredPosition, offset: bigint, position: Position): boolean {
  return offsetCovered(stored, offset) || comparePosition(position, stored.position) <= 0;
}

/**
 * The planned items of a transaction that are written: those the skip rule keeps, less those
 * positioned at or before the last truncate green applied for the topic (by any partition),
 * whose rows that truncate already removed.
 */
export function itemsToApply(
  items: readonly BatchItem[],
  stored: StoredPosition,
  truncated: Position | undefined,
): BatchItem[] {
  const fresh = items.filter(
    (i) => i.plan && i.event && !isSkipped(stored, i.record.offset, i.event.position),
  );
  return truncated ? fresh.filter((i) => comparePosition(i.event!.position, truncated) > 0) : fresh;
}

/**
 * The position a transaction over `items` (not empty) stores: its last offset and its highest
 * event position, never below what was stored. Skipped and dead-lettered records count too.
 */
export function nextStored(stored: StoredPosition, items: readonly BatchItem[]): StoredPosition {
  let position = stored.position;
  for (const i of items)
    if (i.event && comparePosition(i.event.position, position) > 0) position = i.event.position;
  const last = items[items.length - 1].record.offset;
  return { kafkaOffset: last > stored.kafkaOffset ? last : stored.kafkaOffset, position };
}
