import { TealError } from './teal-error.ts';

// SQLSTATEs after which the same statement can succeed if tried again
// (PostgreSQL Appendix A: connection exceptions 08, insufficient resources 53, operator
// intervention 57; serialization failure, deadlock, lock not available, object in use).
const RETRIABLE_SQLSTATE_CLASSES = new Set(['08', '53', '57']);
const RETRIABLE_SQLSTATES = new Set(['40001', '40P01', '55P03', '55006']);
const SQLSTATE = /^[0-9A-Z]{5}$/;

/**
 * The SQLSTATE of a Postgres error, if it has one. Node's system errors (EPIPE, EPERM,
 * EBADF ...) also have five capitals in `code`; they carry `syscall`/`errno`, and no
 * SQLSTATE class starts with "E", so neither is taken for one.
 */
export function sqlState(err: unknown): string | undefined {
  const e = err as { code?: unknown; syscall?: unknown; errno?: unknown } | null;
  const code = e?.code;
  if (typeof code !== 'string' || !SQLSTATE.test(code) || code.startsWith('E')) return undefined;
  return e?.syscall === undefined && e?.errno === undefined ? code : undefined;
}

/** True for "relation does not exist" / "schema does not exist" (green not initialised yet). */
export function isUndefinedObject(err: unknown): boolean {
  const state = sqlState(err);
  return state === '42P01' || state === '3F000';
}

/**
 * True when a Postgres or socket error is transient (connection, serialization, deadlock,
 * shutdown). Decided by SQLSTATE, Node's system error codes, or the `connectionLost` mark
 * that `@teal/postgres` puts on a client whose socket ended: node-postgres reports a
 * dropped connection as a plain Error with neither.
 */
export function isRetriablePgError(err: unknown): boolean {
  if (err instanceof TealError) return err.retriable;
  const state = sqlState(err);
  if (state) return RETRIABLE_SQLSTATES.has(state) || RETRIABLE_SQLSTATE_CLASSES.has(state.slice(0, 2));
  const code = (err as { code?: unknown } | null)?.code;
  // Node socket errors: ECONNRESET, ECONNREFUSED, EPIPE, ETIMEDOUT ...
  if (typeof code === 'string' && code.startsWith('E')) return true;
  return (err as { connectionLost?: unknown } | null)?.connectionLost === true;
}
