import { type ErrorCode, errorCodes } from './codes.ts';

// One error type for the whole of teal, in the manner of kafkajs and fastify: a stable
// code to branch on, whether a retry can help, an HTTP status for the API, and a message
// that tells the operator what to change. Defaults come from the code's catalog entry.
export interface TealErrorOptions {
  retriable?: boolean;
  status?: number;
  cause?: unknown;
  details?: Record<string, unknown>;
}

export class TealError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: TealErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TealError';
    this.code = code;
    // `code` is checked at compile time; a value cast from outside still gets safe defaults.
    const known = Object.hasOwn(errorCodes, code) ? errorCodes[code] : undefined;
    this.retriable = options.retriable ?? known?.retriable ?? false;
    this.status = options.status ?? known?.status ?? 500;
    this.details = options.details;
  }
}
