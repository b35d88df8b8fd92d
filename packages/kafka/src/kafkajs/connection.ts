import { Kafka, logLevel } from 'kafkajs';
import { log } from '../log.ts';
import type { KafkaOptions } from '../types.ts';

// kafkajs logs through its own logger; route it into teal's. Its ERROR lines are mostly
// responses it retries by itself (coordinator loading, topic exists), so they are warnings
// here; teal reports what finally fails through its own errors.
const KAFKAJS_NOISE = [/Limiting retries for the idempotent producer/];
function logCreator() {
  return ({ level, log: entry }: { level: number; log: { message: string } & Record<string, unknown> }) => {
    const { message, ...rest } = entry;
    if (level > logLevel.WARN || KAFKAJS_NOISE.some((re) => re.test(message))) return;
    log().warn(rest, message);
  };
}

/** The kafkajs client every kafkajs admin, producer and consumer of one KafkaClient comes from. */
export function createKafkajs(options: KafkaOptions): Kafka {
  return new Kafka({
    clientId: options.clientId ?? 'teal',
    brokers: options.brokers,
    logLevel: logLevel.WARN,
    logCreator,
    connectionTimeout: 5_000,
    requestTimeout: 30_000,
    retry: { initialRetryTime: 200, retries: 8, maxRetryTime: 5_000 },
  });
}
