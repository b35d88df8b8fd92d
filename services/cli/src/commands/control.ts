import type { CutoverReport, DrainResult, FenceResult, StatusReport } from '@teal/control';
import { ApiError, ApiUnreachable, callApi } from '../api-client.ts';
import {
  apiTarget,
  type CliIo,
  EXIT,
  intOption,
  loadResolvedConfig,
  print,
  type Values,
} from '../command.ts';
import { RateTracker } from '../progress.ts';
import { formatCutover, formatStatus } from '../render.ts';

// The clients of the control API: status, pause, resume, fence, unfence, drain, cutover.
// Each prints the API's answer (--json) or a human line; errors go up to cli.ts, which maps
// them to exit codes, except a drain timeout, which has its own.

const DEFAULT_TIMEOUT_MS = 300_000;

async function target(v: Values, io: CliIo) {
  return apiTarget(await loadResolvedConfig(v, io));
}

function printJson(io: CliIo, value: unknown): void {
  print(io, JSON.stringify(value, null, 2));
}

export async function runStatus(v: Values, io: CliIo): Promise<number> {
  if (v.watch) return watchStatus(v, io);
  const status = await callApi<StatusReport>(await target(v, io), 'GET', '/status');
  if (v.json) printJson(io, status);
  else print(io, formatStatus(status));
  return status.state === 'failed' ? EXIT.failure : EXIT.ok;
}

/**
 * `teal status --watch`: on a TTY the screen is redrawn in place every interval (like
 * watch(1)); elsewhere a new block per interval (with --json, one JSON document per line).
 * An API that goes away is shown, not fatal: the pipeline may be restarting. Ends on SIGINT.
 */
async function watchStatus(v: Values, io: CliIo): Promise<number> {
  const intervalMs = intOption(v.interval, 'interval', 2_000);
  const api = await target(v, io);
  const rates = new RateTracker();
  const tty = io.stdout.isTTY === true && !v.json;
  let stopped = false;
  const stop = io.stopSignal().then(() => {
    stopped = true;
  });
  while (!stopped) {
    let block: string;
    try {
      const status = await callApi<StatusReport>(api, 'GET', '/status');
      const now = Date.now();
      block = v.json
        ? JSON.stringify(status)
        : formatStatus(status, (table, done, total) => rates.figures(table, done, total, now));
    } catch (err) {
      if (!(err instanceof ApiUnreachable)) throw err;
      block = v.json ? JSON.stringify({ error: { code: 'UNREACHABLE', message: err.message } }) : err.message;
    }
    if (v.json) print(io, block);
    else {
      const header = `teal status at ${new Date().toISOString().slice(11, 19)} UTC, every ${intervalMs / 1000} s (Ctrl-C to stop)`;
      // Home, clear the screen, draw: the block stays where the eye is.
      io.stdout.write(tty ? `\x1b[H\x1b[2J${header}\n\n${block}\n` : `${header}\n${block}\n\n`);
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([stop, new Promise((resolve) => (timer = setTimeout(resolve, intervalMs)))]);
    clearTimeout(timer);
  }
  return EXIT.ok;
}

async function simplePost<T>(v: Values, io: CliIo, path: string, human: (r: T) => string) {
  const r = await callApi<T>(await target(v, io), 'POST', path, {});
  if (v.json) printJson(io, r);
  else print(io, human(r));
  return EXIT.ok;
}

export const runPause = (v: Values, io: CliIo) =>
  simplePost(v, io, '/pause', (r: { paused: boolean }) => (r.paused ? 'paused' : 'not paused'));

export const runResume = (v: Values, io: CliIo) =>
  simplePost(v, io, '/resume', (r: { paused: boolean }) => (r.paused ? 'still paused' : 'resumed'));

export const runFence = (v: Values, io: CliIo) =>
  simplePost(
    v,
    io,
    '/fence',
    (r: FenceResult) =>
      `blue database ${r.database} fenced: new sessions are read-only; ${r.terminatedSessions} session(s) terminated`,
  );

export const runUnfence = (v: Values, io: CliIo) =>
  simplePost(v, io, '/unfence', (r: FenceResult) => `blue database ${r.database} accepts writes again`);

export async function runDrain(v: Values, io: CliIo): Promise<number> {
  const timeoutMs = intOption(v.timeout, 'timeout', DEFAULT_TIMEOUT_MS);
  const body: Record<string, unknown> = { timeoutMs };
  if (v.fence) body.fence = true;
  try {
    // The HTTP timeout outlasts the drain's own, so the API's timeout answer arrives.
    const r = await callApi<DrainResult>(await target(v, io), 'POST', '/drain', body, timeoutMs + 30_000);
    if (v.json) printJson(io, r);
    else
      print(
        io,
        `drained: everything committed on blue up to ${r.lsn} is in green (${r.waitedMs} ms${r.fenced ? ', blue fenced' : ''})` +
          (r.clean
            ? ''
            : `\nNOT CLEAN: ${r.deadLetters.total} dead letter(s), changes green lacks: ${r.deadLetters.tables.map((t) => `${t.table} ${t.count}`).join(', ')}`),
      );
    return EXIT.ok;
  } catch (err) {
    if (err instanceof ApiError && err.code === 'TEAL_DRAIN_TIMEOUT') {
      if (v.json) printJson(io, { error: { code: err.code, message: err.message, details: err.details } });
      else io.stderr.write(`teal drain: ${err.message}\n`);
      return EXIT.drainTimeout;
    }
    throw err;
  }
}

export async function runCutover(v: Values, io: CliIo): Promise<number> {
  const timeoutMs = intOption(v.timeout, 'timeout', DEFAULT_TIMEOUT_MS);
  const body: Record<string, unknown> = {
    fence: !v['no-fence'],
    verify: !v['no-verify'],
    timeoutMs,
    unfenceOnFailure: Boolean(v['unfence-on-failure']),
  };
  if (v['accept-dead-letters']) body.acceptDeadLetters = true;
  if (v['full-verify']) body.fullVerify = true;
  if (v['dry-run']) body.dryRun = true;
  if (v['with-rollback']) body.withRollback = true;
  // Drain plus verify of every table: allow ten minutes past the drain's timeout.
  const r = await callApi<CutoverReport>(await target(v, io), 'POST', '/cutover', body, timeoutMs + 600_000);
  if (v.json) printJson(io, r);
  else print(io, formatCutover(r));
  return r.safeToSwitch ? EXIT.ok : EXIT.failure;
}

/** `teal rollback`: asks the running `teal reverse` to switch back (POST /rollback). */
export async function runRollback(v: Values, io: CliIo): Promise<number> {
  const timeoutMs = intOption(v.timeout, 'timeout', DEFAULT_TIMEOUT_MS);
  const body: Record<string, unknown> = { timeoutMs };
  if (v['no-unfence']) body.unfenceBlue = false;
  const r = await callApi<CutoverReport>(await target(v, io), 'POST', '/rollback', body, timeoutMs + 600_000);
  if (v.json) printJson(io, r);
  else print(io, formatCutover(r));
  return r.safeToSwitch ? EXIT.ok : EXIT.failure;
}
