import { TealError } from '@teal/errors';
import { describe, expect, it } from 'vitest';
import { type CutoverSteps, runCutover } from './cutover.ts';
import type { DrainResult, VerifyReportView } from './types.ts';

const NO_HOLES = { preparedTransactions: [], sessions: [] };
const AT = '2026-12-01T10:00:00+00:00';
const DRAINED: DrainResult = {
  drained: true,
  clean: true,
  deadLetters: { total: 0, tables: [] },
  lsn: '0/ABC',
  targetLsn: '0/ABC',
  confirmedLsn: '0/ABD',
  partitions: [],
  waitedMs: 1,
  fenced: false,
};

function steps(over: Partial<CutoverSteps> = {}) {
  const calls: string[] = [];
  const track = <T>(name: string, value: T): T => {
    calls.push(name);
    return value;
  };
  const s: CutoverSteps = {
    fence: async () =>
      track('fence', { fenced: true, database: 'app', terminatedSessions: 1, fencedAt: AT, ...NO_HOLES }),
    unfence: async () =>
      track('unfence', {
        fenced: false,
        database: 'app',
        terminatedSessions: 0,
        fencedAt: null,
        ...NO_HOLES,
      }),
    drain: async () => track('drain', DRAINED),
    copySequences: async () =>
      track('sequences', [
        { blue: 'public.t_id_seq', green: 'public.t_id_seq', value: '42', ok: true, note: null },
      ]),
    verify: async () => track('verify', { ok: true, tables: [] } as unknown as VerifyReportView),
    releaseGreen: async () => track('release', ['public.t']),
    ...over,
  };
  return { s, calls };
}

const opts = { fence: true, timeoutMs: 10_000, verify: true, unfenceOnFailure: false };

