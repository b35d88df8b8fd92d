import { TealError } from '@teal/errors';
import type { Env } from './env-overrides.ts';

// Settings of one running process rather than of the pipeline: they are not in
// teal.config.ts, only in the environment, and they are read here (every TEAL_* variable
// is read by @teal/config; env-overrides.ts has the pipeline's own).

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

function invalid(message: string): TealError {
  return new TealError('TEAL_CONFIG_INVALID', message, { status: 400 });
}

/** TEAL_LOG_LEVEL; undefined when unset (the logger's default: info, warn under vitest). */
export function logLevelFromEnv(env: Env): LogLevel | undefined {
  const raw = env.TEAL_LOG_LEVEL?.trim();
  if (raw === undefined || raw === '') return undefined;
  if ((LOG_LEVELS as readonly string[]).includes(raw)) return raw as LogLevel;
  throw invalid(`TEAL_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(raw)}`);
}

/**
 * TEAL_RUN_THREADS: 2 (default) runs `teal run`'s producer in a worker thread, 1 runs
 * everything on one thread.
 */
export function runThreadsFromEnv(env: Env): 1 | 2 {
  const raw = env.TEAL_RUN_THREADS?.trim();
  if (raw === undefined || raw === '' || raw === '2') return 2;
  if (raw === '1') return 1;
  throw invalid(
    `TEAL_RUN_THREADS must be 1 (producer, consumer and API on one thread) or 2 (the producer in a worker thread, the default), got ${JSON.stringify(raw)}`,
  );
}

/** TEAL_CONSUMER_GROUP: the consumer group id instead of the default `<prefix>-consumer`. */
export function consumerGroupFromEnv(env: Env): string | undefined {
  const raw = env.TEAL_CONSUMER_GROUP?.trim();
  return raw === undefined || raw === '' ? undefined : raw;
}
