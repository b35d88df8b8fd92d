import type { ResolvedConfig } from '@teal/config';
import { runThreadsFromEnv } from '@teal/config';
import { isErrorCode, TealError } from '@teal/errors';
import type { LogOutput, MetricsJson } from '@teal/runtime';

// The messages between `teal run`'s main thread (producer-thread.ts) and the producer's
// worker thread (producer-worker.ts), and the pure helpers both sides share. Everything
// posted must survive structured clone: plain data, no class instances, no functions.

/** How the worker gets the producer's config: the resolved config itself, or how to load it again. */
export type ConfigSource =
  | { kind: 'resolved'; config: ResolvedConfig }
  | {
      kind: 'reload';
      /** The absolute path the main thread loaded (a config with transform functions cannot be cloned). */
      configPath: string;
      cwd: string;
      env: Record<string, string>;
      /** configFingerprint() of the main thread's config: the worker's must be the same. */
      fingerprint: string;
    };

export interface WorkerInput {
  source: ConfigSource;
  /** How often the worker posts its producer's status when it changed, ms. */
  statusIntervalMs: number;
  /** The main thread's log format: a worker's own stdout is never a TTY, and --log-format is not in its env. */
  log?: LogOutput;
}

/** An error as data: what the main thread needs to rebuild it (code and message drive the exit code and the output). */
export interface ErrorData {
  name: string;
  message: string;
  stack?: string;
  code?: string;
  retriable?: boolean;
  status?: number;
  details?: Record<string, unknown>;
}

export type ToWorker = { type: 'stop' } | { type: 'metrics'; id: number };

export type FromWorker =
  | { type: 'status'; status: unknown }
  | { type: 'started' }
  | { type: 'start-failed'; error: ErrorData }
  /** The producer's 'error' event: it failed for good after start (lost slot, protocol error). */
  | { type: 'error'; error: ErrorData }
  | { type: 'metrics'; id: number; metrics: MetricsJson }
  /** producer.stop() returned and the worker's logs are flushed: the worker may be terminated. */
  | { type: 'stopped'; metrics: MetricsJson };

export function errorToData(err: unknown): ErrorData {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const e = err as Error & { code?: unknown; retriable?: unknown; status?: unknown; details?: unknown };
  const data: ErrorData = { name: e.name, message: e.message, stack: e.stack };
  if (typeof e.code === 'string') data.code = e.code;
  if (typeof e.retriable === 'boolean') data.retriable = e.retriable;
  if (typeof e.status === 'number') data.status = e.status;
  if (e.details && typeof e.details === 'object') {
    try {
      data.details = structuredClone(e.details) as Record<string, unknown>;
    } catch {
      // Details that cannot cross threads are left out; code and message carry the error.
    }
  }
  return data;
}

/** The worker's error again, a TealError when it was one, so `teal run` reports and exits as on one thread. */
export function errorFromData(data: ErrorData): Error {
  let err: Error;
  if (data.name === 'TealError' && isErrorCode(data.code)) {
    err = new TealError(data.code, data.message, {
      retriable: data.retriable,
      status: data.status,
      details: data.details,
    });
  } else {
    err = new Error(data.message);
    err.name = data.name;
    if (data.code !== undefined) (err as Error & { code: string }).code = data.code;
  }
  if (data.stack !== undefined) err.stack = data.stack;
  return err;
}

/**
 * A text that changes when anything in the config does, transform functions included (by
 * source): the worker checks that the config it loaded again is the main thread's.
 */
export function configFingerprint(config: ResolvedConfig): string {
  return JSON.stringify(config, (_key, value: unknown) =>
    typeof value === 'function'
      ? `function:${value.toString()}`
      : typeof value === 'bigint'
        ? `bigint:${value}`
        : value,
  );
}

/** The resolved config when it can be cloned to a worker; otherwise what the worker needs to load it again. */
export function configSource(
  config: ResolvedConfig,
  cwd: string,
  env: Record<string, string | undefined>,
): ConfigSource {
  try {
    return { kind: 'resolved', config: structuredClone(config) };
  } catch {
    // Functions (derive, filter) cannot be cloned, and only a config file can hold them.
    if (config.configPath === undefined) {
      throw new TealError(
        'TEAL_CONFIG_INVALID',
        'the config holds values a worker thread cannot receive and names no file to load it from: set TEAL_RUN_THREADS=1',
        { status: 400 },
      );
    }
    const definedEnv: Record<string, string> = {};
    for (const [k, v] of Object.entries(env)) if (v !== undefined) definedEnv[k] = v;
    return {
      kind: 'reload',
      configPath: config.configPath,
      cwd,
      env: definedEnv,
      fingerprint: configFingerprint(config),
    };
  }
}

/** Frozen all the way down, as resolveConfig() leaves a config (a clone is not frozen). */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** How many threads `teal run` uses (TEAL_RUN_THREADS, read by @teal/config). */
export const runThreads = runThreadsFromEnv;
