import { TealError } from '@teal/errors';
import { describeFenceHoles } from './fence.ts';
import type {
  CutoverOptions,
  CutoverReport,
  CutoverStep,
  DrainResult,
  FenceResult,
  SequenceCopy,
  VerifyReportView,
} from './types.ts';

// Cutover = fence blue (optional) -> drain -> copy sequences -> verify (optional) -> report.
// The steps run in that order and stop at the first that fails; the report says whether it
// is safe to point the application at green. Nothing here switches traffic: that stays the
// operator's decision, made on `safeToSwitch`.
// The fence step fails while blue has what the fence cannot stop (fence.ts: prepared
// transactions, backends older than the fence); the drain step fails when the dead-letter
// topic holds records, unless the operator accepts them (`acceptDeadLetters`).

export interface CutoverSteps {
  fence(): Promise<FenceResult>;
  unfence(): Promise<FenceResult>;
  drain(timeoutMs: number): Promise<DrainResult>;
  copySequences(): Promise<SequenceCopy[]>;
  verify(): Promise<VerifyReportView>;
}

export async function runCutover(steps: CutoverSteps, opts: CutoverOptions): Promise<CutoverReport> {
  const report: CutoverReport = {
    safeToSwitch: false,
    fenced: false,
    drainLsn: null,
    deadLetters: null,
    fenceHoles: null,
    steps: [],
    sequences: [],
    verify: null,
    warnings: [],
  };
  const started = Date.now();
  const step = async (name: CutoverStep['name'], fn: () => Promise<string>): Promise<boolean> => {
    const t0 = Date.now();
    try {
      const details = await fn();
      report.steps.push({ name, ok: true, ms: Date.now() - t0, details });
      return true;
    } catch (err) {
      const message = err instanceof TealError ? `${err.code}: ${err.message}` : (err as Error).message;
      report.steps.push({ name, ok: false, ms: Date.now() - t0, details: message });
      return false;
    }
  };

  let ok = true;
  if (opts.fence) {
    ok = await step('fence', async () => {
      const f = await steps.fence();
      report.fenced = true;
      report.fenceHoles = { preparedTransactions: f.preparedTransactions, sessions: f.sessions };
      const holes = describeFenceHoles(report.fenceHoles);
      if (holes.length > 0) throw new Error(`blue is fenced but can still change: ${holes.join('; ')}`);
      return `blue database ${f.database} is read-only for new sessions; ${f.terminatedSessions} session(s) terminated`;
    });
  } else {
    report.warnings.push('blue was not fenced: writes committed after the drain LSN are not in green');
  }
  if (ok) {
    ok = await step('drain', async () => {
      const remaining = Math.max(1_000, opts.timeoutMs - (Date.now() - started));
      const d = await steps.drain(remaining);
      report.drainLsn = d.lsn;
      report.deadLetters = d.deadLetters;
      const applied = `everything committed on blue up to ${d.lsn} is applied in green (${d.waitedMs} ms)`;
      if (d.clean) return applied;
      const counts = d.deadLetters.tables.map((t) => `${t.table}: ${t.count}`).join(', ');
      const letters = `${d.deadLetters.total} dead letter(s), changes green lacks (${counts})`;
      if (!opts.acceptDeadLetters) {
        throw new Error(
          `${applied} except ${letters}: fix their cause and replay them from the dead-letter topic, ` +
            'or switch without them with acceptDeadLetters: true (teal cutover --accept-dead-letters)',
        );
      }
      report.warnings.push(`switching with ${letters}, accepted by the operator`);
      return `${applied} except ${letters}, accepted`;
    });
  }
  if (ok) {
    ok = await step('sequences', async () => {
      report.sequences = await steps.copySequences();
      const failed = report.sequences.filter((s) => !s.ok);
      if (failed.length > 0) {
        throw new Error(
          `${failed.length} sequence(s) not copied: ${failed.map((s) => `${s.blue} (${s.note})`).join(', ')}`,
        );
      }
      const copied = report.sequences.filter((s) => s.green !== null).length;
      return `${copied} sequence(s) copied to green, ${report.sequences.length - copied} skipped`;
    });
  }
  if (ok && opts.verify) {
    ok = await step('verify', async () => {
      report.verify = await steps.verify();
      const bad = report.verify.tables.filter((t) => !t.ok);
      if (!report.verify.ok) {
        throw new Error(
          `${bad.length} table(s) differ: ${bad.map((t) => `${t.blue} -> ${t.green}`).join(', ')}`,
        );
      }
      return `${report.verify.tables.length} table(s) equal`;
    });
  } else if (ok) {
    report.warnings.push('verify was skipped: green equals blue is not proven');
  }

  report.safeToSwitch = ok;
  if (!ok && report.fenced && opts.unfenceOnFailure) {
    if (
      await step(
        'unfence',
        async () => `blue database ${(await steps.unfence()).database} accepts writes again`,
      )
    ) {
      report.fenced = false;
    }
  } else if (!ok && report.fenced) {
    report.warnings.push(
      'cutover failed and blue stays fenced: POST /unfence (teal unfence) to accept writes again',
    );
  }
  return report;
}
