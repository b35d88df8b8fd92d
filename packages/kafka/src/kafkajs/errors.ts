import { TealError } from '@teal/errors';

/** Kafka errors that a retry can fix carry `retriable` (kafkajs sets it on its own errors). */
export function wrapKafkajsError(err: unknown, what: string): TealError {
  if (err instanceof TealError) return err;
  const retriable = (err as { retriable?: boolean }).retriable ?? true;
  const message = err instanceof Error ? err.message : String(err);
  return new TealError('TEAL_KAFKA_ERROR', `${what}: ${message}`, { retriable, cause: err });
}
