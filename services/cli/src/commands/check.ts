import { type CliIo, EXIT, loadResolvedConfig, print, type Values } from '../command.ts';

// `teal check`: the preflight before a migration (services/control/src/check/). Reads blue,
// green and the broker and reports what needs attention; exit 0 when nothing blocks, 1 when
// something does, 3 when blue, green or the broker cannot be reached (docs/cli.md).

export async function runCheckCommand(v: Values, io: CliIo): Promise<number> {
  const config = await loadResolvedConfig(v, io);
  const { runCheck, formatCheckReport } = await import('@teal/control');
  let report: Awaited<ReturnType<typeof runCheck>>;
  try {
    report = await runCheck({ config, withRollback: v['with-rollback'] === true });
  } catch (err) {
    if ((err as { code?: string }).code !== 'TEAL_UNAVAILABLE') throw err;
    io.stderr.write(`teal check: ${(err as Error).message}\n`);
    return EXIT.unreachable;
  }
  print(io, v.json ? JSON.stringify(report, null, 2) : formatCheckReport(report));
  return report.ok ? EXIT.ok : EXIT.failure;
}
