import { parseLsn } from '@teal/change-event';
import { TealError } from '@teal/errors';
import { describeFenceHoles } from './fence.ts';
import type {
  CutoverOptions,
  CutoverReport,
  CutoverStep,
  CutoverVerification,
  DrainResult,
  FenceResult,
  RollbackPrepared,
  SequenceCopy,
  VerifyReportView,
} from './types.ts';

// Cutover = fence blue (optional) -> drain -> copy sequences -> verify (optional) -> report.
// The steps run in that order and stop at the first that fails; the report says whether it
// is safe to point the application at green. Nothing here switches traffic: that stays the
// operator's decision, made on `safeToSwitch`.
// Verify is the delta by default (online-verify.ts: only what changed since each table's
// online pass, a table without one in full), `fullVerify` every row. The report's window runs
// from the fence to the report with each step's ms; a dry run does everything but the fence
// (so blue stays writable) and its window is what the fenced one would have been.
// The fence step fails while blue has what the fence cannot stop (fence.ts: prepared
// transactions, backends older than the fence); the drain step fails when the dead-letter
// topic holds records, unless the operator accepts them (`acceptDeadLetters`).

export interface CutoverSteps {
  fence(): Promise<FenceResult>;
  unfence(): Promise<FenceResult>;
  drain(timeoutMs: number): Promise<DrainResult>;
  copySequences(): Promise<SequenceCopy[]>;
  verify(kind: 'delta' | 'full', drained: DrainResult | null): Promise<VerifyReportView>;
  /** After a cutover safe to switch: drop what teal put on green for verifying (its tables). */
  releaseGreen(): Promise<string[]>;
  /** withRollback (rollback-prepare.ts): the reverse publication and slot on green, made before the verify reads green. */
  prepareRollback?(): Promise<RollbackPrepared>;
  /** After a verify that proved green equal: record the prepared reverse pipeline for `teal reverse`. */
  recordRollback?(prepared: RollbackPrepared): Promise<void>;
  /** The cutover is not safe: drop what prepareRollback made. */
  dropRollback?(prepared: RollbackPrepared): Promise<void>;
}

/** A report before any step ran (the rollback's, rollback.ts, starts the same). */
export function emptyReport(kind: CutoverVerification['kind'], dryRun: boolean): CutoverReport {
  return {
    safeToSwitch: false,
    fenced: false,
    drainLsn: null,
    deadLetters: null,
    fenceHoles: null,
    steps: [],
    sequences: [],
    verify: null,
    warnings: [],
    dryRun,
    window: { fenced: false, ms: 0, steps: [] },
    verification: {
      kind,
      beforeFence: { tables: [], rows: 0, asOfLsn: null },
      afterFence: { deltaTables: [], deltaKeys: 0, fullTables: [] },
    },
  };
}

