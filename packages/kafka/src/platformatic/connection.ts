import { Admin } from '@platformatic/kafka';
import { platformaticSecurity, securityError } from '../security.ts';
import type { KafkaOptions } from '../types.ts';

/** Options shared by the platformatic admin and producer: the same timeouts and retries as kafkajs's. */
export function platformaticOptions(options: KafkaOptions, role: string) {
  return {
    clientId: `${options.clientId ?? 'teal'}-${role}`,
    bootstrapBrokers: options.brokers,
    ...platformaticSecurity(options),
    connectTimeout: 5_000,
    requestTimeout: 30_000,
    timeout: 30_000,
    retries: 8,
    retryDelay: (_client: unknown, _op: string, attempt: number) => Math.min(200 * 2 ** (attempt - 1), 5_000),
    autocreateTopics: false,
  };
}

const checked = new WeakMap<KafkaOptions, Promise<void>>();

/**
 * With TLS or SASL set, one connect without retries before the first use of `options`:
 * platformatic retries a refused handshake or login like any failed connect (8 times, ~20 s),
 * so this is where TEAL_KAFKA_TLS / TEAL_KAFKA_AUTH come from at once. Any other failure (a
 * broker away) is left to the retrying client. Shared by the admin and publisher of one
 * KafkaClient; a refusal is not kept, so the next use asks again (a token hook may recover).
 */
export function checkSecurity(options: KafkaOptions): Promise<void> {
  if (!options.tls && !options.sasl) return Promise.resolve();
  let check = checked.get(options);
  if (!check) {
    check = (async () => {
      const probe = new Admin({ ...platformaticOptions(options, 'preflight'), retries: 0 });
      try {
        await probe.metadata({ topics: [] });
      } catch (err) {
        const refused = securityError(err, 'cannot connect to Kafka', options);
        if (refused) throw refused;
      } finally {
        await probe.close().catch(() => undefined);
      }
    })();
    checked.set(options, check);
    check.catch(() => checked.delete(options));
  }
  return check;
}
