// One error type for the whole of teal, in the manner of kafkajs and fastify: a stable
// code to branch on, whether a retry can help, an HTTP status for the API, and a message
// that tells the operator what to change.
export interface TealErrorOptions {
  retriable?: boolean;
  status?: number;
  cause?: unknown;
  details?: Record<string, unknown>;
}

export class TealError extends Error {
  readonly code: string;
  readonly retriable: boolean;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, options: TealErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TealError';
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.status = options.status ?? 500;
    this.details = options.details;
  }
}

// SQLSTATEs after which the same statement can succeed if tried again.
const RETRIABLE_SQLSTATE_CLASSES = new Set(['08', '53', '57']);
const RETRIABLE_SQLSTATES = new Set(['40001', '40P01', '55P03', '55006']);

/** True when a Postgres or socket error is transient (connection, serialization, deadlock, shutdown). */
export function isRetriablePgError(err: unknown): boolean {
  if (err instanceof TealError) return err.retriable;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (/^[0-9A-Z]{5}$/.test(code)) {
      return RETRIABLE_SQLSTATES.has(code) || RETRIABLE_SQLSTATE_CLASSES.has(code.slice(0, 2));
    }
    // Node socket errors: ECONNRESET, ECONNREFUSED, EPIPE, ETIMEDOUT ...
    return code.startsWith('E');
  }
  const message = (err as { message?: unknown } | null)?.message;
  // node-postgres reports a dropped socket without a code.
  return typeof message === 'string' && /Connection terminated|connection.*(closed|ended)/i.test(message);
}

/** The SQLSTATE of a Postgres error, if it has one. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** A connection string with its password removed, safe for logs and API answers. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const key of [...parsed.searchParams.keys()]) {
      if (/pass|secret|token|key/i.test(key)) parsed.searchParams.set(key, '***');
    }
    return parsed.toString();
  } catch {
    return url.replace(/:\/\/([^:/@]+):[^@]*@/, '://$1:***@');
  }
}
