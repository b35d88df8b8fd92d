import { log } from './log.ts';
import type { KafkaOptions, TopicSpec } from './types.ts';

// The topic configs teal sets, the same whichever client creates the topic: compaction for
// `<prefix>._schemas`, and `max.message.bytes` = kafka.maxMessageBytes for the others, so a
// row of several MB is one record the broker takes (its own default is 1 MiB).

export const MAX_MESSAGE_BYTES = 'max.message.bytes';

/** The `max.message.bytes` a topic should have; null: leave the broker's. */
export function wantedMessageBytes(spec: TopicSpec, options: KafkaOptions): number | null {
  return spec.maxMessageBytes === undefined ? (options.maxMessageBytes ?? null) : spec.maxMessageBytes;
}

/** Config entries of a topic teal creates. */
export function topicConfigs(spec: TopicSpec, wanted: number | null): Array<{ name: string; value: string }> {
  const configs: Array<{ name: string; value: string }> = [];
  if (spec.compacted) configs.push({ name: 'cleanup.policy', value: 'compact' });
  if (wanted !== null) configs.push({ name: MAX_MESSAGE_BYTES, value: String(wanted) });
  return configs;
}

/** An existing topic keeps its lower limit: say what that means and how to fix it. */
export function reportLowLimit(topic: string, have: number, wanted: number, err: unknown): void {
  log().warn(
    { err, topic, maxMessageBytes: have, wanted },
    `topic ${topic} accepts records of at most ${have} bytes (max.message.bytes) and teal could not raise it to ` +
      `${wanted} (kafka.maxMessageBytes): a larger row stops the producer with TEAL_ROW_TOO_LARGE. Raise it: ` +
      `kafka-configs --alter --entity-type topics --entity-name ${topic} --add-config ${MAX_MESSAGE_BYTES}=${wanted}`,
  );
}
