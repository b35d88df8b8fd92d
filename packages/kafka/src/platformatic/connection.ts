import type { KafkaOptions } from '../types.ts';

/** Options shared by the platformatic admin and producer: the same timeouts and retries as kafkajs's. */
export function platformaticOptions(options: KafkaOptions, role: string) {
  return {
    clientId: `${options.clientId ?? 'teal'}-${role}`,
    bootstrapBrokers: options.brokers,
    connectTimeout: 5_000,
    requestTimeout: 30_000,
    timeout: 30_000,
    retries: 8,
    retryDelay: (_client: unknown, _op: string, attempt: number) => Math.min(200 * 2 ** (attempt - 1), 5_000),
    autocreateTopics: false,
  };
}
