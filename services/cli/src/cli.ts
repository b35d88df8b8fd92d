import { parseArgs } from 'node:util';
import type { StatusReport } from '@teal/control';
import { ApiError, type ApiTarget, ApiUnreachable, apiBaseUrl, callApi } from './api-client.ts';
import { bytes, ProgressBar, type ProgressStream, table } from './format.ts';
import type { ProducerThread } from './producer-thread.ts';
import { runThreads } from './thread-protocol.ts';

// `npx teal <command>`: the pipeline (run, producer, consumer, api) and the clients of the
// control API (status, pause, resume, drain, cutover, fence, unfence, verify). Exit codes are
// part of the interface (docs/cli.md): scripts branch on them.

export const EXIT = { ok: 0, failure: 1, usage: 2, unreachable: 3, drainTimeout: 4 } as const;

export interface CliIo {
  stdout: ProgressStream;
  stderr: ProgressStream;
  env: Record<string, string | undefined>;
  cwd: string;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM); long-running commands wait on it. */
  stopSignal: () => Promise<string>;
}

type Options = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>;

interface Command {
  summary: string;
  usage: string;
  options: Options;
  details?: string;
  run(values: Record<string, unknown>, io: CliIo): Promise<number>;
}

const common: Options = { help: { type: 'boolean', short: 'h' }, config: { type: 'string' } };
const json: Options = { json: { type: 'boolean' } };

class UsageError extends Error {}

