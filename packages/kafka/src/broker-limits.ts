import type { ConfigResourceTypes } from 'kafkajs';
import type { KafkaClient } from './client.ts';
import { wrapKafkajsError } from './kafkajs/errors.ts';

// The size limits a change record meets on its way into Kafka, as the brokers report them
// (DescribeConfigs): `teal check` compares them with blue's largest rows. A topic's own
// `max.message.bytes` wins over the broker's `message.max.bytes` for that topic (Kafka's
// topic-level config); `socket.request.max.bytes` caps any single Produce request.

export interface BrokerLimits {
  /** The broker's `message.max.bytes`: the limit of topics that set none of their own. */
  readonly messageMaxBytes: number;
  /** The broker's `socket.request.max.bytes`, null when the broker does not say. */
  readonly socketRequestMaxBytes: number | null;
  /** Existing topics among those asked for -> their effective `max.message.bytes`. */
  readonly topics: ReadonlyMap<string, number>;
}

const BROKER_CONFIGS = ['message.max.bytes', 'socket.request.max.bytes'];
// DescribeConfigs resource types (Kafka's ConfigResource.Type); kafkajs's enum is not an
// export Node's ESM loader sees in its CommonJS build.
const TOPIC = 2 as ConfigResourceTypes;
const BROKER = 4 as ConfigResourceTypes;

/**
 * Reads the limits from one broker (the cluster's controller answers for itself; a
 * cluster's brokers normally share them) and from those of `topics` that exist. Uses the
 * kafkajs admin whichever client publishes: both talk to the same brokers.
 */
export async function readBrokerLimits(
  client: KafkaClient,
  topics: readonly string[],
): Promise<BrokerLimits> {
  const admin = client.kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    const brokerId = cluster.controller ?? cluster.brokers[0]?.nodeId;
    const existing = new Set(await admin.listTopics());
    const asked = [...new Set(topics)].filter((t) => existing.has(t));
    const answer = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [
        { type: BROKER, name: String(brokerId), configNames: BROKER_CONFIGS },
        ...asked.map((name) => ({
          type: TOPIC,
          name,
          configNames: ['max.message.bytes'],
        })),
      ],
    });
    let messageMaxBytes = DEFAULT_MESSAGE_MAX_BYTES;
    let socketRequestMaxBytes: number | null = null;
    const topicLimits = new Map<string, number>();
    for (const resource of answer.resources) {
      const value = (name: string) => {
        const entry = resource.configEntries.find((e) => e.configName === name);
        const n = entry ? Number(entry.configValue) : Number.NaN;
        return Number.isFinite(n) ? n : undefined;
      };
      if (resource.resourceType === BROKER) {
        messageMaxBytes = value('message.max.bytes') ?? messageMaxBytes;
        socketRequestMaxBytes = value('socket.request.max.bytes') ?? null;
      } else {
        const limit = value('max.message.bytes');
        if (limit !== undefined) topicLimits.set(resource.resourceName, limit);
      }
    }
    return { messageMaxBytes, socketRequestMaxBytes, topics: topicLimits };
  } catch (err) {
    throw wrapKafkajsError(err, "cannot read the broker's message size limits", client.options);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** Kafka's default `message.max.bytes` (1 MiB + record batch overhead), when a broker omits it. */
export const DEFAULT_MESSAGE_MAX_BYTES = 1_048_588;
