import { rootLogger } from '@teal/runtime';
import { describe, expect, it } from 'vitest';
import { GreenStateWriter } from './green-state-writer.ts';

/** A fake green: refuses while `down`, records what it took. */
function fakeGreen() {
  const green = {
    down: false,
    attempts: 0,
    written: [] as Array<[string, unknown]>,
    write(key: string, value: unknown) {
      return async () => {
        green.attempts++;
        await Promise.resolve();
        if (green.down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
        green.written.push([key, value]);
      };
    },
  };
  return green;
}

function writer() {
  const abort = new AbortController();
  const w = new GreenStateWriter({
    log: rootLogger().child({ test: 'green-state-writer' }),
    signal: abort.signal,
    initialDelayMs: 1,
    maxDelayMs: 4,
  });
  return { w, abort };
}

describe('GreenStateWriter', () => {
  it('returns at once and writes in the background', async () => {
    const green = fakeGreen();
    const { w } = writer();
    w.set('a', 1, green.write('a', 1));
    expect(green.written).toEqual([]);
    await w.idle(1_000);
    expect(green.written).toEqual([['a', 1]]);
    expect(w.reachability).toEqual({ reachable: true, pendingWrites: 0 });
  });

  it('while green is down retries with backoff, and the latest value of a key wins', async () => {
    const green = fakeGreen();
    green.down = true;
    const { w, abort } = writer();
    w.set('progress:t', 'chunk 1', green.write('progress:t', 'chunk 1'));
    w.set('status', 's1', green.write('status', 's1'));
    // Wait (by attempts, not time) until it has retried while down.
    while (green.attempts < 5) await new Promise((r) => setTimeout(r, 1));
    expect(w.reachability.reachable).toBe(false);
    expect(w.reachability.unreachableSince).toBeTypeOf('string');
    expect(w.reachability.lastError).toContain('ECONNREFUSED');
    w.set('progress:t', 'chunk 2', green.write('progress:t', 'chunk 2'));
    w.set('progress:t', 'done', green.write('progress:t', 'done'));
    w.set('status', 's2', green.write('status', 's2'));
    expect(w.peek('progress:t')).toBe('done');
    expect(w.pendingKeys().sort()).toEqual(['progress:t', 'status']);
    expect(green.written).toEqual([]);

    green.down = false;
    await w.idle(1_000);
    // Only the newest value of each key reached green, once.
    expect(green.written.sort()).toEqual([
      ['progress:t', 'done'],
      ['status', 's2'],
    ]);
    expect(w.reachability).toEqual({ reachable: true, pendingWrites: 0 });
    abort.abort();
  });

  it('keeps a value set while an older one of its key is being written', async () => {
    const green = fakeGreen();
    const { w } = writer();
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    w.set('k', 'old', async () => {
      await held;
      green.written.push(['k', 'old']);
    });
    await Promise.resolve();
    w.set('k', 'new', green.write('k', 'new'));
    release();
    await w.idle(1_000);
    expect(green.written).toEqual([
      ['k', 'old'],
      ['k', 'new'],
    ]);
  });

  it('idle() rejects after its timeout while green stays down, naming what waits', async () => {
    const green = fakeGreen();
    green.down = true;
    const { w, abort } = writer();
    w.set('slot:s', 1, green.write('slot:s', 1));
    await expect(w.idle(20)).rejects.toThrow(/slot:s/);
    abort.abort();
    await w.idle(1_000);
    expect(green.written).toEqual([]);
  });
});
