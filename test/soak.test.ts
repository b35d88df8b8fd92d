import { describe, expect, test } from 'vitest';
import { SHAPE_KINDS } from '../soak/shapes.ts';
import { defaultOptions, runSoak } from '../soak/soak.ts';
import { blueUrl, greenUrl, kafkaBrokers } from './support/env.ts';

// The CI cut of `npm run soak` (soak/run.ts), on a blue and a green of its own (--scratch):
// 50 s of seeded writes (TOAST, key changes, truncate, a 50k-row transaction, rollbacks, and
// every issue-12 shape: identity + generated columns, an FK pair truncated together, a
// secondary unique whose values move between rows, a partitioned table, rows of several MB)
// while green is stopped in the direct initial copy (teal's default; what it did not copy goes
// by chunk through Kafka), the producer and consumer are SIGKILLed
// and restarted, a second consumer joins the group and leaves (rebalances), teal's sessions
// on blue and green are terminated, a table is added and the producer killed in its chunked
// snapshot under TOAST-unchanged updates, blue's commits wait for an absent synchronous
// standby, and green crashes once; then a drain and an independent per-row digest of every
// table. The broker restart stays opt-in (`npm run soak -- --faults ...,broker`): it hits
// everyone on the shared environment.
describe('soak', () => {
  test('kill and disconnect at random under load: blue == green, nothing applied twice', {
    timeout: 600_000,
  }, async () => {
    const lines: string[] = [];
    const report = await runSoak({
      ...defaultOptions(),
      durationS: 50,
      seed: 20251124,
      faults: [
        'green-snapshot',
        'producer',
        'consumer',
        'terminate',
        'rebalance',
        'chunk-kill',
        'syncrep',
        'green',
      ],
      shapes: [...SHAPE_KINDS],
      scratch: true,
      bulkRows: 50_000,
      chunkTableRows: 800,
      blueUrl: blueUrl(),
      greenUrl: greenUrl(),
      brokers: kafkaBrokers(),
      bigRows: 50_000,
      gapMs: [500, 3000],
      recoveryTimeoutMs: 90_000,
      drainTimeoutMs: 180_000,
      log: (line) => lines.push(line),
    });
    const summary = `${lines.join('\n')}\n${JSON.stringify(
      {
        ...report,
        workload: undefined,
        faults: report.faults.injected,
        unexpectedExits: report.unexpectedExits.map((e) => `${e.name} ${e.code}`),
      },
      null,
      1,
    )}`;
    expect('lsn' in report.drain, summary).toBe(true);
    expect(report.rowsDiffering, summary).toBe(0);
    expect(report.appliedTwice, summary).toBe(0);
    expect(report.deadLetters, summary).toBe(0);
    expect(report.rowsCompared, summary).toBeGreaterThan(40_000);
    expect(report.faults.total, summary).toBeGreaterThanOrEqual(3);
    expect(report.recovery.failed, summary).toBe(0);
    expect(report.faults.injected['green-snapshot'], summary).toBe(1);
    expect(report.problems, summary).toEqual([]);
  });
});
