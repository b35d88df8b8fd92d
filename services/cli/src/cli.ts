import { parseArgs } from 'node:util';
import { chooseLogFormat, configureLogger } from '@teal/runtime';
import { ApiError, ApiUnreachable } from './api-client.ts';
import { type CliIo, type Command, EXIT, type Options, print, UsageError } from './command.ts';
import { runCheckCommand } from './commands/check.ts';
import {
  runCutover,
  runDrain,
  runFence,
  runPause,
  runResume,
  runRollback,
  runStatus,
  runUnfence,
} from './commands/control.ts';
import { runDemo } from './commands/demo.ts';
import { runVerify } from './commands/verify.ts';
import { commandHelp, topHelp } from './help.ts';
import { runPipeline } from './pipeline.ts';
import { runReverse } from './reverse.ts';
import { runThreads } from './thread-protocol.ts';

// `npx teal <command>`: the command table, argument parsing, and the mapping of errors to
// exit codes. The pipeline (run, producer, consumer, api) is wired in pipeline.ts; the
// clients of the control API are in commands/.

export { type CliIo, EXIT } from './command.ts';

const common: Options = {
  help: { type: 'boolean', short: 'h' },
  config: { type: 'string' },
  'log-format': { type: 'string' },
};
const json: Options = { json: { type: 'boolean' } };
// The preflight can be wrong about a shape (a new Postgres feature, a catalog it misreads): the
// operator may skip it knowingly. The producer's own refusals (no key, a leaf partition) stay.
const skipCheck: Options = { 'skip-check': { type: 'boolean' } };
// A pod of one part alone still answers its probes and its scrape: --api serves the control
// API (health, readiness, /metrics with this process's counters, /status) beside it.
const withApi: Options = { api: { type: 'boolean' } };
const API_DETAILS =
  '--api also serves the control API on TEAL_API_HOST:TEAL_API_PORT (/healthz, /readyz, /metrics, /status),\n' +
  'for a pod of its own that is probed and scraped (infra/helm/teal).';

