import type { CutoverReport, StatusReport, VerifyReportView } from '@teal/control';
import { bytes, table } from './format.ts';
import { type ProgressFigures, progressLine } from './progress.ts';

// The human output of the reports the control API returns (status, cutover, verify); with
// --json the commands print the API's answer unchanged instead.

/**
 * `figures` gives each snapshot table its rate and ETA (`teal status --watch` keeps them
 * between refreshes); without it, rows done and estimated only.
 */
export function formatStatus(
  s: StatusReport,
  figures?: (table: string, done: number, total: number) => ProgressFigures,
): string {
  const lines: string[] = [];
  // teal reverse's status: its source (the side it fences) is green.
  const reverse = s.direction === 'reverse';
  if (reverse) lines.push('direction reverse (green -> blue, the way back)');
  lines.push(
    `state     ${s.state}${s.paused ? ' (paused)' : ''}${s.fenced ? (reverse ? ' (green fenced)' : ' (blue fenced)') : ''}`,
  );
  if (s.slot?.exists) {
    lines.push(
      `slot      ${s.slot.name} ${s.slot.active ? 'active' : 'INACTIVE'}, confirmed ${s.slot.confirmedLsn ?? '-'}, lag ${bytes(
        s.slot.lagBytes,
      )}${s.slot.lagSeconds === null ? '' : ` / ${s.slot.lagSeconds.toFixed(1)} s`}, retained ${bytes(s.slot.retainedWalBytes)} [${s.slot.level}]`,
    );
  } else lines.push(`slot      ${s.slot?.name ?? '?'} (does not exist yet)`);
  if (s.producer) {
    lines.push(
      `producer  ${s.producer.state}, shipped ${s.producer.lastShippedPosition ?? '-'}, confirmed ${s.producer.confirmedLsn ?? '-'}`,
    );
    const snap = s.producer.snapshot.filter((t) => t.state !== 'done');
    if (snap.length > 0) {
      lines.push('  snapshot (rows done / estimated)');
      const width = Math.max(...snap.map((t) => t.table.length)) + 4;
      for (const t of snap) {
        const total = t.rowsEstimated ?? 0;
        const f = figures?.(t.table, t.rowsDone, total) ?? {
          done: t.rowsDone,
          total,
          rate: null,
          etaSeconds: null,
        };
        lines.push(`${progressLine(`    ${t.table}`, f, width)}  ${t.state}`);
      }
    }
  } else lines.push('producer  not reporting');
  lines.push(
    `consumer  ${s.consumer.state ?? 'not reporting'}, lag ${s.consumer.lagRecords} record(s), dead letters ${s.consumer.deadLetters}`,
  );
  if (s.consumer.partitions.length > 0) {
    lines.push(
      table(
        ['  topic', 'part', 'applied', 'end', 'lag', 'blocked'],
        s.consumer.partitions.map((p) => [
          `  ${p.topic}`,
          p.partition,
          p.appliedOffset,
          p.end,
          p.lag,
          p.blocked,
        ]),
      ),
    );
  }
  for (const w of s.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}

/** Steps, copied sequences, warnings, then the verdict last, where an operator looks. */
export function formatCutover(r: CutoverReport): string {
  const lines = [
    table(
      ['step', 'ok', 'ms', 'details'],
      r.steps.map((s) => [s.name, s.ok ? 'yes' : 'NO', s.ms, s.details]),
    ),
  ];
  const copied = r.sequences.filter((s) => s.green);
  if (copied.length > 0) {
    lines.push(
      `\n${table(
        r.direction === 'rollback'
          ? ['sequence (green)', 'blue', 'value']
          : ['sequence (blue)', 'green', 'value'],
        copied.map((s) => [s.blue, s.green, s.value]),
      )}`,
    );
  }
  if (r.deadLetters && r.deadLetters.total > 0) {
    lines.push(
      `\n${table(
        ['dead letters (table)', 'count'],
        r.deadLetters.tables.map((t) => [t.table, t.count]),
      )}`,
    );
  }
  const holes = r.fenceHoles;
  if (holes && holes.preparedTransactions.length > 0) {
    lines.push(
      `\n${table(
        ['prepared transaction (gid)', 'owner', 'prepared'],
        holes.preparedTransactions.map((p) => [p.gid, p.owner, p.prepared]),
      )}`,
    );
  }
  if (holes && holes.sessions.length > 0) {
    lines.push(
      `\n${table(
        ['pid', 'user', 'application', 'backend', 'started (before the fence)'],
        holes.sessions.map((s) => [s.pid, s.usename ?? '', s.applicationName, s.backendType, s.backendStart]),
      )}`,
    );
  }
  if (r.window) lines.push(`\n${formatWindow(r.window, r.dryRun === true)}`);
  if (r.verification && r.verification.kind !== 'none') lines.push(formatVerification(r.verification));
  if (r.rollback) lines.push(`\n${formatRollbackPrepared(r.rollback)}`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  if (r.direction === 'rollback') {
    lines.push(
      r.safeToSwitch
        ? `\nSAFE TO SWITCH BACK: blue holds everything committed on green up to ${r.drainLsn}${r.fenced ? '; green stays fenced' : ''}`
        : '\nNOT SAFE TO SWITCH BACK (see the failed step above)',
    );
    return lines.join('\n');
  }
  lines.push(
    r.safeToSwitch
      ? `\nSAFE TO SWITCH: green holds everything up to ${r.drainLsn}${r.fenced ? '; blue stays fenced' : ''}`
      : '\nNOT SAFE TO SWITCH (see the failed step above)',
  );
  return lines.join('\n');
}

/** The way back a cutover --with-rollback prepared: the slot and what each table writes back. */
function formatRollbackPrepared(p: NonNullable<CutoverReport['rollback']>): string {
  const list = (xs: string[]) => (xs.length > 0 ? xs.join(', ') : '-');
  return [
    `rollback prepared: slot ${p.slot} on green from ${p.lsn}, publication ${p.publication}, topic prefix ${p.topicPrefix}`,
    table(
      ['green -> blue', 'not written back', 'blue keeps (blueOnly)', 'derived back'],
      p.tables.map((t) => [
        t.greenTable === t.blueTable ? t.greenTable : `${t.greenTable} -> ${t.blueTable}`,
        list(t.notWrittenBack),
        list(t.blueOnly),
        list(t.derivedBack ?? []),
      ]),
    ),
    "stop teal run, then start teal reverse (same config): it streams green's writes back into blue; teal rollback switches back",
  ].join('\n');
}

/** The write window in one line: what the application could not write for, and where it went. */
function formatWindow(w: NonNullable<CutoverReport['window']>, dryRun: boolean): string {
  const steps = w.steps.map((s) => `${s.name} ${s.ms}`).join(', ');
  return dryRun
    ? `dry run: a fenced cutover would hold writes for about ${w.ms} ms now (${steps} ms); blue stayed writable`
    : `write window: ${w.ms} ms from the fence to this report (${steps} ms)`;
}

/** What was proven before the fence and what inside the window. */
function formatVerification(v: NonNullable<CutoverReport['verification']>): string {
  const inside =
    v.kind === 'full'
      ? 'every row of every table inside the window (--full-verify)'
      : `${v.afterFence.deltaKeys} changed key(s) of ${v.afterFence.deltaTables.length} table(s) re-checked inside the window`;
  const before =
    v.beforeFence.tables.length > 0
      ? `verified before the fence: ${v.beforeFence.tables.length} table(s), ${v.beforeFence.rows} row(s) online` +
        (v.beforeFence.asOfLsn ? ` (as of ${v.beforeFence.asOfLsn})` : '')
      : 'verified before the fence: nothing';
  const full = v.afterFence.fullTables.map((t) => `${t.table} (${t.reason})`);
  return [
    `${before}; ${inside}`,
    ...(v.kind === 'delta' && full.length > 0
      ? [`verified in full inside the window: ${full.join(', ')}`]
      : []),
  ].join('\n');
}

export function formatVerify(report: VerifyReportView): string {
  const rows = table(
    ['blue', 'green', 'rows blue', 'rows green', 'bad chunks', 'missing', 'extra', 'different', 'ok'],
    report.tables.map((t) => [
      t.blue,
      t.green,
      t.blueRows,
      t.greenRows,
      t.mismatchedChunks,
      t.missingInGreen.length,
      t.extraInGreen.length,
      t.different.length + (t.truncated ? '+' : ''),
      t.ok ? 'yes' : `NO${t.error ? ` (${t.error})` : ''}`,
    ]),
  );
  const verdict = report.ok
    ? `\ngreen equals blue (${report.durationMs} ms)`
    : '\nDIFFERENCES FOUND (teal verify --json for the keys)';
  return `${rows}\n${verdict}`;
}
