import { describe, expect, test } from 'vitest';
import { classifyError } from './error-policy.ts';
import { followsStored, MisplacedFetch, offsetBreak, offsetGapError } from './offset-contiguity.ts';

describe('offset contiguity against green stored offset', () => {
  test('the next offset, and replays at or before it, follow the stored offset', () => {
    expect(followsStored(41n, 42n)).toBe(true);
    expect(followsStored(41n, 10n)).toBe(true);
    expect(followsStored(41n, 41n)).toBe(true);
    expect(followsStored(41n, 43n)).toBe(false);
    expect(offsetBreak(41n, 42n, 0n)).toBeUndefined();
    expect(offsetBreak(41n, 5n, 0n)).toBeUndefined();
  });

  test('a first-ever batch starts at offset 0 or at the earliest offset retention left', () => {
    expect(followsStored(-1n, 0n)).toBe(true);
    expect(offsetBreak(-1n, 0n, 0n)).toBeUndefined();
    expect(offsetBreak(-1n, 500n, 500n)).toBeUndefined();
  });

  test('a first-ever batch past the earliest offset was fetched from a wrong place: read from the earliest', () => {
    expect(offsetBreak(-1n, 700n, 0n)).toEqual({ kind: 'misplaced', next: 0n });
    expect(offsetBreak(-1n, 700n, 500n)).toEqual({ kind: 'misplaced', next: 500n });
  });

  test('records after the stored offset still in Kafka: a stale fetch, read again from stored + 1', () => {
    expect(offsetBreak(41n, 50n, 0n)).toEqual({ kind: 'misplaced', next: 42n });
    // The earliest offset is exactly the next one: nothing was lost, the fetch was stale.
    expect(offsetBreak(41n, 50n, 42n)).toEqual({ kind: 'misplaced', next: 42n });
  });

  test('records after the stored offset deleted by retention: a gap, whatever the batch starts at', () => {
    expect(offsetBreak(41n, 43n, 43n)).toEqual({ kind: 'expired', next: 42n, earliest: 43n });
    expect(offsetBreak(41n, 900n, 100n)).toEqual({ kind: 'expired', next: 42n, earliest: 100n });
  });

  test('the gap error says what happened and how to recover', () => {
    const err = offsetGapError("t.o'x", 3, 41n, 100n);
    expect(err.code).toBe('TEAL_OFFSET_GAP');
    expect(err.retriable).toBe(false);
    expect(err.message).toContain("t.o'x[3]");
    expect(err.message).toContain('applied through offset 41');
    expect(err.message).toContain('first offset Kafka still holds is 100');
    expect(err.message).toContain('records 42..99 were deleted');
    expect(err.message).toContain('re-snapshotting the table');
    expect(err.message).toContain(
      "UPDATE teal.applied_position SET kafka_offset = 99 WHERE topic = 't.o''x' AND partition = 3",
    );
  });

  test('a gap blocks the partition (it waits for the operator); a misplaced fetch is transient', () => {
    expect(classifyError(offsetGapError('t', 0, 1n, 5n))).toBe('blocked');
    expect(classifyError(new MisplacedFetch('t', 0, 2n, 9n))).toBe('transient');
  });
});