/** Runs one step into `report.steps`: its ms, its details or its error; false when it failed. */
export function stepRunner(report: CutoverReport) {
  return async (name: CutoverStep['name'], fn: () => Promise<string>): Promise<boolean> => {
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
}

/** The fence step of a cutover (blue) or a rollback (green): fenced, and nothing the fence cannot stop. */
export function fenceStep(
  report: CutoverReport,
  side: 'blue' | 'green',
  fence: () => Promise<FenceResult>,
): () => Promise<string> {
  return async () => {
    const f = await fence();
    report.fenced = true;
    report.fenceHoles = { preparedTransactions: f.preparedTransactions, sessions: f.sessions };
    const holes = describeFenceHoles(report.fenceHoles);
    if (holes.length > 0) throw new Error(`${side} is fenced but can still change: ${holes.join('; ')}`);
    return `${side} database ${f.database} is read-only for new sessions; ${f.terminatedSessions} session(s) terminated`;
  };
}

export async function runCutover(steps: CutoverSteps, opts: CutoverOptions): Promise<CutoverReport> {
  const report = emptyReport('none', opts.dryRun === true);
  const started = Date.now();
  let drained: DrainResult | null = null;
  const step = stepRunner(report);

  let ok = true;
  if (opts.dryRun) {
    report.warnings.push(
      'dry run: blue was not fenced and stays writable; the window is what a fenced cutover would take now',
    );
  } else if (opts.fence) {
    ok = await step('fence', fenceStep(report, 'blue', steps.fence));
  } else {
    report.warnings.push('blue was not fenced: writes committed after the drain LSN are not in green');
  }
  if (ok) {
    ok = await step('drain', async () => {
      const remaining = Math.max(1_000, opts.timeoutMs - (Date.now() - started));
      const d = await steps.drain(remaining);
      drained = d;
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
  // The reverse slot's point comes after the drain and before the verify reads green, so every
  // green change is either in what the verify proves equal or after the point (rollback-prepare.ts).
  let prepared: RollbackPrepared | undefined;
  if (ok && opts.withRollback && steps.prepareRollback) {
    if (opts.dryRun) {
      report.warnings.push('dry run: the reverse slot and publication were not created on green');
    } else {
      const prepare = steps.prepareRollback;
      ok = await step('reverse-slot', async () => {
        prepared = await prepare();
        return `reverse slot ${prepared.slot} on green at ${prepared.lsn}, publication ${prepared.publication} (${prepared.tables.length} table(s))`;
      });
    }
  }
  if (ok && opts.verify) {
    ok = await step('verify', async () => {
      const kind = opts.fullVerify ? 'full' : 'delta';
      report.verify = await steps.verify(kind, drained);
      report.verification = verification(kind, report.verify);
      const bad = report.verify.tables.filter((t) => !t.ok);
      if (opts.dryRun && !report.verify.ok) {
        report.warnings.push(
          `dry run: ${bad.length} table(s) differ while blue is writable (changes in flight are expected; a fenced cutover would settle them): ${bad.map((t) => t.blue).join(', ')}`,
        );
        return `${report.verify.tables.length} table(s) checked (${kind})`;
      }
      if (!report.verify.ok) {
        throw new Error(
          `${bad.length} table(s) differ: ${bad.map((t) => `${t.blue} -> ${t.green}`).join(', ')}`,
        );
      }
      return `${report.verify.tables.length} table(s) equal (${describeVerification(report.verification)})`;
    });
  } else if (ok) {
    report.warnings.push('verify was skipped: green equals blue is not proven');
  }

  if (prepared) {
    const made = prepared;
    if (ok && !opts.verify) {
      ok = false;
      report.warnings.push(
        'cutover --with-rollback needs the verify: the way back is recorded only when green is proven equal to blue',
      );
    }
    if (ok && steps.recordRollback) {
      const record = steps.recordRollback;
      ok = await step('rollback', async () => {
        await record(made);
        report.rollback = made;
        return `recorded on green for teal reverse: slot ${made.slot} from ${made.lsn}, topic prefix ${made.topicPrefix}`;
      });
    }
    if (!ok && steps.dropRollback) {
      await steps.dropRollback(made).catch((err: Error) => {
        report.warnings.push(
          `the reverse slot ${made.slot} and publication ${made.publication} could not be dropped from green (${err.message}): drop them by hand`,
        );
      });
    }
  }
  if (opts.withRollback && report.rollback === undefined) report.rollback = null;

  // The window: from the fence (or where it would be) to this report, before any unfence.
  const inWindow = report.steps.filter((st) => st.name !== 'unfence' && st.name !== 'release');
  report.window = {
    fenced: report.fenced,
    ms: Date.now() - started,
    steps: inWindow.map((st) => ({ name: st.name, ms: st.ms })),
  };
  report.safeToSwitch = ok && !opts.dryRun;
  if (report.safeToSwitch) {
    // Outside the window: the proof is done, and green is about to take the application's writes.
    const released = await step('release', async () => {
      const tables = await steps.releaseGreen();
      return tables.length === 0
        ? "green carries nothing of teal's verify"
        : `online verify's change-capture triggers dropped from ${tables.length} green table(s)`;
    });
    if (!released) {
      report.warnings.push(
        "teal's change-capture triggers (teal_changed_*) may still be on green's tables: drop them before the application writes there (they record every written key)",
      );
    }
  }
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

/** Which tables the online passes vouched for before the fence, and what the window checked. */
export function verification(kind: 'delta' | 'full', v: VerifyReportView): CutoverVerification {
  const delta = v.tables.filter((t) => t.checked === 'delta');
  const lsns = delta.map((t) => t.asOfLsn).filter((l): l is string => typeof l === 'string');
  return {
    kind,
    beforeFence: {
      tables: delta.map((t) => t.blue),
      rows: delta.reduce((sum, t) => sum + (t.onlineRows ?? 0), 0),
      asOfLsn: lsns.length > 0 ? lsns.reduce((a, b) => (parseLsn(a) <= parseLsn(b) ? a : b)) : null,
    },
    afterFence: {
      deltaTables: delta.map((t) => t.blue),
      deltaKeys: delta.reduce((sum, t) => sum + (t.deltaKeys ?? 0), 0),
      fullTables: v.tables
        .filter((t) => t.checked !== 'delta')
        .map((t) => ({
          table: t.blue,
          reason: t.reason ?? (kind === 'full' ? 'full verify asked for' : 'not verified online'),
        })),
    },
  };
}

function describeVerification(v: CutoverVerification): string {
  if (v.kind === 'full') return 'every row, inside the window';
  const whole = v.afterFence.fullTables.length;
  return (
    `${v.beforeFence.tables.length} table(s) verified online before the fence, ` +
    `${v.afterFence.deltaKeys} changed key(s) re-checked after it` +
    (whole > 0 ? `, ${whole} table(s) in full` : '')
  );
}
