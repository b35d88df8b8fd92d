import type { VerifyReportView } from '@teal/control';
import { ApiUnreachable, apiBaseUrl, callApi } from '../api-client.ts';
import { apiTarget, type CliIo, EXIT, loadResolvedConfig, print, type Values } from '../command.ts';
import { TableProgress } from '../progress.ts';
import { formatVerify } from '../render.ts';

// `teal verify`: the API's verify when one answers, otherwise the same comparison run here,
// so that verify works after the pipeline is gone (the usual moment after a cutover).

export async function runVerify(v: Values, io: CliIo): Promise<number> {
  const config = await loadResolvedConfig(v, io);
  const tables = v.table as string[] | undefined;
  const online = v.online === true;
  const api = apiTarget(config);
  let report: VerifyReportView;
  try {
    const body = { ...(tables ? { tables } : {}), ...(online ? { online } : {}) };
    report = await callApi<VerifyReportView>(api, 'POST', '/verify', body, 3_600_000);
  } catch (err) {
    if (!(err instanceof ApiUnreachable)) throw err;
    io.stderr.write(`teal verify: no API at ${apiBaseUrl(api)}: verifying directly against blue and green\n`);
    if (online) {
      // Online verify waits on the slot and the topics as drain does: the control plane has them.
      const { TealControl } = await import('@teal/control');
      const control = new TealControl(config);
      try {
        report = await control.verify({ tables, online });
      } finally {
        await control.close();
      }
      if (v.json) print(io, JSON.stringify(report, null, 2));
      else print(io, formatVerify(report));
      return report.ok ? EXIT.ok : EXIT.failure;
    }
    const { verifyTables } = await import('@teal/control');
    const { compileTransforms } = await import('@teal/config');
    const bar = new TableProgress(io.stderr);
    try {
      report = await verifyTables({
        blueUrl: config.blue.url,
        greenUrl: config.green.url,
        config,
        transforms: compileTransforms(config),
        tables,
        onProgress: (p) => bar.update(p.table, p.rowsDone, p.rowsTotalEstimate),
      });
    } finally {
      bar.stop();
    }
  }
  if (v.json) print(io, JSON.stringify(report, null, 2));
  else print(io, formatVerify(report));
  return report.ok ? EXIT.ok : EXIT.failure;
}
