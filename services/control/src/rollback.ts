import { emptyReport, fenceStep, stepRunner } from './cutover.ts';
import type { CutoverReport, DrainResult, FenceResult, SequenceCopy, VerifyReportView } from './types.ts';

// `teal rollback` (issue 17) is the cutover of the reverse pipeline: fence GREEN (the reverse
// source, where the application writes now) -> drain the reverse pipeline to green's current
// LSN -> copy sequences green -> blue taking the max -> verify blue against green through the
// inverse mapping (every row) -> report -> unfence blue when it is safe to switch back. It runs
// in `teal reverse`'s process, whose config is the reverse one (its "blue" is green), so the
// steps below are that control plane's own fence, drain and verify. The report has the
// cutover's shape with `direction: 'rollback'`; in it `drainLsn` is green's LSN, and each
// sequence's `blue`/`green` fields are its source (green) and target (blue).

export interface RollbackSteps {
  fenceGreen(): Promise<FenceResult>;
  unfenceGreen(): Promise<FenceResult>;
  drain(timeoutMs: number): Promise<DrainResult>;
  copySequences(): Promise<SequenceCopy[]>;
  verify(): Promise<VerifyReportView>;
  unfenceBlue(): Promise<FenceResult>;
}

export interface RollbackOptions {
  timeoutMs: number;
  /** Unfence blue once safe (default true): from then on the application may write to blue. */
  unfenceBlue?: boolean;
  /** A rollback that fails unfences green again (default false: green stays fenced, the report says how to lift it). */
  unfenceOnFailure?: boolean;
  /** Switch back although the reverse dead-letter topic holds records (green's changes blue lacks). */
  acceptDeadLetters?: boolean;
}

export async function runRollback(steps: RollbackSteps, opts: RollbackOptions): Promise<CutoverReport> {
  const report: CutoverReport = { ...emptyReport('full', false), direction: 'rollback' };
  const started = Date.now();
  const step = stepRunner(report);

  let ok = await step('fence', fenceStep(report, 'green', steps.fenceGreen));
  if (ok) {
    ok = await step('drain', async () => {
      const d = await steps.drain(Math.max(1_000, opts.timeoutMs - (Date.now() - started)));
      report.drainLsn = d.lsn;
      report.deadLetters = d.deadLetters;
      const applied = `everything committed on green up to ${d.lsn} is applied in blue (${d.waitedMs} ms)`;
      if (d.clean) return applied;
      const letters = `${d.deadLetters.total} dead letter(s) of the reverse pipeline, green's changes blue lacks (${d.deadLetters.tables.map((t) => `${t.table}: ${t.count}`).join(', ')})`;
      if (!opts.acceptDeadLetters)
        throw new Error(
          `${applied} except ${letters}: fix their cause and replay them, or accept them (acceptDeadLetters)`,
        );
      report.warnings.push(`switching back with ${letters}, accepted by the operator`);
      return `${applied} except ${letters}, accepted`;
    });
  }
  if (ok) {
    ok = await step('sequences', async () => {
      report.sequences = await steps.copySequences();
      const failed = report.sequences.filter((s) => !s.ok);
      if (failed.length > 0)
        throw new Error(
          `${failed.length} sequence(s) not copied to blue: ${failed.map((s) => `${s.blue} (${s.note})`).join(', ')}`,
        );
      const moved = report.sequences.filter((s) => s.green !== null && s.note === null).length;
      return `${moved} blue sequence(s) moved forward to green's value, ${report.sequences.length - moved} left (already ahead, or no such sequence on blue)`;
    });
  }
  if (ok) {
    ok = await step('verify', async () => {
      report.verify = await steps.verify();
      report.verification = {
        kind: 'full',
        beforeFence: { tables: [], rows: 0, asOfLsn: null },
        afterFence: {
          deltaTables: [],
          deltaKeys: 0,
          fullTables: report.verify.tables.map((t) => ({
            table: t.blue,
            reason: 'rollback verifies every row',
          })),
        },
      };
      const bad = report.verify.tables.filter((t) => !t.ok);
      if (!report.verify.ok)
        throw new Error(
          `${bad.length} table(s) differ: ${bad.map((t) => `green ${t.blue} -> blue ${t.green}`).join(', ')}`,
        );
      return `${report.verify.tables.length} table(s): blue equals green through the inverse mapping (every row)`;
    });
  }
  report.window = {
    fenced: report.fenced,
    ms: Date.now() - started,
    steps: report.steps.map((s) => ({ name: s.name, ms: s.ms })),
  };
  report.safeToSwitch = ok;

  if (ok && opts.unfenceBlue !== false) {
    const unfenced = await step('unfence', async () => {
      const r = await steps.unfenceBlue();
      return `blue database ${r.database} accepts writes again (the reverse guard is gone); point the application at blue`;
    });
    if (!unfenced)
      report.warnings.push(
        'blue is still fenced: POST /unfence on a forward teal api (or teal unfence there) lifts it',
      );
  } else if (ok) {
    report.warnings.push('blue stays fenced as asked: unfence it before the application writes there');
  }
  if (ok) {
    report.warnings.push(
      "green stays fenced. Stop teal reverse, then drop the reverse slot on green (SELECT pg_drop_replication_slot(...), docs/rollback.md): it keeps green's WAL",
    );
  } else if (report.fenced && opts.unfenceOnFailure) {
    if (
      await step(
        'unfence',
        async () => `green database ${(await steps.unfenceGreen()).database} accepts writes again`,
      )
    )
      report.fenced = false;
  } else if (report.fenced) {
    report.warnings.push(
      'rollback failed and green stays fenced: POST /unfence to this process (teal unfence) lets the application write to green again',
    );
  }
  return report;
}
