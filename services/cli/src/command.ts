import type { ResolvedConfig } from '@teal/config';
import type { LogFormat } from '@teal/runtime';
import type { ApiTarget } from './api-client.ts';
import type { ProgressStream } from './format.ts';

// What every command is handed and returns, shared by the command table (cli.ts) and the
// files that run the commands, so that they depend on this file and never on each other.

/** Exit codes are part of the interface (docs/cli.md): scripts branch on them. */
export const EXIT = { ok: 0, failure: 1, usage: 2, unreachable: 3, drainTimeout: 4 } as const;

export interface CliIo {
  stdout: ProgressStream;
  stderr: ProgressStream;
  env: Record<string, string | undefined>;
  cwd: string;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM); long-running commands wait on it. */
  stopSignal: () => Promise<string>;
}

/** The parsed options of one command line (node:util parseArgs values). */
export type Values = Record<string, unknown>;

export type Options = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>;

export interface Command {
  summary: string;
  usage: string;
  options: Options;
  details?: string;
  /** The log format when neither --log-format nor TEAL_LOG_FORMAT says one (default: pretty on a TTY, else JSON). */
  logFormat?: LogFormat;
  run(values: Values, io: CliIo): Promise<number>;
}

/** A bad option value found after parsing: reported like a parse error, exit 2. */
export class UsageError extends Error {}

export function print(io: CliIo, text: string): void {
  io.stdout.write(`${text}\n`);
}

/** A --timeout style option: whole milliseconds in 1000..3600000. */
export function intOption(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1_000 || n > 3_600_000) {
    throw new UsageError(
      `--${name} must be an integer number of milliseconds in 1000..3600000, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

// Loaded on demand, so that `teal --help` and usage errors do not load the config stack.
export async function loadResolvedConfig(v: Values, io: CliIo): Promise<ResolvedConfig> {
  const { loadConfig } = await import('@teal/config');
  return loadConfig({ cwd: io.cwd, configPath: v.config as string | undefined, env: io.env });
}

export function apiTarget(config: ResolvedConfig): ApiTarget {
  return { host: config.api.host, port: config.api.port, token: config.api.token };
}
