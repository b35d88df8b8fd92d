import { TealError } from '@teal/errors';
import { describe, expect, it } from 'vitest';
import { withRetry } from './retry.ts';

const transient = () => new TealError('TEAL_REPLICATION_CONNECTION_LOST', 'gone');

describe('withRetry', () => {
  it('doubles the delay on each failure and starts again from the first step after progress', async () => {
    const delays: number[] = [];
    let calls = 0;
    // Calls 1-3 fail without progress, call 4 "streamed" before it failed, call 5 succeeds.
    const progressAfter = new Set([4]);
    const result = await withRetry(
      async () => {
        calls++;
        if (calls < 5) throw transient();
        return 'ok';
      },
      {
        initialDelayMs: 1,
        maxDelayMs: 1_000,
        madeProgress: () => progressAfter.has(calls),
        onRetry: (_err, _attempt, delayMs) => delays.push(delayMs),
      },
    );
    expect(result).toBe('ok');
    // Jitter keeps each delay in [half, whole] of its step: 1, 2, 4 ms, then 1 ms again.
    const steps = [1, 2, 4, 1];
    expect(delays).toHaveLength(4);
    delays.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(steps[i] / 2);
      expect(d).toBeLessThanOrEqual(steps[i]);
    });
  });

  it('gives up at once on an error that is not retriable', async () => {
    let calls = 0;
    const permanent = new TealError('TEAL_SLOT_MISSING', 'gone');
    await expect(
      withRetry(async () => {
        calls++;
        throw permanent;
      }),
    ).rejects.toBe(permanent);
    expect(calls).toBe(1);
  });
});