const COMMANDS: Record<string, Command> = {
  run: {
    summary: 'producer + consumer + control API in one process (producer in a worker thread)',
    usage: 'teal run [--config FILE]',
    options: {},
    details:
      'The producer runs in a worker thread, consumer and API on the main thread: two cores, one process.\n' +
      'TEAL_RUN_THREADS=1 runs all three on one thread.',
    run: (v, io) =>
      runPipeline(v, io, {
        producer: true,
        consumer: true,
        api: true,
        producerThread: runThreads(io.env) === 2,
      }),
  },
  producer: {
    summary: 'blue -> Kafka only',
    usage: 'teal producer [--config FILE]',
    options: {},
    run: (v, io) => runPipeline(v, io, { producer: true, consumer: false, api: false }),
  },
  consumer: {
    summary: 'Kafka -> green only',
    usage: 'teal consumer [--config FILE]',
    options: {},
    run: (v, io) => runPipeline(v, io, { producer: false, consumer: true, api: false }),
  },
  api: {
    summary: 'the control API alone (status from blue, green and Kafka)',
    usage: 'teal api [--config FILE]',
    options: {},
    run: (v, io) => runPipeline(v, io, { producer: false, consumer: false, api: true }),
  },
  status: {
    summary: 'pipeline state, slot lag, consumer lag, warnings',
    usage: 'teal status [--json]',
    options: json,
    run: async (v, io) => {
      const status = await callApi<StatusReport>(await target(v, io), 'GET', '/status');
      if (v.json) print(io, JSON.stringify(status, null, 2));
      else print(io, formatStatus(status));
      return status.state === 'failed' ? EXIT.failure : EXIT.ok;
    },
  },
  pause: {
    summary: 'pause producer and consumer (blue keeps WAL meanwhile)',
    usage: 'teal pause [--json]',
    options: json,
    run: (v, io) =>
      simplePost(v, io, '/pause', (r: { paused: boolean }) => (r.paused ? 'paused' : 'not paused')),
  },
  resume: {
    summary: 'resume after pause',
    usage: 'teal resume [--json]',
    options: json,
    run: (v, io) =>
      simplePost(v, io, '/resume', (r: { paused: boolean }) => (r.paused ? 'still paused' : 'resumed')),
  },
  fence: {
    summary: 'make blue refuse new writes (default_transaction_read_only)',
    usage: 'teal fence [--json]',
    options: json,
    run: (v, io) =>
      simplePost(
        v,
        io,
        '/fence',
        (r: { database: string; terminatedSessions: number }) =>
          `blue database ${r.database} fenced: new sessions are read-only; ${r.terminatedSessions} session(s) terminated`,
      ),
  },
  unfence: {
    summary: 'undo fence: blue accepts writes again',
    usage: 'teal unfence [--json]',
    options: json,
    run: (v, io) =>
      simplePost(
        v,
        io,
        '/unfence',
        (r: { database: string }) => `blue database ${r.database} accepts writes again`,
      ),
  },
  drain: {
    summary: 'wait until everything committed on blue so far is applied in green',
    usage: 'teal drain [--timeout MS] [--fence] [--json]',
    options: { ...json, timeout: { type: 'string' }, fence: { type: 'boolean' } },
    details: '--timeout MS   1000..3600000, default 300000\n--fence        fence blue first (see teal fence)',
    run: async (v, io) => {
      const timeoutMs = intOption(v.timeout, 'timeout', 300_000);
      const body: Record<string, unknown> = { timeoutMs };
      if (v.fence) body.fence = true;
      try {
        const r = await callApi<{ lsn: string; waitedMs: number; fenced: boolean }>(
          await target(v, io),
          'POST',
          '/drain',
          body,
          timeoutMs + 30_000,
        );
        if (v.json) print(io, JSON.stringify(r, null, 2));
        else
          print(
            io,
            `drained: everything committed on blue up to ${r.lsn} is in green (${r.waitedMs} ms${r.fenced ? ', blue fenced' : ''})`,
          );
        return EXIT.ok;
      } catch (err) {
        if (err instanceof ApiError && err.code === 'TEAL_DRAIN_TIMEOUT') {
          if (v.json)
            print(
              io,
              JSON.stringify(
                { error: { code: err.code, message: err.message, details: err.details } },
                null,
                2,
              ),
            );
          else io.stderr.write(`teal drain: ${err.message}\n`);
          return EXIT.drainTimeout;
        }
        throw err;
      }
    },
  },
  cutover: {
    summary: 'fence, drain, copy sequences, verify; say whether it is safe to switch',
    usage: 'teal cutover [--no-fence] [--no-verify] [--timeout MS] [--unfence-on-failure] [--json]',
    options: {
      ...json,
      'no-fence': { type: 'boolean' },
      'no-verify': { type: 'boolean' },
      timeout: { type: 'string' },
      'unfence-on-failure': { type: 'boolean' },
    },
    run: async (v, io) => {
      const timeoutMs = intOption(v.timeout, 'timeout', 300_000);
      const body = {
        fence: !v['no-fence'],
        verify: !v['no-verify'],
        timeoutMs,
        unfenceOnFailure: Boolean(v['unfence-on-failure']),
      };
      const r = await callApi<{
        safeToSwitch: boolean;
        drainLsn: string | null;
        fenced: boolean;
        steps: Array<{ name: string; ok: boolean; ms: number; details: string }>;
        sequences: Array<{
          blue: string;
          green: string | null;
          value: string | null;
          ok: boolean;
          note: string | null;
        }>;
        warnings: string[];
      }>(await target(v, io), 'POST', '/cutover', body, timeoutMs + 600_000);
      if (v.json) print(io, JSON.stringify(r, null, 2));
      else {
        print(
          io,
          table(
            ['step', 'ok', 'ms', 'details'],
            r.steps.map((s) => [s.name, s.ok ? 'yes' : 'NO', s.ms, s.details]),
          ),
        );
        const copied = r.sequences.filter((s) => s.green);
        if (copied.length > 0) {
          print(
            io,
            `\n${table(
              ['sequence (blue)', 'green', 'value'],
              copied.map((s) => [s.blue, s.green, s.value]),
            )}`,
          );
        }
        for (const w of r.warnings) print(io, `warning: ${w}`);
        print(
          io,
          r.safeToSwitch
            ? `\nSAFE TO SWITCH: green holds everything up to ${r.drainLsn}${r.fenced ? '; blue stays fenced' : ''}`
            : '\nNOT SAFE TO SWITCH (see the failed step above)',
        );
      }
      return r.safeToSwitch ? EXIT.ok : EXIT.failure;
    },
  },
  verify: {
    summary: 'compare blue (transformed) with green per table; exit 1 on a difference',
    usage: 'teal verify [--table T]... [--json]',
    options: { ...json, table: { type: 'string', multiple: true } },
    details:
      'Asks the API; when no API answers, verifies directly against blue and green (and says so on stderr).',
    run: runVerify,
  },
  demo: {
    summary: 'the end-to-end demo (env up, snapshot, workload, cutover)',
    usage: 'teal demo',
    options: {},
    run: async () => {
      let mod: { runDemo?: (opts: { print?: boolean; envUp?: boolean }) => Promise<unknown> };
      try {
        mod = await import(new URL('../../../demo/run.ts', import.meta.url).href);
      } catch {
        throw new Error('demo not available: demo/run.ts is missing from this checkout');
      }
      if (typeof mod.runDemo !== 'function')
        throw new Error('demo not available: demo/run.ts has no runDemo()');
      const summary = (await mod.runDemo({ print: true, envUp: true })) as {
        cutover?: { safeToSwitch?: boolean };
      };
      return summary?.cutover?.safeToSwitch === false ? EXIT.failure : EXIT.ok;
    },
  },
};

function topHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'teal — stream PostgreSQL blue -> Kafka -> green, drain, verify, cut over',
    '',
    'usage: teal <command> [options]',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'options everywhere: --config FILE (default ./teal.config.ts), --help',
    'env: TEAL_BLUE_URL TEAL_GREEN_URL TEAL_KAFKA_BROKERS TEAL_API_HOST TEAL_API_PORT TEAL_API_TOKEN',
    'exit codes: 0 ok, 1 failure / not safe / mismatch, 2 usage, 3 API unreachable, 4 drain timeout',
  ].join('\n');
}

function commandHelp(name: string, c: Command): string {
  return [
    `teal ${name}: ${c.summary}`,
    '',
    `usage: ${c.usage}`,
    ...(c.details ? ['', c.details] : []),
    '',
    'options: --config FILE, --help',
  ].join('\n');
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    print(io, topHelp());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr.write(`teal: unknown command "${name}"\n\n${topHelp()}\n`);
    return EXIT.usage;
  }
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: { ...common, ...command.options },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    io.stderr.write(`teal ${name}: ${(err as Error).message}\n\n${commandHelp(name, command)}\n`);
    return EXIT.usage;
  }
  if (values.help) {
    print(io, commandHelp(name, command));
    return EXIT.ok;
  }
  try {
    return await command.run(values, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`teal ${name}: ${err.message}\n`);
      return EXIT.usage;
    }
    if (err instanceof ApiUnreachable) {
      io.stderr.write(`teal ${name}: ${err.message}\n`);
      return EXIT.unreachable;
    }
    if (err instanceof ApiError) {
      io.stderr.write(`teal ${name}: ${err.message} (${err.code}, HTTP ${err.status})\n`);
      return err.status === 400 ? EXIT.usage : EXIT.failure;
    }
    const code = (err as { code?: string }).code;
    io.stderr.write(`teal ${name}: ${(err as Error).message ?? String(err)}\n`);
    return code === 'TEAL_CONFIG_INVALID' || code === 'TEAL_API_INSECURE_BIND' ? EXIT.usage : EXIT.failure;
  }
}

function print(io: CliIo, text: string): void {
  io.stdout.write(`${text}\n`);
}

