import { describe, expect, it } from 'vitest';
import { FlushTracker } from './flush-tracker.ts';

describe('FlushTracker', () => {
  it('confirms a commit only when every batch up to its last record is acked', () => {
    const t = new FlushTracker(100n);
    t.begin();
    t.recordAdded();
    const b1 = t.seal();
    t.recordAdded();
    expect(t.commit(200n)).toBeUndefined();
    const b2 = t.seal();
    expect(t.ack(b2)).toBeUndefined(); // out of order: batch 1 still pending
    expect(t.confirmed).toBe(100n);
    expect(t.ack(b1)).toBe(200n);
    expect(t.idle).toBe(true);
  });

  it('does not confirm a later commit while an earlier transaction is unacked', () => {
    const t = new FlushTracker(0n);
    t.begin();
    t.recordAdded();
    t.commit(10n);
    const b1 = t.seal();
    t.begin();
    t.recordAdded();
    t.commit(20n);
    const b2 = t.seal();
    expect(t.ack(b2)).toBeUndefined();
    expect(t.ack(b1)).toBe(20n);
  });

  it('confirms keepalive positions only between transactions and after pending acks', () => {
    const t = new FlushTracker(0n);
    expect(t.between(5n)).toBe(5n);
    t.begin();
    t.recordAdded();
    expect(t.between(50n)).toBeUndefined();
    t.commit(60n);
    expect(t.between(70n)).toBeUndefined();
    expect(t.ack(t.seal())).toBe(70n);
  });

  it('an empty transaction is confirmable at once when nothing is pending', () => {
    const t = new FlushTracker(0n);
    t.begin();
    expect(t.commit(42n)).toBe(42n);
  });

  it('never moves backwards and stops confirming after a failure', () => {
    const t = new FlushTracker(100n);
    expect(t.between(90n)).toBeUndefined();
    expect(t.confirmed).toBe(100n);
    t.begin();
    t.recordAdded();
    t.commit(300n);
    const b = t.seal();
    t.fail();
    expect(t.ack(b)).toBeUndefined();
    expect(t.confirmed).toBe(100n);
  });

  it('runs afterAck callbacks once the records before them are acked', () => {
    const t = new FlushTracker(0n);
    const calls: string[] = [];
    t.recordAdded();
    t.afterAck(() => calls.push('chunk'));
    expect(calls).toEqual([]);
    t.ack(t.seal());
    expect(calls).toEqual(['chunk']);
  });
});
