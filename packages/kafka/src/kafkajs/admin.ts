import kafkajs, { type Admin } from 'kafkajs';
import { log } from '../log.ts';
import { tlsProbe } from '../security.ts';
import { MAX_MESSAGE_BYTES, reportLowLimit, topicConfigs, wantedMessageBytes } from '../topic-config.ts';
import type { KafkaOptions, TopicAdmin, TopicSpec, TopicState } from '../types.ts';
import { wrapKafkajsError } from './errors.ts';

// Node's ESM loader does not see these two among kafkajs's CommonJS named exports (vitest's
// interop does): named imports of them crash every `node --import tsx` process (npx teal).
const { ConfigResourceTypes, ConfigSource } = kafkajs;

/** TopicAdmin on kafkajs; connects on first use. */
export class KafkajsAdmin implements TopicAdmin {
  private connected: Promise<void> | undefined;

  constructor(
    private readonly admin: Admin,
    private readonly options: KafkaOptions = { brokers: [] },
  ) {}

  private connect(): Promise<void> {
    this.connected ??= tlsProbe(this.options)
      .then(() => this.admin.connect())
      .catch((err) => {
        this.connected = undefined;
        throw wrapKafkajsError(err, 'cannot connect the Kafka admin client', this.options);
      });
    return this.connected;
  }

  async ensureTopic(topic: string, spec: TopicSpec): Promise<TopicState> {
    await this.connect();
    const wanted = wantedMessageBytes(spec, this.options);
    let created: boolean;
    try {
      // false (not an error) when the topic exists.
      created = await this.admin.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic,
            numPartitions: spec.partitions,
            replicationFactor: -1,
            configEntries: topicConfigs(spec, wanted),
          },
        ],
      });
    } catch (err) {
      // Two processes may race to create the same topic; the loser's error is harmless.
      const nested = (err as { errors?: Array<{ type?: string }> }).errors;
      const exists =
        (err as { type?: string }).type === 'TOPIC_ALREADY_EXISTS' ||
        nested?.every((e) => e.type === 'TOPIC_ALREADY_EXISTS');
      // Created, but kafkajs's waitForLeaders asked for metadata before the broker had it
      // (it retries only LEADER_NOT_AVAILABLE): wait for the leaders here.
      const unknownYet = (err as { type?: string }).type === 'UNKNOWN_TOPIC_OR_PARTITION';
      if (!exists && !unknownYet) throw wrapKafkajsError(err, `cannot create topic ${topic}`);
      created = unknownYet;
    }
    const partitions = await this.waitForPartitions(topic);
    if (created || wanted === null) return { partitions, maxMessageBytes: wanted };
    return { partitions, maxMessageBytes: await this.raiseMessageBytes(topic, wanted) };
  }

  /**
   * Raises an existing topic's max.message.bytes to `wanted` when lower; returns what it
   * accepts now. kafkajs has only the non-incremental AlterConfigs, which replaces every
   * topic-level config, so the topic's own configs are sent along unchanged.
   */
  private async raiseMessageBytes(topic: string, wanted: number): Promise<number> {
    const described = await this.admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
    });
    const entries = described.resources[0]?.configEntries ?? [];
    const have = Number(entries.find((e) => e.configName === MAX_MESSAGE_BYTES)?.configValue);
    if (Number.isFinite(have) && have >= wanted) return have;
    const own = entries.filter(
      (e) =>
        e.configSource === ConfigSource.TOPIC_CONFIG && e.configName !== MAX_MESSAGE_BYTES && !e.isSensitive,
    );
    try {
      await this.admin.alterConfigs({
        validateOnly: false,
        resources: [
          {
            type: ConfigResourceTypes.TOPIC,
            name: topic,
            configEntries: [
              ...own.map((e) => ({ name: e.configName, value: e.configValue })),
              { name: MAX_MESSAGE_BYTES, value: String(wanted) },
            ],
          },
        ],
      });
      log().info({ topic, from: have, to: wanted }, `raised ${MAX_MESSAGE_BYTES} of ${topic}`);
      return wanted;
    } catch (err) {
      reportLowLimit(topic, have, wanted, err);
      return have;
    }
  }

  /** The topic's partition count once the broker's metadata has it (within 30 s). */
  private async waitForPartitions(topic: string): Promise<number> {
    const deadline = Date.now() + 30_000;
    for (let delay = 50; ; delay = Math.min(delay * 2, 1_000)) {
      const partitions = await this.partitionCount(topic).catch((err) => {
        if (Date.now() > deadline) throw err;
        return 0;
      });
      if (partitions > 0 || Date.now() > deadline) return partitions;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  async partitionCount(topic: string): Promise<number> {
    return (await this.partitionCounts([topic])).get(topic) ?? 0;
  }

  async partitionCounts(topics: readonly string[]): Promise<Map<string, number>> {
    await this.connect();
    try {
      const metadata = await this.admin.fetchTopicMetadata({ topics: [...topics] });
      const counts = new Map<string, number>(topics.map((t) => [t, 0]));
      for (const t of metadata.topics) counts.set(t.name, t.partitions.length);
      return counts;
    } catch (err) {
      throw wrapKafkajsError(err, `cannot read the metadata of ${topics.join(', ')}`);
    }
  }

  async listTopics(prefix = ''): Promise<string[]> {
    await this.connect();
    const topics = await this.admin.listTopics();
    return topics.filter((t) => t.startsWith(prefix)).sort();
  }

  async logEndOffsets(topic: string): Promise<Array<{ partition: number; end: bigint }>> {
    await this.connect();
    const offsets = await this.admin.fetchTopicOffsets(topic);
    return offsets
      .map((o) => ({ partition: o.partition, end: BigInt(o.high) }))
      .sort((a, b) => a.partition - b.partition);
  }

  async logStartOffsets(topic: string): Promise<Array<{ partition: number; start: bigint }>> {
    await this.connect();
    const offsets = await this.admin.fetchTopicOffsets(topic);
    return offsets
      .map((o) => ({ partition: o.partition, start: BigInt(o.low) }))
      .sort((a, b) => a.partition - b.partition);
  }

  async deleteTopics(topics: string[]): Promise<void> {
    if (topics.length === 0) return;
    await this.connect();
    await this.admin.deleteTopics({ topics });
  }

  async deleteGroup(groupId: string): Promise<void> {
    await this.connect();
    await this.admin.deleteGroups([groupId]).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.connected) await this.admin.disconnect().catch(() => undefined);
    this.connected = undefined;
  }
}