const COMMANDS: Record<string, Command> = {
  run: {
    summary: 'producer + consumer + control API in one process (producer in a worker thread)',
    usage: 'teal run [--config FILE] [--skip-check]',
    options: skipCheck,
    details:
      'The producer runs in a worker thread, consumer and API on the main thread: two cores, one process.\n' +
      'TEAL_RUN_THREADS=1 runs all three on one thread.\n' +
      'It runs `teal check` first and refuses a blocking finding; --skip-check starts anyway (logged as a warning).',
    run: (v, io) =>
      runPipeline(v, io, {
        producer: true,
        consumer: true,
        api: true,
        producerThread: runThreads(io.env) === 2,
        preflight: v['skip-check'] !== true,
      }),
  },
  producer: {
    summary: 'blue -> Kafka only',
    usage: 'teal producer [--config FILE] [--skip-check] [--api]',
    options: { ...skipCheck, ...withApi },
    details: API_DETAILS,
    run: (v, io) =>
      runPipeline(v, io, {
        producer: true,
        consumer: false,
        api: v.api === true,
        preflight: v['skip-check'] !== true,
      }),
  },
  consumer: {
    summary: 'Kafka -> green only',
    usage: 'teal consumer [--config FILE] [--api]',
    options: withApi,
    details: API_DETAILS,
    run: (v, io) => runPipeline(v, io, { producer: false, consumer: true, api: v.api === true }),
  },
  api: {
    summary: 'the control API alone (status from blue, green and Kafka)',
    usage: 'teal api [--config FILE]',
    options: {},
    run: (v, io) => runPipeline(v, io, { producer: false, consumer: false, api: true }),
  },
  status: {
    summary: 'pipeline state, slot lag, consumer lag, warnings',
    usage: 'teal status [--watch [--interval MS]] [--json]',
    options: { ...json, watch: { type: 'boolean' }, interval: { type: 'string' } },
    details:
      '--watch          refresh every --interval MS (1000..3600000, default 2000) until Ctrl-C: in place on\n' +
      '                 a terminal, a new block each time otherwise (with --json, one JSON document per line)',
    run: runStatus,
  },
  pause: {
    summary: 'pause producer and consumer (blue keeps WAL meanwhile)',
    usage: 'teal pause [--json]',
    options: json,
    run: runPause,
  },
  resume: {
    summary: 'resume after pause',
    usage: 'teal resume [--json]',
    options: json,
    run: runResume,
  },
  fence: {
    summary: 'make blue refuse new writes (default_transaction_read_only)',
    usage: 'teal fence [--json]',
    options: json,
    run: runFence,
  },
  unfence: {
    summary: 'undo fence: blue accepts writes again',
    usage: 'teal unfence [--json]',
    options: json,
    run: runUnfence,
  },
  drain: {
    summary: 'wait until everything committed on blue so far is applied in green',
    usage: 'teal drain [--timeout MS] [--fence] [--json]',
    options: { ...json, timeout: { type: 'string' }, fence: { type: 'boolean' } },
    details: '--timeout MS   1000..3600000, default 300000\n--fence        fence blue first (see teal fence)',
    run: runDrain,
  },
  cutover: {
    summary: 'fence, drain, copy sequences, verify; say whether it is safe to switch',
    usage:
      'teal cutover [--no-fence] [--no-verify] [--full-verify] [--dry-run] [--with-rollback] [--timeout MS] [--unfence-on-failure] [--accept-dead-letters] [--json]',
    options: {
      ...json,
      'no-fence': { type: 'boolean' },
      'no-verify': { type: 'boolean' },
      timeout: { type: 'string' },
      'unfence-on-failure': { type: 'boolean' },
      'accept-dead-letters': { type: 'boolean' },
      'full-verify': { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      'with-rollback': { type: 'boolean' },
    },
    details:
      "--accept-dead-letters   safe to switch although green lacks the dead letters' changes\n" +
      '--full-verify           verify every row inside the window (default: only what changed since each\n' +
      "                        table's online pass, a table without one in full)\n" +
      '--dry-run               everything but the fence: blue stays writable, the report gives the window\n' +
      '--with-rollback         when safe, prepare the way back on green (reverse slot and publication; teal reverse)',
    run: runCutover,
  },
  verify: {
    summary: 'compare blue (transformed) with green per table; exit 1 on a difference',
    usage: 'teal verify [--table T]... [--online] [--json]',
    options: { ...json, table: { type: 'string', multiple: true }, online: { type: 'boolean' } },
    details:
      'Asks the API; when no API answers, verifies directly against blue and green (and says so on stderr).\n' +
      '--online   chunk by chunk while the pipeline runs, a differing chunk re-checked once green has\n' +
      "           applied blue's changes of its read; kept in green for the cutover's delta",
    run: runVerify,
  },
  check: {
    summary: 'preflight: what blue, green and Kafka need before a migration; exit 1 when something blocks',
    usage: 'teal check [--with-rollback] [--json]',
    options: { ...json, 'with-rollback': { type: 'boolean' } },
    details:
      'Reads blue, green and the broker (no API needed). Every finding has a severity (block, warn, info),\n' +
      'its table, what teal does about it and the fix. Exit 0: nothing blocks; 1: something blocks;\n' +
      '3: blue, green or the broker cannot be reached. teal run runs the same checks first.\n' +
      "--with-rollback   green's readiness for cutover --with-rollback blocks (otherwise a warning)",
    run: runCheckCommand,
  },
  reverse: {
    summary: 'after cutover --with-rollback: stream green -> Kafka -> blue (the way back) + control API',
    usage: 'teal reverse [--config FILE]',
    options: {},
    details:
      'Run it with the config the cutover ran with, after stopping teal run (same API port).\n' +
      "Streams green's writes from the slot `teal cutover --with-rollback` made on green, through the inverse\n" +
      'transforms, into blue. Blue stays fenced: its target tables take writes only from this process.\n' +
      'Refuses without that slot. `teal rollback` (which asks this process) fences green, drains, copies\n' +
      'sequences back, verifies and unfences blue.',
    run: runReverse,
  },
  rollback: {
    summary: 'fence green, drain the reverse pipeline, copy sequences back, verify blue, unfence blue',
    usage: 'teal rollback [--timeout MS] [--no-unfence] [--json]',
    options: { ...json, timeout: { type: 'string' }, 'no-unfence': { type: 'boolean' } },
    details:
      'Asks the running teal reverse (same API port). Exit 0 when it is safe to switch back to blue,\n' +
      '1 when not (the failed step says why). --no-unfence: leave blue fenced even when safe.',
    run: runRollback,
  },
  demo: {
    summary: 'the end-to-end demo (env up, snapshot, workload, cutover)',
    usage:
      'teal demo [--users N] [--orders N] [--workload-seconds S] [--rollback [--green-writes-seconds S]]',
    options: {
      users: { type: 'string' },
      orders: { type: 'string' },
      'workload-seconds': { type: 'string' },
      rollback: { type: 'boolean' },
      'green-writes-seconds': { type: 'string' },
    },
    details:
      'Defaults: 100000 users, 300000 orders, 20 s of writes. Brings the local environment up unless\n' +
      'TEAL_BLUE_URL, TEAL_GREEN_URL and TEAL_KAFKA_BROKERS are all given.\n' +
      'Prints its own story; teal logs only warnings (TEAL_LOG_LEVEL says otherwise), as readable\n' +
      'lines even when piped (--log-format json or TEAL_LOG_FORMAT=json for JSON).\n' +
      '--rollback   the cutover prepares the way back; the application writes on green (10 s, or\n' +
      '             --green-writes-seconds), teal reverse streams it into blue, teal rollback switches back;\n' +
      '             the summary says whether blue has every write (green needs wal_level = logical)',
    logFormat: 'pretty',
    run: runDemo,
  },
};

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    print(io, topHelp(COMMANDS));
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr.write(`teal: unknown command "${name}"\n\n${topHelp(COMMANDS)}\n`);
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
    // Before anything logs: pino writes fd 1, the stream io.stdout stands for.
    configureLogger({
      output: chooseLogFormat({
        flag: values['log-format'] as string | undefined,
        env: io.env,
        isTTY: io.stdout.isTTY,
        fallback: command.logFormat,
      }),
    });
  } catch (err) {
    io.stderr.write(`teal ${name}: ${(err as Error).message}\n`);
    return EXIT.usage;
  }
  try {
    return await command.run(values, io);
  } catch (err) {
    return reportFailure(name, err, io);
  }
}

/** The failure on stderr, and the exit code that says which kind it was (docs/cli.md). */
function reportFailure(name: string, err: unknown, io: CliIo): number {
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
