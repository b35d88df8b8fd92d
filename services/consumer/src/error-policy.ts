import { isRetriablePgError, sqlState, TealError } from '@teal/errors';

// What a failed apply means for the batch. Transient faults (connection reset, 40001, 40P01,
// shutdown, a broker moving) are retried in place with backoff and keep the partition's place.
// Permanent faults belong to one record (a constraint green enforces, a value green rejects,
// a transform that throws, bytes that do not decode): the record is isolated and dead-lettered
// and its neighbours flow on. A blocked partition (schema policy, an offset gap) waits for the operator.

export type ErrorClass = 'transient' | 'permanent' | 'blocked';

// Catalog drift (a table or column green dropped or added under us) is not the record's
// fault: the catalog cache is reloaded and the batch retried, the schema policy then decides.
const CATALOG_DRIFT = new Set(['42703', '42P01']);
// A value green rejects: data exceptions (22), integrity violations (23), a datatype
// mismatch, a value too large for an index row.
const RECORD_CLASSES = new Set(['22', '23']);
const RECORD_STATES = new Set(['42804', '54000', '2202E', '42P18']);

export function classifyError(err: unknown): ErrorClass {
  if (err instanceof TealError) {
    if (err.code === 'TEAL_SCHEMA_BLOCKED' || err.code === 'TEAL_OFFSET_GAP') return 'blocked';
    // Green refused a new session's TLS or login (a rotated password or certificate): not
    // the record's fault, as its 28P01 was not before teal named it; the partition waits.
    if (err.code === 'TEAL_PG_TLS' || err.code === 'TEAL_PG_AUTH') return 'blocked';
    return err.retriable ? 'transient' : 'permanent';
  }
  const state = sqlState(err);
  if (state !== undefined) {
    if (CATALOG_DRIFT.has(state) || isRetriablePgError(err)) return 'transient';
    if (RECORD_CLASSES.has(state.slice(0, 2)) || RECORD_STATES.has(state)) return 'permanent';
    // Anything else (permission denied, a type green lacks ...) is not one record's fault:
    // dead-lettering would empty the stream into the DLQ. The partition waits instead.
    return 'blocked';
  }
  // Broker errors carry `retriable` (kafkajs); other non-SQL errors are taken as transient
  // so that nothing is dead-lettered for a fault that is not the record's.
  const retriable = (err as { retriable?: unknown } | null)?.retriable;
  if (typeof retriable === 'boolean') return retriable ? 'transient' : 'permanent';
  return 'transient';
}

export function isCatalogDrift(err: unknown): boolean {
  const state = sqlState(err);
  return state !== undefined && CATALOG_DRIFT.has(state);
}

/** The SQLSTATE or teal code that names a failure in the dead-letter headers. */
export function errorCode(err: unknown): string {
  if (err instanceof TealError) return err.code;
  return sqlState(err) ?? 'TEAL_APPLY_FAILED';
}

export function errorMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const detail = (err as { detail?: unknown } | null)?.detail;
  return typeof detail === 'string' && detail.length > 0 ? `${message} (${detail})` : message;
}
