import { describe, expect, it } from 'vitest';
import { count, duration, progressLine, RateTracker, TableProgress } from './progress.ts';

describe('progressLine', () => {
  it('shows the bar, percent, rows done of estimated, rate and ETA', () => {
    expect(
      progressLine('public.users', { done: 5_000, total: 10_000, rate: 2_100.4, etaSeconds: 2.4 }, 14),
    ).toBe('public.users   [##########..........]  50%  5,000/10,000 rows  2,100 rows/s  ETA 2s');
  });

  it('says done at the end, ? for an unknown estimate, nothing for a rate not measured yet', () => {
    expect(progressLine('t', { done: 7, total: 7, rate: 3, etaSeconds: 0 }, 2)).toBe(
      't  [####################] 100%  7/7 rows  3 rows/s  done',
    );
    expect(progressLine('t', { done: 7, total: 0, rate: null, etaSeconds: null }, 2)).toBe(
      't  [????????????????????]    ?  7/? rows',
    );
  });

  it('never overfills when the estimate was low (reltuples is an estimate)', () => {
    expect(progressLine('t', { done: 150, total: 100, rate: null, etaSeconds: null }, 1)).toMatch(
      /^t \[#{20}\] 100% {2}150\/100 rows {2}done$/,
    );
  });

  it('groups digits and writes durations the way an operator reads them', () => {
    expect(count(12_345_678)).toBe('12,345,678');
    expect(count(999)).toBe('999');
    expect([duration(42), duration(312), duration(7_300)]).toEqual(['42s', '5m12s', '2h01m']);
  });
});

describe('RateTracker', () => {
  it('measures the rate since a table was first seen and the time left at that rate', () => {
    const r = new RateTracker();
    expect(r.figures('t', 1_000, 11_000, 0)).toEqual({
      done: 1_000,
      total: 11_000,
      rate: null,
      etaSeconds: null,
    });
    expect(r.figures('t', 3_000, 11_000, 2_000)).toEqual({
      done: 3_000,
      total: 11_000,
      rate: 1_000,
      etaSeconds: 8,
    });
    // A table whose count went back (a snapshot restarted) starts over.
    expect(r.figures('t', 10, 11_000, 3_000).rate).toBeNull();
  });
});

function stream(isTTY: boolean) {
  let text = '';
  return { isTTY, columns: 120, write: (t: string) => (text += t), text: () => text };
}

describe('TableProgress', () => {
  it('off a terminal: no redraws, one plain line per table at the end', () => {
    const out = stream(false);
    let now = 0;
    const p = new TableProgress(out, { labelWidth: 13, now: () => now });
    p.update('public.users', 0, 100);
    now = 2_000;
    p.update('public.users', 100, 100);
    p.update('public.orders', 40, 0);
    expect(out.text()).toBe('');
    p.stop();
    expect(out.text().split('\n')).toEqual([
      'public.users  [####################] 100%  100/100 rows  50 rows/s  done  (2.0 s)',
      'public.orders [????????????????????]    ?  40/? rows  (0.0 s)',
      '',
    ]);
  });

  it('on a terminal: a bar per table, redrawn in place, the last frame left on screen', () => {
    const out = stream(true);
    const p = new TableProgress(out, { labelWidth: 13 });
    expect(p.interactive).toBe(true);
    p.update('public.users', 10, 100);
    p.update('public.orders', 0, 50);
    p.update('public.users', 100, 100);
    p.stop();
    const text = out.text();
    expect(text).toContain('public.users  [####################] 100%  100/100 rows');
    expect(text).toContain('public.orders [....................]   0%  0/50 rows');
    // Lines redrawn from column 1 and cleared to the right, one line per table, not one per update.
    const esc = String.fromCharCode(27);
    expect(text).toContain(`${esc}[1Gpublic.users `);
    expect(text).toContain(`${esc}[0K`);
    expect(text.split('\n')).toHaveLength(3);
  });
});
