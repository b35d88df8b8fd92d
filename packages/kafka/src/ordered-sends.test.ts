import { describe, expect, test } from 'vitest';
import { OrderedSends } from './ordered-sends.ts';

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('OrderedSends', () => {
  test('concurrent sends run one at a time in call order, whatever their durations', async () => {
    const queue = new OrderedSends();
    const log: string[] = [];
    let running = 0;
    const sends = [30, 1, 15, 0, 5].map((ms, i) =>
      queue.run(async () => {
        running++;
        expect(running).toBe(1);
        log.push(`start ${i}`);
        await tick(ms);
        log.push(`end ${i}`);
        running--;
      }),
    );
    await Promise.all(sends);
    expect(log).toEqual([0, 1, 2, 3, 4].flatMap((i) => [`start ${i}`, `end ${i}`]));
  });

  test('a failed send rejects the sends queued behind it unsent; later sends go through', async () => {
    const queue = new OrderedSends();
    const sent: number[] = [];
    let failures = 0;
    const send = (n: number, fail = false) =>
      queue.run(
        async () => {
          await tick(1);
          if (fail) throw new Error(`broker refused ${n}`);
          sent.push(n);
        },
        () => failures++,
      );
    const first = send(1);
    const failing = send(2, true);
    const queued = [send(3), send(4)];
    await expect(first).resolves.toBeUndefined();
    await expect(failing).rejects.toThrow('broker refused 2');
    for (const q of queued)
      await expect(q).rejects.toMatchObject({ code: 'TEAL_KAFKA_SEND_ABORTED', retriable: true });
    await send(5);
    expect(sent).toEqual([1, 5]);
    expect(failures).toBe(1);
  });
});