describe('runCutover', () => {
  it('fences, drains, copies sequences and verifies, in order', async () => {
    const { s, calls } = steps();
    const report = await runCutover(s, opts);
    expect(calls).toEqual(['fence', 'drain', 'sequences', 'verify', 'release']);
    expect(report.safeToSwitch).toBe(true);
    expect(report.drainLsn).toBe('0/ABC');
    expect(report.sequences[0].value).toBe('42');
    expect(report.steps.map((x) => x.ok)).toEqual([true, true, true, true, true]);
    // Green is the application's now: teal's change-capture triggers are gone, outside the window.
    expect(report.steps[4]?.details).toMatch(/triggers dropped from 1 green table/);
    expect(report.window?.steps.map((x) => x.name)).not.toContain('release');
  });

  it('a failed release of green is a warning, not an unsafe switch', async () => {
    const { s } = steps({
      releaseGreen: async () => {
        throw new Error('permission denied for table t');
      },
    });
    const report = await runCutover(s, opts);
    expect(report.safeToSwitch).toBe(true);
    expect(report.steps.at(-1)).toMatchObject({ name: 'release', ok: false });
    expect(report.warnings.join()).toMatch(/teal_changed_\*\).*drop them before the application writes/);
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

  it('is not safe while blue has a prepared transaction or a session older than the fence, and says what to do', async () => {
    const { s, calls } = steps({
      fence: async () => ({
        fenced: true,
        database: 'app',
        terminatedSessions: 0,
        fencedAt: '2026-12-01T10:00:00+00:00',
        preparedTransactions: [{ gid: 'pay-7', owner: 'shop', prepared: '2026-12-01T09:59:00+00:00' }],
        sessions: [
          {
            pid: 4242,
            usename: 'shop',
            applicationName: 'cron',
            backendType: 'background worker',
            backendStart: '2026-12-01T08:00:00+00:00',
          },
        ],
      }),
    });
    const report = await runCutover(s, opts);
    expect(calls).toEqual([]);
    expect(report.safeToSwitch).toBe(false);
    expect(report.fenceHoles?.preparedTransactions[0].gid).toBe('pay-7');
    const details = report.steps[0].details;
    expect(details).toMatch(/'pay-7' \(owner shop, prepared 2026-12-01T09:59:00\+00:00\)/);
    expect(details).toMatch(/COMMIT PREPARED 'gid'.*or ROLLBACK PREPARED 'gid'/);
    expect(details).toMatch(/pid 4242 \(user shop, application "cron", background worker/);
    expect(details).toMatch(/pg_terminate_backend/);
  });

  it('is not safe with dead letters unless the operator accepts them', async () => {
    const dirty = {
      drain: async () => ({
        ...DRAINED,
        clean: false,
        deadLetters: { total: 3, tables: [{ table: 'public.orders', count: 3 }] },
      }),
    };
    const refused = await runCutover(steps(dirty).s, opts);
    expect(refused.safeToSwitch).toBe(false);
    expect(refused.deadLetters?.total).toBe(3);
    expect(refused.steps.find((x) => x.name === 'drain')?.details).toMatch(
      /3 dead letter\(s\).*public\.orders: 3.*--accept-dead-letters/,
    );
    const accepted = await runCutover(steps(dirty).s, { ...opts, acceptDeadLetters: true });
    expect(accepted.safeToSwitch).toBe(true);
    expect(accepted.warnings.join()).toMatch(/3 dead letter\(s\).*accepted by the operator/);
  });

  it('warns when not fenced and not verified', async () => {
    const { s, calls } = steps();
    const report = await runCutover(s, { ...opts, fence: false, verify: false });
    expect(calls).toEqual(['drain', 'sequences', 'release']);
    expect(report.safeToSwitch).toBe(true);
    expect(report.warnings).toHaveLength(2);
  });
});

describe('runCutover: the window and what it verified (issue 18)', () => {
  const table = (blue: string, over: Partial<VerifyReportView['tables'][number]>) =>
    ({ blue, green: blue, ok: true, ...over }) as VerifyReportView['tables'][number];

  it('states the fenced window, its steps, and the delta against what the online passes verified', async () => {
    let asked: string | undefined;
    const { s } = steps({
      verify: async (kind) => {
        asked = kind;
        return {
          ok: true,
          kind: 'delta',
          tables: [
            table('public.a', { checked: 'delta', deltaKeys: 3, onlineRows: 1000, asOfLsn: '0/20' }),
            table('public.b', { checked: 'delta', deltaKeys: 2, onlineRows: 500, asOfLsn: '0/10' }),
            table('public.c', { checked: 'full', reason: 'no complete online pass' }),
          ],
        } as unknown as VerifyReportView;
      },
    });
    const report = await runCutover(s, opts);
    expect(asked).toBe('delta');
    expect(report.window?.fenced).toBe(true);
    expect(report.window?.steps.map((x) => x.name)).toEqual(['fence', 'drain', 'sequences', 'verify']);
    expect(report.verification).toEqual({
      kind: 'delta',
      beforeFence: { tables: ['public.a', 'public.b'], rows: 1500, asOfLsn: '0/10' },
      afterFence: {
        deltaTables: ['public.a', 'public.b'],
        deltaKeys: 5,
        fullTables: [{ table: 'public.c', reason: 'no complete online pass' }],
      },
    });
  });

  it('--full-verify asks for the full check; a dry run never fences and is never safe to switch', async () => {
    let asked: string | undefined;
    const { s, calls } = steps({
      verify: async (kind) => {
        asked = kind;
        return {
          ok: false,
          kind,
          tables: [table('public.a', { ok: false, checked: 'full' })],
        } as VerifyReportView;
      },
    });
    const report = await runCutover(s, { ...opts, dryRun: true, fullVerify: true });
    expect(asked).toBe('full');
    expect(calls).not.toContain('fence');
    expect(report).toMatchObject({ dryRun: true, fenced: false, safeToSwitch: false });
    expect(report.window?.fenced).toBe(false);
    expect(report.window?.steps.map((x) => x.name)).toEqual(['drain', 'sequences', 'verify']);
    // Differences while blue is writable are a warning in a rehearsal, not a failed step.
    expect(report.steps.every((x) => x.ok)).toBe(true);
    expect(report.warnings.join('\n')).toMatch(/dry run: 1 table\(s\) differ/);
  });
});
