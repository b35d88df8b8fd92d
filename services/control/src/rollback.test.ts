import { resolveConfig } from '@teal/config';
import type { TopicAdmin } from '@teal/kafka';
import { describe, expect, it } from 'vitest';
import { TealControl } from './backend.ts';
import { reverseRecordedFinding, rollbackFindings } from './check/check.ts';
import { runCutover } from './cutover.ts';
import { type RollbackSteps, runRollback } from './rollback.ts';
import { greenSlotProblems, replicaIdentityProblem } from './rollback-prepare.ts';
import type { DrainResult, FenceResult, RollbackPrepared, VerifyReportView } from './types.ts';

// The order of the steps is the safety argument: these fakes record it.

const fenced: FenceResult = {
  fenced: true,
  database: 'app',
  terminatedSessions: 2,
  fencedAt: '2026-12-01T00:00:00.000Z',
  preparedTransactions: [],
  sessions: [],
};
const drained: DrainResult = {
  drained: true,
  clean: true,
  deadLetters: { total: 0, tables: [] },
  lsn: '0/5000',
  targetLsn: '0/5000',
  confirmedLsn: '0/5000',
  partitions: [],
  waitedMs: 3,
  fenced: false,
};
const verified = (ok: boolean): VerifyReportView => ({
  ok,
  startedAt: '2026-12-01T00:00:00.000Z',
  finishedAt: '2026-12-01T00:00:00.001Z',
  durationMs: 1,
  tables: [
    {
      blue: 'app.people',
      green: 'public.users',
      ok,
      blueRows: 2,
      greenRows: 2,
      mismatchedChunks: ok ? 0 : 1,
      missingInGreen: [],
      extraInGreen: [],
      different: [],
      truncated: false,
      filteredRows: 0,
      chunks: 1,
      columns: [],
      skippedColumns: [],
      transformFailures: [],
    },
  ],
});

/** A step that records its name and answers `value`. */
function answer<T>(calls: string[], name: string, value: T): () => Promise<T> {
  return async () => {
    calls.push(name);
    return value;
  };
}

function rollbackSteps(calls: string[], verifyOk = true): RollbackSteps {
  return {
    fenceGreen: answer(calls, 'fenceGreen', fenced),
    unfenceGreen: answer(calls, 'unfenceGreen', { ...fenced, fenced: false }),
    drain: answer(calls, 'drain', drained),
    copySequences: answer(calls, 'sequences', []),
    verify: answer(calls, 'verify', verified(verifyOk)),
    unfenceBlue: answer(calls, 'unfenceBlue', { ...fenced, fenced: false }),
  };
}

describe('runRollback', () => {
  it('fences green, drains, copies sequences, verifies, then unfences blue; the report says rollback', async () => {
    const calls: string[] = [];
    const r = await runRollback(rollbackSteps(calls), { timeoutMs: 10_000 });
    expect(calls).toEqual(['fenceGreen', 'drain', 'sequences', 'verify', 'unfenceBlue']);
    expect(r).toMatchObject({ direction: 'rollback', safeToSwitch: true, fenced: true, drainLsn: '0/5000' });
    expect(r.steps.map((s) => s.name)).toEqual(['fence', 'drain', 'sequences', 'verify', 'unfence']);
    expect(r.steps[0].details).toMatch(/^green database app is read-only/);
    expect(r.window?.steps.map((s) => s.name)).toEqual(['fence', 'drain', 'sequences', 'verify']);
  });

  it('a difference leaves blue fenced and green fenced (unless asked), and says how to lift it', async () => {
    const calls: string[] = [];
    const r = await runRollback(rollbackSteps(calls, false), { timeoutMs: 10_000 });
    expect(r.safeToSwitch).toBe(false);
    expect(calls).not.toContain('unfenceBlue');
    expect(r.steps.at(-1)).toMatchObject({ name: 'verify', ok: false });
    expect(r.warnings.join(' ')).toMatch(/green stays fenced/);

    const again: string[] = [];
    const u = await runRollback(rollbackSteps(again, false), { timeoutMs: 10_000, unfenceOnFailure: true });
    expect(again.at(-1)).toBe('unfenceGreen');
    expect(u.fenced).toBe(false);
  });

  it('unfenceBlue: false keeps blue fenced although it is safe', async () => {
    const calls: string[] = [];
    const r = await runRollback(rollbackSteps(calls), { timeoutMs: 10_000, unfenceBlue: false });
    expect(r.safeToSwitch).toBe(true);
    expect(calls).not.toContain('unfenceBlue');
  });
});

