import { isRetriablePgError } from '@teal/errors';

export interface RetryOptions {
  /** Give up after this long; default: never (until the signal aborts). */
  deadlineMs?: number;
  initialDelayMs?: number;
  maxDelayMs?: number;
  signal?: AbortSignal;
  isRetriable?: (err: unknown) => boolean;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /**
   * Asked after each failure: true when the call ran well for a while before it failed (a
   * stream that streamed), so the backoff starts again from its first step rather than
   * going on from the delays of failures long ago.
   */
  madeProgress?: () => boolean;
}

/**
 * How long one retried failure (the same batch, the same call) is an expected part of normal
 * operation — a rebalance, a lane waiting for an earlier batch — and logged at info. Past it
 * the operator should see it: warn.
 */
export const EXPECTED_RETRY_MS = 15_000;

/** The level of a retry's log line, from when the same failure was first seen. */
export function retryLogLevel(firstFailureAt: number, now = Date.now()): 'info' | 'warn' {
  return now - firstFailureAt < EXPECTED_RETRY_MS ? 'info' : 'warn';
}

/** Runs `fn` until it succeeds, retrying transient errors with capped exponential backoff and jitter. */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const started = Date.now();
  const initial = options.initialDelayMs ?? 100;
  const max = options.maxDelayMs ?? 5_000;
  const retriable = options.isRetriable ?? isRetriablePgError;
  let step = 0;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!retriable(err) || options.signal?.aborted) throw err;
      step = options.madeProgress?.() ? 1 : step + 1;
      const delay = Math.min(max, initial * 2 ** (step - 1)) * (0.5 + Math.random() / 2);
      if (options.deadlineMs !== undefined && Date.now() - started + delay > options.deadlineMs) throw err;
      options.onRetry?.(err, attempt, delay);
      await abortableDelay(delay, options.signal);
    }
  }
}

export function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Polls `check` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  {
    timeoutMs = 30_000,
    intervalMs = 100,
    what = 'condition',
  }: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value as T;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await abortableDelay(intervalMs);
  }
}
