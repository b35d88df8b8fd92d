import type { CutoverReport, StatusReport } from '@teal/control';
import { describe, expect, it } from 'vitest';
import { formatCutover, formatStatus } from './render.ts';

/** A cutover that went through, with nothing else to show. */
const SAFE: CutoverReport = {
  safeToSwitch: true,
  fenced: true,
  drainLsn: '0/ABC',
  deadLetters: { total: 0, tables: [] },
  fenceHoles: { preparedTransactions: [], sessions: [] },
  steps: [],
  sequences: [],
  verify: null,
  warnings: [],
};

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

  it('states the write window and what was verified before the fence and inside it', () => {
    const base: CutoverReport = {
      ...SAFE,
      window: {
        fenced: true,
        ms: 745,
        steps: [
          { name: 'fence', ms: 163 },
          { name: 'verify', ms: 458 },
        ],
      },
      verification: {
        kind: 'delta',
        beforeFence: { tables: ['public.a', 'public.b'], rows: 2_000_000, asOfLsn: '0/10' },
        afterFence: {
          deltaTables: ['public.a'],
          deltaKeys: 9484,
          fullTables: [{ table: 'public.b', reason: 'a TRUNCATE since the pass' }],
        },
      },
    };
    const text = formatCutover(base);
    expect(text).toMatch(/write window: 745 ms from the fence to this report \(fence 163, verify 458 ms\)/);
    expect(text).toMatch(
      /before the fence: 2 table\(s\), 2000000 row\(s\) online \(as of 0\/10\); 9484 changed key/,
    );
    expect(text).toMatch(/in full inside the window: public\.b \(a TRUNCATE since the pass\)/);
    const dry = formatCutover({ ...base, safeToSwitch: false, fenced: false, dryRun: true });
    expect(dry).toMatch(/dry run: a fenced cutover would hold writes for about 745 ms now/);
  });

  it('prints the way back a cutover --with-rollback prepared, and a rollback as switching back', () => {
    const base = SAFE;
    const prepared = formatCutover({
      ...base,
      rollback: {
        slot: 'teal_slot_reverse',
        publication: 'teal_pub_reverse',
        lsn: '0/DEF',
        topicPrefix: 'teal_reverse',
        tables: [
          {
            greenTable: 'public.members',
            blueTable: 'public.users',
            columns: { id: 'id', full_name: 'name' },
            notWrittenBack: ['email_domain'],
            blueOnly: ['legacy_code'],
            derivedBack: [],
          },
        ],
      },
    });
    expect(prepared).toMatch(
      /rollback prepared: slot teal_slot_reverse on green from 0\/DEF, publication teal_pub_reverse/,
    );
    expect(prepared).toMatch(/public\.members -> public\.users\s+email_domain\s+legacy_code\s+-/);
    expect(prepared).toMatch(/start teal reverse/);
    expect(prepared).toMatch(/SAFE TO SWITCH: green holds everything up to 0\/ABC/);

    const back = formatCutover({
      ...base,
      direction: 'rollback',
      sequences: [
        { blue: 'public.members_id_seq', green: 'public.users_id_seq', value: '22', ok: true, note: null },
      ],
    });
    expect(back).toMatch(/sequence \(green\)\s+blue\s+value/);
    expect(back).toMatch(
      /SAFE TO SWITCH BACK: blue holds everything committed on green up to 0\/ABC; green stays fenced/,
    );
    expect(formatCutover({ ...base, direction: 'rollback', safeToSwitch: false })).toMatch(
      /NOT SAFE TO SWITCH BACK/,
    );
  });
});

describe('formatStatus', () => {
  it("says teal reverse's direction, and that the side it fenced is green", () => {
    const status = {
      state: 'streaming',
      paused: false,
      fenced: true,
      slot: null,
      producer: null,
      consumer: { state: null, partitions: [], lagRecords: 0, deadLetters: 0, blocked: [], error: null },
      warnings: [],
      checkedAt: 'T',
    } as unknown as StatusReport;
    const text = formatStatus({ ...status, direction: 'reverse' });
    expect(text.split('\n')[0]).toBe('direction reverse (green -> blue, the way back)');
    expect(text).toMatch(/state\s+streaming \(green fenced\)/);
    expect(formatStatus(status)).toMatch(/state\s+streaming \(blue fenced\)/);
  });
});