describe('cutover --with-rollback', () => {
  const prepared: RollbackPrepared = {
    slot: 's_reverse',
    publication: 'p_reverse',
    lsn: '0/6000',
    topicPrefix: 't_reverse',
    tables: [],
  };
  const cutoverSteps = (calls: string[], verifyOk: boolean) => ({
    fence: answer(calls, 'fence', fenced),
    unfence: answer(calls, 'unfence', fenced),
    drain: answer(calls, 'drain', drained),
    copySequences: answer(calls, 'sequences', []),
    verify: answer(calls, 'verify', verified(verifyOk)),
    releaseGreen: answer(calls, 'release', []),
    prepareRollback: answer(calls, 'prepareRollback', prepared),
    recordRollback: async () => void calls.push('recordRollback'),
    dropRollback: async () => void calls.push('dropRollback'),
  });
  const opts = { fence: true, verify: true, timeoutMs: 10_000, unfenceOnFailure: false, withRollback: true };

  it('makes the reverse slot after the drain and before the verify reads green, and records it after a safe verify', async () => {
    const calls: string[] = [];
    const r = await runCutover(cutoverSteps(calls, true), opts);
    expect(calls).toEqual([
      'fence',
      'drain',
      'sequences',
      'prepareRollback',
      'verify',
      'recordRollback',
      'release',
    ]);
    expect(r.safeToSwitch).toBe(true);
    expect(r.rollback).toEqual(prepared);
    expect(r.steps.map((s) => s.name)).toEqual([
      'fence',
      'drain',
      'sequences',
      'reverse-slot',
      'verify',
      'rollback',
      'release',
    ]);
  });

  it('drops the slot and records nothing when the verify finds a difference', async () => {
    const calls: string[] = [];
    const r = await runCutover(cutoverSteps(calls, false), opts);
    expect(calls).toEqual(['fence', 'drain', 'sequences', 'prepareRollback', 'verify', 'dropRollback']);
    expect(r.safeToSwitch).toBe(false);
    expect(r.rollback).toBeNull();
  });
});

describe("green's readiness for the reverse slot", () => {
  const facts = {
    walLevel: 'logical',
    maxReplicationSlots: 10,
    replicationSlotsUsed: 1,
    slotExists: false,
    publicationExists: false,
  };
  it('accepts a green with wal_level logical and a free slot', () => {
    expect(greenSlotProblems(facts, 's', 'p')).toEqual([]);
  });
  it('names wal_level, a full slot table and leftovers, each with the fix', () => {
    const problems = greenSlotProblems(
      {
        walLevel: 'replica',
        maxReplicationSlots: 1,
        replicationSlotsUsed: 1,
        slotExists: false,
        publicationExists: true,
      },
      'teal_slot_reverse',
      'teal_pub_reverse',
    );
    expect(problems).toHaveLength(3);
    expect(problems[0].what).toMatch(/wal_level = replica/);
    expect(problems[0].fix).toMatch(/ALTER SYSTEM SET wal_level = logical/);
    expect(problems[1].what).toMatch(/no free replication slot \(1 of max_replication_slots = 1/);
    expect(problems[2].fix).toMatch(/DROP PUBLICATION teal_pub_reverse/);
  });
  it('refuses a green table without a replica identity (its UPDATEs would fail once published)', () => {
    const shape = {
      name: 'public.t',
      replicaIdentity: 'default' as const,
      hasPrimaryKey: false,
      key: [],
      columns: [],
    };
    expect(replicaIdentityProblem(shape, 'public.t')?.fix).toMatch(/REPLICA IDENTITY FULL/);
    expect(replicaIdentityProblem({ ...shape, hasPrimaryKey: true }, 'public.t')).toBeUndefined();
    expect(replicaIdentityProblem({ ...shape, replicaIdentity: 'full' }, 'public.t')).toBeUndefined();
  });
});

describe('cutover withRollback with options that exclude it', () => {
  it('is a 400 before anything is read or fenced: no dry run, no cutover without the fence or the verify', async () => {
    // Unreachable servers: a request that got as far as reading a catalog would fail otherwise.
    const config = resolveConfig(
      {},
      {
        env: {
          TEAL_BLUE_URL: 'postgres://nobody@127.0.0.1:1/x',
          TEAL_GREEN_URL: 'postgres://nobody@127.0.0.1:1/y',
        },
      },
    );
    const control = new TealControl(config, { admin: {} as TopicAdmin });
    const base = {
      fence: true,
      verify: true,
      timeoutMs: 10_000,
      unfenceOnFailure: false,
      withRollback: true,
    };
    for (const [opts, message] of [
      [{ dryRun: true }, /dryRun exclude each other/],
      [{ fence: false }, /needs the fence/],
      [{ verify: false }, /needs verify/],
    ] as const) {
      const err = await control.cutover({ ...base, ...opts }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'TEAL_BAD_REQUEST', status: 400 });
      expect((err as Error).message).toMatch(message);
    }
    await control.close();
  });
});

describe("teal check's rollback findings", () => {
  const obstacle = {
    table: null,
    what: 'green has wal_level = replica: the reverse slot needs logical',
    fix: 'ALTER SYSTEM ...',
  };
  it('warn by default and block when the check is asked about rollback', () => {
    expect(rollbackFindings([obstacle], false)).toEqual([
      expect.objectContaining({
        severity: 'warn',
        check: 'rollback',
        what: obstacle.what,
        fix: obstacle.fix,
      }),
    ]);
    expect(rollbackFindings([obstacle], true)[0].severity).toBe('block');
  });
  it('a recorded way back blocks teal run, with the commands that give it up', () => {
    const f = reverseRecordedFinding(
      { kafka: { topicPrefix: 'mig' } as never, publication: 'mig_pub' },
      'mig_slot_reverse',
    );
    expect(f).toMatchObject({ severity: 'block', check: 'reverse-recorded', table: null });
    expect(f.fix).toContain(
      "SELECT pg_drop_replication_slot('mig_slot_reverse'); DROP PUBLICATION mig_pub_reverse",
    );
    expect(f.fix).toContain("DELETE FROM teal.control WHERE key = 'reverse:mig'");
  });
});
