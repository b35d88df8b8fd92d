import { describe, expect, it } from 'vitest';
import { sliceByBytes } from './group-batches.ts';
import { brokerSaidTooLarge, recordBytes, tooLargeError } from './record-size.ts';
import type { IncomingRecord } from './types.ts';

describe('record sizes', () => {
  it('counts key, value, headers and framing', () => {
    const bare = recordBytes({ topic: 't', key: Buffer.alloc(10), value: Buffer.alloc(100) });
    expect(bare).toBeGreaterThan(110);
    expect(
      recordBytes({ topic: 't', key: Buffer.alloc(10), value: Buffer.alloc(100), headers: { ab: 'cde' } }),
    ).toBe(bare + 5 + 10);
  });

  it("finds the broker's too-large answer in either client's nested errors", () => {
    expect(brokerSaidTooLarge({ type: 'MESSAGE_TOO_LARGE' })).toBe(true);
    expect(
      brokerSaidTooLarge({ name: 'KafkaJSNonRetriableError', cause: { type: 'RECORD_LIST_TOO_LARGE' } }),
    ).toBe(true);
    expect(brokerSaidTooLarge({ errors: [{ errors: [{ apiId: 'MESSAGE_TOO_LARGE' }] }] })).toBe(true);
    expect(brokerSaidTooLarge({ type: 'NOT_LEADER_FOR_PARTITION' })).toBe(false);
    const err = tooLargeError(new Error('refused'), [
      { topic: 'p.public.t', key: null, value: Buffer.alloc(5000) },
    ]);
    expect(err.code).toBe('TEAL_ROW_TOO_LARGE');
    expect(err.retriable).toBe(false);
    expect(err.message).toContain('--entity-name p.public.t --add-config max.message.bytes=');
  });

  it('slices a fetched batch by bytes, one record at least, in order', () => {
    const r = (offset: number, bytes: number): IncomingRecord => ({
      topic: 't',
      partition: 0,
      offset: BigInt(offset),
      key: null,
      value: Buffer.alloc(bytes),
      headers: {},
      timestampMs: 0,
    });
    const records = [r(0, 40), r(1, 40), r(2, 500), r(3, 10), r(4, 10)];
    expect(sliceByBytes(records, 100).map((s) => s.map((x) => Number(x.offset)))).toEqual([
      [0, 1],
      [2],
      [3, 4],
    ]);
    expect(sliceByBytes(records, 10_000)).toEqual([records]);
  });
});
