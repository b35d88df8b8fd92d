import { describe, expect, test } from 'vitest';
import { defaultOptions, runSoak } from '../soak/soak.ts';
import { blueUrl, greenUrl, kafkaBrokers } from './support/env.ts';

// The CI cut of `npm run soak` (soak/run.ts): 50 s of seeded writes (TOAST, key changes,
// truncate, a 50k-row transaction, rollbacks) while the producer and consumer are SIGKILLed
// and restarted, a second consumer joins the group and leaves (rebalances), and teal's sessions
// on blue and green are terminated; then a drain and an
// independent per-row digest of every table. Broker and green restarts stay opt-in
// (`npm run soak -- --faults ...,broker,green`): they hit everyone on the shared environment.
describe('soak', () => {
  test('kill and disconnect at random under load: blue == green, nothing applied twice', {
    timeout: 600_000,
  }, async () => {
    const lines: string[] = [];
    const report = await runSoak({
      ...defaultOptions(),
      durationS: 50,
      seed: 20251124,
      faults: ['producer', 'consumer', 'terminate', 'rebalance'],
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
  });
});
