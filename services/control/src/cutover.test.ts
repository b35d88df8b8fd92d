import { TealError } from '@teal/errors';
import { describe, expect, it } from 'vitest';
import { type CutoverSteps, runCutover } from './cutover.ts';
import type { VerifyReportView } from './types.ts';

function steps(over: Partial<CutoverSteps> = {}) {
  const calls: string[] = [];
  const track = <T>(name: string, value: T): T => {
    calls.push(name);
    return value;
  };
  const s: CutoverSteps = {
    fence: async () => track('fence', { fenced: true, database: 'app', terminatedSessions: 1 }),
    unfence: async () => track('unfence', { fenced: false, database: 'app', terminatedSessions: 0 }),
    drain: async () =>
      track('drain', {
        drained: true,
        lsn: '0/ABC',
        targetLsn: '0/ABC',
        confirmedLsn: '0/ABD',
        partitions: [],
        waitedMs: 1,
        fenced: false,
      }),
    copySequences: async () =>
      track('sequences', [
        { blue: 'public.t_id_seq', green: 'public.t_id_seq', value: '42', ok: true, note: null },
      ]),
    verify: async () => track('verify', { ok: true, tables: [] } as unknown as VerifyReportView),
    ...over,
  };
  return { s, calls };
}

const opts = { fence: true, timeoutMs: 10_000, verify: true, unfenceOnFailure: false };

describe('runCutover', () => {
  it('fences, drains, copies sequences and verifies, in order', async () => {
    const { s, calls } = steps();
    const report = await runCutover(s, opts);
    expect(calls).toEqual(['fence', 'drain', 'sequences', 'verify']);
    expect(report.safeToSwitch).toBe(true);
    expect(report.drainLsn).toBe('0/ABC');
    expect(report.sequences[0].value).toBe('42');
    expect(report.steps.map((x) => x.ok)).toEqual([true, true, true, true]);
  });

  it('stops at a failed drain, is not safe, and unfences when asked', async () => {
    const { s, calls } = steps({
      drain: async () => {
        throw new TealError('TEAL_DRAIN_TIMEOUT', 'behind', { status: 504 });
      },
    });
    const report = await runCutover(s, { ...opts, unfenceOnFailure: true });
    expect(calls).toEqual(['fence', 'unfence']);
    expect(report.safeToSwitch).toBe(false);
    expect(report.fenced).toBe(false);
    expect(report.steps.find((x) => x.name === 'drain')?.details).toMatch(/TEAL_DRAIN_TIMEOUT/);
  });

  it('is not safe when verify finds a difference, and stays fenced by default', async () => {
    const { s } = steps({
      verify: async () =>
        ({
          ok: false,
          tables: [{ blue: 'public.t', green: 'public.t', ok: false }],
        }) as unknown as VerifyReportView,
    });
    const report = await runCutover(s, opts);
    expect(report.safeToSwitch).toBe(false);
    expect(report.fenced).toBe(true);
    expect(report.warnings.join()).toMatch(/stays fenced/);
  });

  it('warns when not fenced and not verified', async () => {
    const { s, calls } = steps();
    const report = await runCutover(s, { ...opts, fence: false, verify: false });
    expect(calls).toEqual(['drain', 'sequences']);
    expect(report.safeToSwitch).toBe(true);
    expect(report.warnings).toHaveLength(2);
  });
});