function intOption(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1_000 || n > 3_600_000) {
    throw new UsageError(
      `--${name} must be an integer number of milliseconds in 1000..3600000, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

async function loadResolvedConfig(v: Record<string, unknown>, io: CliIo) {
  const { loadConfig } = await import('@teal/config');
  return loadConfig({ cwd: io.cwd, configPath: v.config as string | undefined, env: io.env });
}

async function target(v: Record<string, unknown>, io: CliIo): Promise<ApiTarget> {
  const config = await loadResolvedConfig(v, io);
  return { host: config.api.host, port: config.api.port, token: config.api.token };
}

async function simplePost<T>(v: Record<string, unknown>, io: CliIo, path: string, human: (r: T) => string) {
  const r = await callApi<T>(await target(v, io), 'POST', path, {});
  print(io, v.json ? JSON.stringify(r, null, 2) : human(r));
  return EXIT.ok;
}

export function formatStatus(s: StatusReport): string {
  const lines: string[] = [];
  lines.push(`state     ${s.state}${s.paused ? ' (paused)' : ''}${s.fenced ? ' (blue fenced)' : ''}`);
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
      lines.push(
        table(
          ['  snapshot', 'state', 'rows', 'of'],
          snap.map((t) => [`  ${t.table}`, t.state, t.rowsDone, t.rowsEstimated]),
        ),
      );
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

interface VerifyReportLike {
  ok: boolean;
  durationMs: number;
  tables: Array<{
    blue: string;
    green: string;
    ok: boolean;
    blueRows: number;
    greenRows: number;
    mismatchedChunks: number;
    missingInGreen: unknown[];
    extraInGreen: unknown[];
    different: unknown[];
    truncated: boolean;
    error?: string;
  }>;
}

async function runVerify(v: Record<string, unknown>, io: CliIo): Promise<number> {
  const config = await loadResolvedConfig(v, io);
  const tables = v.table as string[] | undefined;
  const api = { host: config.api.host, port: config.api.port, token: config.api.token };
  let report: VerifyReportLike;
  try {
    report = await callApi<VerifyReportLike>(api, 'POST', '/verify', tables ? { tables } : {}, 3_600_000);
  } catch (err) {
    if (!(err instanceof ApiUnreachable)) throw err;
    io.stderr.write(`teal verify: no API at ${apiBaseUrl(api)}: verifying directly against blue and green\n`);
    const { verifyTables } = await import('@teal/control');
    const { compileTransforms } = await import('@teal/config');
    const bar = new ProgressBar(io.stderr);
    try {
      report = (await verifyTables({
        blueUrl: config.blue.url,
        greenUrl: config.green.url,
        config,
        transforms: compileTransforms(config),
        tables,
        onProgress: (p) => bar.update(p.table, p.rowsDone, p.rowsTotalEstimate),
      })) as VerifyReportLike;
    } finally {
      bar.done();
    }
  }
  if (v.json) print(io, JSON.stringify(report, null, 2));
  else {
    print(
      io,
      table(
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
      ),
    );
    print(
      io,
      report.ok
        ? `\ngreen equals blue (${report.durationMs} ms)`
        : '\nDIFFERENCES FOUND (teal verify --json for the keys)',
    );
  }
  return report.ok ? EXIT.ok : EXIT.failure;
}

interface Component {
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): unknown;
  on?(event: 'error', listener: (err: unknown) => void): unknown;
}

async function runPipeline(
  v: Record<string, unknown>,
  io: CliIo,
  parts: { producer: boolean; consumer: boolean; api: boolean; producerThread?: boolean },
): Promise<number> {
  const config = await loadResolvedConfig(v, io);
  const { createMetrics, rootLogger } = await import('@teal/runtime');
  const logger = rootLogger();
  const { assertSafeBind, startApi, TealControl } = await import('@teal/control');
  if (parts.api) assertSafeBind(config.api.host, config.api.token);
  const metrics = createMetrics();
  const started: Component[] = [];
  let failed: unknown;
  let failedResolve: (() => void) | undefined;
  const failure = new Promise<string>((resolve) => {
    failedResolve = () => resolve('failure');
  });
  let producer: Component | undefined;
  let thread: ProducerThread | undefined;
  let consumer: Component | undefined;
  let api: { close(): Promise<void> } | undefined;
  let control: InstanceType<typeof TealControl> | undefined;
  try {
    if (parts.producer) {
      if (parts.producerThread) {
        const { ProducerThread } = await import('./producer-thread.ts');
        thread = new ProducerThread(config, { cwd: io.cwd, env: io.env, logger });
        producer = thread;
      } else {
        const { Producer } = await import('@teal/producer');
        producer = new Producer(config, { metrics, logger }) as unknown as Component;
      }
      producer.on?.('error', (err) => {
        failed = err;
        failedResolve?.();
      });
      await producer.start();
      started.push(producer);
    }
    if (parts.consumer) {
      const { Consumer } = await import('@teal/consumer');
      consumer = new Consumer(config, { metrics, logger }) as unknown as Component;
      await consumer.start();
      started.push(consumer);
    }
    if (parts.api) {
      control = new TealControl(config, { producer, consumer, metrics, logger });
      const producerThread = thread;
      const server = await startApi(
        config,
        control,
        metrics,
        logger,
        producerThread ? { moreMetrics: async () => [await producerThread.metrics()] } : {},
      );
      api = server;
      io.stderr.write(
        `teal: control API on ${server.url}${config.api.token ? ' (bearer token required)' : ''}\n`,
      );
    }
    const why = await Promise.race([io.stopSignal(), failure]);
    if (why === 'failure') throw failed;
    logger.info({ signal: why }, 'stopping');
    return EXIT.ok;
  } finally {
    await api?.close().catch(() => {});
    await control?.close().catch(() => {});
    for (const c of started.reverse()) await c.stop().catch(() => {});
  }
}
