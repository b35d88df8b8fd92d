import type { CutoverReport } from '@teal/control';
import { describe, expect, it } from 'vitest';
import { formatCutover } from './render.ts';

describe('formatCutover', () => {
  it('shows the dead letters per table and what the fence could not stop', () => {
    const report: CutoverReport = {
      safeToSwitch: false,
      fenced: true,
      drainLsn: null,
      deadLetters: { total: 3, tables: [{ table: 'public.orders', count: 3 }] },
      fenceHoles: {
        preparedTransactions: [{ gid: 'pay-7', owner: 'shop', prepared: '2026-12-01T09:59:00+00:00' }],
        sessions: [
          { pid: 4242, usename: null, applicationName: 'cron', backendType: 'worker', backendStart: 'T0' },
        ],
      },
      steps: [{ name: 'fence', ok: false, ms: 3, details: 'blue is fenced but can still change' }],
      sequences: [],
      verify: null,
      warnings: [],
    };
    const text = formatCutover(report);
    expect(text).toMatch(/public\.orders\s+3/);
    expect(text).toMatch(/pay-7\s+shop\s+2026-12-01T09:59:00\+00:00/);
    expect(text).toMatch(/4242\s+cron\s+worker\s+T0/);
    expect(text).toMatch(/NOT SAFE TO SWITCH/);
  });
});
