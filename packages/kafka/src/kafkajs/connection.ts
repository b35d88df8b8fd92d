import { Kafka, logLevel } from 'kafkajs';
import { log } from '../log.ts';
import { kafkajsSecurity } from '../security.ts';
import type { KafkaOptions } from '../types.ts';
import { muteKafkajsNegativeTimeoutWarning } from './negative-timeout-warning.ts';

// kafkajs logs through its own logger; route it into teal's. Its ERROR lines are mostly
// responses it retries by itself (coordinator loading, topic exists), so they are warnings
// here; teal reports what finally fails through its own errors.
const KAFKAJS_NOISE = [/Limiting retries for the idempotent producer/];

// Broker answers that are part of a normal start or rebalance (the group coordinator is being
// elected or loads its offsets partition, a leader moves): kafkajs retries them by itself, so
// they are debug while they last less than TRANSIENT_MS, and warnings once the same one has
// gone on longer (then something is wrong with the cluster, and the operator should see it).
const TRANSIENT =
  /group coordinator is not available|coordinator is loading|not the correct coordinator|coordinator is not aware of this member|There is no leader for this topic-partition|leadership election/i;
export const TRANSIENT_MS = 15_000;
/** A condition not seen for this long has ended; its next occurrence starts a new episode. */
const EPISODE_GAP_MS = 10_000;

/** Level of a kafkajs ERROR/WARN line: 'debug' while a transient condition is young. */
export function transientLevel(
  episodes: Map<string, { first: number; last: number }>,
  text: string,
  now: number,
): 'debug' | 'warn' {
  const match = TRANSIENT.exec(text);
  if (!match) return 'warn';
  const key = match[0].toLowerCase();
  const seen = episodes.get(key);
  if (!seen || now - seen.last > EPISODE_GAP_MS) {
    episodes.set(key, { first: now, last: now });
    return 'debug';
  }
  seen.last = now;
  return now - seen.first < TRANSIENT_MS ? 'debug' : 'warn';
}

function logCreator() {
  const episodes = new Map<string, { first: number; last: number }>();
  return ({ level, log: entry }: { level: number; log: { message: string } & Record<string, unknown> }) => {
    const { message, ...rest } = entry;
    if (level > logLevel.WARN || KAFKAJS_NOISE.some((re) => re.test(message))) return;
    const text = `${message} ${typeof rest.error === 'string' ? rest.error : ''}`;
    if (transientLevel(episodes, text, Date.now()) === 'debug') log().debug(rest, message);
    else log().warn(rest, message);
  };
}

const optionsOfClient = new WeakMap<Kafka, KafkaOptions>();

/** The options a kafkajs client was made from (errors name its brokers and settings). */
export function kafkajsOptions(kafka: Kafka): KafkaOptions | undefined {
  return optionsOfClient.get(kafka);
}

/** The kafkajs client every kafkajs admin, producer and consumer of one KafkaClient comes from. */
export function createKafkajs(options: KafkaOptions): Kafka {
  muteKafkajsNegativeTimeoutWarning();
  const kafka = new Kafka({
    clientId: options.clientId ?? 'teal',
    brokers: options.brokers,
    ...kafkajsSecurity(options),
    logLevel: logLevel.WARN,
    logCreator,
    connectionTimeout: 5_000,
    // SASL handshakes (SCRAM's two round trips, a token hook) run in this too.
    authenticationTimeout: 10_000,
    requestTimeout: 30_000,
    retry: { initialRetryTime: 200, retries: 8, maxRetryTime: 5_000 },
  });
  optionsOfClient.set(kafka, options);
  return kafka;
}
