import { TealError } from '@teal/errors';
import { DEFAULTS } from './defaults.ts';
import { KAFKA_CLIENTS, type KafkaClientName } from './define-config.ts';
import { type Env, envValue } from './env-overrides.ts';
import { describeValue, type Problems } from './validate.ts';

// The Kafka client names an operator may pick (kafka.client, TEAL_KAFKA_CLIENT). @teal/kafka
// implements them and takes the resolved name as its `client` option; it reads no environment.

export { KAFKA_CLIENTS, type KafkaClientName } from './define-config.ts';

const isKafkaClient = (value: unknown): value is KafkaClientName =>
  (KAFKA_CLIENTS as readonly unknown[]).includes(value);

const notKnown = (shown: string) =>
  `${shown} is not a Kafka client teal knows: set it to ${KAFKA_CLIENTS.join(' or ')}`;

/** kafka.client (or TEAL_KAFKA_CLIENT) in resolveConfig; undefined when unset or refused. */
export function kafkaClient(p: Problems, value: unknown, path: string): KafkaClientName | undefined {
  if (value === undefined || isKafkaClient(value)) return value;
  p.add(path, notKnown(describeValue(value)));
  return undefined;
}

/** The client named by `TEAL_KAFKA_CLIENT` (kafkajs | platformatic), else the default. */
export function kafkaClientFromEnv(env: Env = process.env): KafkaClientName {
  const named = envValue(env, 'TEAL_KAFKA_CLIENT');
  if (named === undefined) return DEFAULTS.kafkaClient;
  if (isKafkaClient(named)) return named;
  throw new TealError('TEAL_CONFIG_INVALID', `TEAL_KAFKA_CLIENT=${notKnown(String(named))}, or unset it`);
}
