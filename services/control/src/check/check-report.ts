import type { Finding, Severity } from './check-findings.ts';

// Pure: the report of `teal check` (its --json form is this object, stable for tools) and its
// human form, grouped by table with the settings first; and the message of teal run's refusal.

export interface CheckReport {
  /** True when no finding blocks: `teal run` may start. */
  readonly ok: boolean;
  readonly counts: Readonly<Record<Severity, number>>;
  /** The blue tables checked ("schema.table"). */
  readonly tables: readonly string[];
  /** Sorted: settings (table null) first, then by table; block, warn, info within each. */
  readonly findings: readonly Finding[];
  /** Parts that could not be checked, and why (teal run checks on without Kafka or green). */
  readonly skipped: readonly string[];
}

export function checkReport(
  tables: readonly string[],
  findings: readonly Finding[],
  skipped: readonly string[] = [],
): CheckReport {
  const counts = { block: 0, warn: 0, info: 0 };
  for (const f of findings) counts[f.severity]++;
  // One key order for every finding, so that --json reads the same whoever built them.
  const stable = findings.map(({ severity, check, table, what, teal, fix }) => ({
    severity,
    check,
    table,
    what,
    teal,
    fix,
  }));
  return { ok: counts.block === 0, counts, tables: [...tables], findings: stable, skipped: [...skipped] };
}

const LABEL: Record<Severity, string> = { block: 'BLOCK', warn: 'WARN ', info: 'info ' };

export function formatCheckReport(report: CheckReport): string {
  const lines: string[] = [];
  let group: string | null | undefined;
  for (const f of report.findings) {
    if (f.table !== group) {
      if (group !== undefined) lines.push('');
      group = f.table;
      lines.push(f.table ?? 'settings (blue, Kafka)');
    }
    lines.push(`  ${LABEL[f.severity]} ${f.what}`);
    lines.push(`         teal: ${f.teal}`);
    if (f.fix) lines.push(`         fix:  ${f.fix}`);
  }
  if (report.findings.length > 0) lines.push('');
  for (const s of report.skipped) lines.push(`not checked: ${s}`);
  const { block, warn, info } = report.counts;
  const n = report.tables.length;
  lines.push(
    `${n} table${n === 1 ? '' : 's'} checked: ${block} blocking, ${warn} warning${warn === 1 ? '' : 's'}, ${info} note${info === 1 ? '' : 's'}`,
  );
  lines.push(
    report.ok
      ? 'NOTHING BLOCKS: teal run can start'
      : 'BLOCKED: teal run refuses to start until the BLOCK findings are fixed',
  );
  return lines.join('\n');
}

/** TEAL_CHECK_BLOCKED's message: every blocking finding, with its fix. */
export function blockedMessage(report: CheckReport): string {
  const blocking = report.findings.filter((f) => f.severity === 'block');
  return [
    `TEAL_CHECK_BLOCKED: teal check found ${blocking.length} problem${blocking.length === 1 ? '' : 's'} that must be fixed before teal starts (\`teal check\` prints the full report):`,
    ...blocking.map((f) => `  - ${f.table ? `${f.table}: ` : ''}${f.what}; fix: ${f.fix ?? '-'}`),
  ].join('\n');
}
