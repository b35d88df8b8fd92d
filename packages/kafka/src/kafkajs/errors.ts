import { TealError } from '@teal/errors';
import { securityError } from '../security.ts';
import type { KafkaOptions } from '../types.ts';

/**
 * Kafka errors that a retry can fix carry `retriable` (kafkajs sets it on its own errors). With
 * the client's options, a refused TLS handshake or SASL login is TEAL_KAFKA_TLS / TEAL_KAFKA_AUTH.
 */
export function wrapKafkajsError(err: unknown, what: string, options?: KafkaOptions): TealError {
  if (err instanceof TealError) return err;
  const security = options && securityError(err, what, options);
  if (security) return security;
  const retriable = (err as { retriable?: boolean }).retriable ?? true;
  const message = err instanceof Error ? err.message : String(err);
  return new TealError('TEAL_KAFKA_ERROR', `${what}: ${message}`, { retriable, cause: err });
}
