import { TealError } from '@teal/errors';
import { securityError } from '../security.ts';
import type { KafkaOptions } from '../types.ts';

/**
 * Errors carry `retriable`: network and broker errors yes, our own misuse (UserError) no; a
 * refused TLS handshake or SASL login is TEAL_KAFKA_TLS / TEAL_KAFKA_AUTH (security.ts).
 */
export function wrapPlatformaticError(err: unknown, what: string, options?: KafkaOptions): TealError {
  if (err instanceof TealError) return err;
  const security = options && securityError(err, what, options);
  if (security) return security;
  const e = err as { code?: string; canRetry?: boolean; findBy?: (p: string, v: unknown) => unknown };
  // Not retriable: our own misuse, or a broker answer a retry cannot change (MESSAGE_TOO_LARGE ...).
  const retriable = e.code !== 'PLT_KFK_USER' && e.canRetry !== false && !e.findBy?.('canRetry', false);
  const message = err instanceof Error ? describe(err) : String(err);
  return new TealError('TEAL_KAFKA_ERROR', `${what}: ${message}`, { retriable, cause: err });
}

/** platformatic nests errors (MultipleErrors of MultipleErrors); name the innermost ones. */
function describe(err: Error): string {
  const inner = (err as { errors?: Error[] }).errors;
  if (!inner?.length) return err.message;
  const leaves = new Set(inner.map((e) => (e instanceof Error ? describe(e) : String(e))));
  return `${err.message} (${[...leaves].slice(0, 3).join('; ')})`;
}

/** Whether the broker answered `id` (e.g. TOPIC_ALREADY_EXISTS) anywhere in a nested error. */
export const hasApiError = (err: unknown, id: string): boolean =>
  !!(err as { findBy?: (p: string, v: unknown) => unknown }).findBy?.('apiId', id);
