// Contiguity of a partition's offsets (issue 13): green never applies past a gap. The first
// record of a transaction must follow green's stored offset (the locked position row): an
// offset at or before `stored + 1` is a replay or the next record, and the skip rule sorts it.
// Skipped and dead-lettered records advance the stored offset too, so a partition's offsets
// are consecutive for teal's table topics (not compacted, no transactional control records).
// A partition that never stored anything starts at its earliest retained offset.

import { TealError } from '@teal/errors';

export type OffsetBreak =
  /** The records in between are still in Kafka: the fetch started at a wrong (stale) offset. */
  | { readonly kind: 'misplaced'; readonly next: bigint }
  /** Retention deleted `next .. earliest - 1` before green applied them. */
  | { readonly kind: 'expired'; readonly next: bigint; readonly earliest: bigint };

/** Whether a transaction starting at `first` needs the partition's earliest offset to be judged. */
export function followsStored(storedOffset: bigint, first: bigint): boolean {
  return first <= storedOffset + 1n;
}

/**
 * For a first offset past `storedOffset + 1`: undefined when it is still contiguous (nothing
 * stored yet and `first` is the earliest offset Kafka holds), else why it is not.
 */
export function offsetBreak(storedOffset: bigint, first: bigint, earliest: bigint): OffsetBreak | undefined {
  const next = storedOffset + 1n;
  if (first <= next) return undefined;
  if (storedOffset < 0n) return first === earliest ? undefined : { kind: 'misplaced', next: earliest };
  return earliest > next ? { kind: 'expired', next, earliest } : { kind: 'misplaced', next };
}

/** A batch fetched from the wrong offset: nothing of it is applied; the partition reads again from `next`. */
export class MisplacedFetch extends Error {
  readonly retriable = true;
  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly next: bigint,
    first: bigint,
  ) {
    super(
      `${topic}[${partition}]: a batch starts at offset ${first}, green expects ${next}; reading again from ${next}`,
    );
  }
}

/** The partition stops here: nothing past the gap is applied until an operator decides. */
export function offsetGapError(
  topic: string,
  partition: number,
  storedOffset: bigint,
  earliest: bigint,
): TealError {
  return new TealError(
    'TEAL_OFFSET_GAP',
    `${topic}[${partition}]: green applied through offset ${storedOffset}, but the first offset Kafka still ` +
      `holds is ${earliest}: records ${storedOffset + 1n}..${earliest - 1n} were deleted (retention) before green ` +
      'applied them, and nothing after them is applied. Recover by re-snapshotting the table into green, or accept ' +
      `the loss explicitly: UPDATE teal.applied_position SET kafka_offset = ${earliest - 1n} WHERE topic = '${topic.replaceAll("'", "''")}' ` +
      `AND partition = ${partition} (the partition resumes within seconds)`,
    { retriable: false },
  );
}
