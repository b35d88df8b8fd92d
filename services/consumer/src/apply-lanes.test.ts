import type { IncomingBatch } from '@teal/kafka';
import { rootLogger } from '@teal/runtime';
import { describe, expect, it } from 'vitest';
import { ApplyLanes } from './apply-lanes.ts';

function batch(partition: number, first: number): IncomingBatch {
  return {
    topic: 't',
    partition,
    highWatermark: 0n,
    records: [
      { topic: 't', partition, offset: BigInt(first), key: null, value: null, headers: {}, timestampMs: 0 },
    ],
  };
}

const log = rootLogger().child({ test: 'apply-lanes' });

describe('ApplyLanes', () => {
  it('applies one partition in order, one batch at a time, while the handler returns early', async () => {
    const order: string[] = [];
    let active = 0;
    const lanes = new ApplyLanes(
      async (b) => {
        active++;
        expect(active).toBe(1);
        await new Promise((r) => setTimeout(r, 5));
        order.push(`${b.partition}:${b.records[0].offset}`);
        active--;
      },
      { log, signal: new AbortController().signal },
    );
    await lanes.push(batch(0, 1));
    expect(order).toEqual([]); // returned before the apply finished
    await lanes.push(batch(0, 2));
    await lanes.push(batch(0, 3));
    await lanes.drain();
    expect(order).toEqual(['0:1', '0:2', '0:3']);
  });

  it('retries a failed batch in place before the next one; a handler waiting too long asks for a retry', async () => {
    const order: string[] = [];
    let failures = 2;
    const lanes = new ApplyLanes(
      async (b) => {
        if (b.records[0].offset === 1n && failures-- > 0) throw new Error('transient');
        order.push(String(b.records[0].offset));
      },
      { log, signal: new AbortController().signal, waitMs: 10 },
    );
    await lanes.push(batch(0, 1));
    await expect(lanes.push(batch(0, 2))).rejects.toMatchObject({
      code: 'TEAL_APPLY_BEHIND',
      retriable: true,
    });
    await lanes.drain();
    await lanes.push(batch(0, 2));
    await lanes.drain();
    expect(order).toEqual(['1', '2']);
  });
});
