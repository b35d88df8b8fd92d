import { createRequire } from 'node:module';
import { TealError } from '@teal/errors';
import { type DestinationStream, type Logger as PinoLogger, pino } from 'pino';

// One logger for every part, created on first use (importing a package never opens
// stdout or reads the environment). Fields that could carry secrets are redacted by path;
// connection strings pass through redactUrl() (@teal/errors) before they are logged.
// The level and the format come from the entry point (TEAL_LOG_LEVEL, read by @teal/config;
// --log-format / TEAL_LOG_FORMAT, read by chooseLogFormat below): JSON lines for machines,
// pino-pretty's single lines for a person at a terminal. Redaction happens before either.
export type Logger = PinoLogger;

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** How a process logs: the format, and (pretty only) whether with ANSI colours. */
export interface LogOutput {
  format: LogFormat;
  color: boolean;
}

/**
 * --log-format, else TEAL_LOG_FORMAT, else `fallback` (a command's own default), else pretty
 * on a terminal and JSON otherwise. Colours only on a terminal, never with NO_COLOR set.
 * Whatever parses teal's log (a collector, a test) reads a pipe, so it gets JSON unasked.
 */
export function chooseLogFormat(options: {
  flag?: string;
  env: Record<string, string | undefined>;
  isTTY: boolean | undefined;
  fallback?: LogFormat;
}): LogOutput {
  const pick = (raw: string | undefined, where: string): LogFormat | undefined => {
    const v = raw?.trim();
    if (v === undefined || v === '') return undefined;
    if ((LOG_FORMATS as readonly string[]).includes(v)) return v as LogFormat;
    throw new TealError(
      'TEAL_CONFIG_INVALID',
      `${where} must be one of ${LOG_FORMATS.join(', ')}, got ${JSON.stringify(raw)}`,
    );
  };
  const tty = options.isTTY === true;
  const format =
    pick(options.flag, '--log-format') ??
    pick(options.env.TEAL_LOG_FORMAT, 'TEAL_LOG_FORMAT') ??
    options.fallback ??
    (tty ? 'pretty' : 'json');
  const noColor = options.env.NO_COLOR !== undefined && options.env.NO_COLOR !== '';
  return { format, color: format === 'pretty' && tty && !noColor };
}

let root: Logger | undefined;
let level: string | undefined;
let output: LogOutput = { format: 'json', color: false };

/**
 * Sets the level and/or format of the root logger; called by entry points (main thread and
 * the producer thread) before anything logs. A format change after the first line replaces
 * the root logger: child loggers made before keep the old format.
 */
export function configureLogger(options: { level?: string; output?: LogOutput }): void {
  if (options.output && (options.output.format !== output.format || options.output.color !== output.color)) {
    output = { ...options.output };
    root = undefined;
  }
  if (options.level === undefined) return;
  level = options.level;
  if (root) root.level = level;
}

/** The format the root logger writes, for threads that must write the same (producer-thread.ts). */
export function loggerOutput(): LogOutput {
  return { ...output };
}

export function rootLogger(): Logger {
  root ??= pino(
    {
      name: 'teal',
      level: level ?? (process.env.VITEST ? 'warn' : 'info'),
      redact: {
        paths: [
          'password',
          '*.password',
          'token',
          '*.token',
          'authorization',
          '*.authorization',
          'headers.authorization',
        ],
        censor: '***',
      },
    },
    output.format === 'pretty' ? prettyDestination(output.color) : undefined,
  );
  return root;
}

/**
 * pino-pretty's formatter in front of a synchronous SonicBoom on fd 1: one readable line per
 * entry ("15:41:02.113 WARN: [consumer] message {"table":...}"), written before the call
 * returns, so a thread that ends right after logging loses nothing and the lines keep their
 * order with what the CLI prints itself. Loaded only when chosen: JSON processes never load it.
 */
function prettyDestination(color: boolean): DestinationStream {
  const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
  const prettify = prettyFactory({
    colorize: color,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    // The error on the same line as its message (kafkajs logs `error` as a string); the stack
    // is in the JSON format.
    ignore: 'pid,hostname,name,component,err,error',
    messageFormat: (log) => prettyMessage(log),
  });
  const fd1 = pino.destination({ dest: 1, sync: true });
  return { write: (line: string) => fd1.write(prettify(line)) };
}

/** "[consumer] apply failed: TEAL_X: green refused ..." (component, message, then the error's code and text). */
export function prettyMessage(log: Record<string, unknown>): string {
  const component = typeof log.component === 'string' ? `[${log.component}] ` : '';
  const err = (log.err ?? log.error) as
    | { type?: string; code?: unknown; message?: string }
    | string
    | undefined;
  let cause = '';
  if (typeof err === 'string') cause = `: ${err}`;
  else if (err && typeof err === 'object')
    cause = `: ${typeof err.code === 'string' ? err.code : (err.type ?? 'Error')}: ${err.message ?? ''}`;
  return `${component}${String(log.msg ?? '')}${cause}`;
}
