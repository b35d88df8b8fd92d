import { Admin, ConfigResourceTypes, IncrementalAlterConfigOperationTypes } from '@platformatic/kafka';
import { TealError } from '@teal/errors';
import { log } from '../log.ts';
import { MAX_MESSAGE_BYTES, reportLowLimit, topicConfigs, wantedMessageBytes } from '../topic-config.ts';
import type { KafkaOptions, TopicAdmin, TopicSpec, TopicState } from '../types.ts';
import { checkSecurity, platformaticOptions } from './connection.ts';
import { hasApiError, wrapPlatformaticError } from './errors.ts';

/** TopicAdmin on @platformatic/kafka. */
export class PlatformaticAdmin implements TopicAdmin {
  private readonly admin: Admin;

  constructor(private readonly options: KafkaOptions) {
    this.admin = new Admin(platformaticOptions(options, 'admin'));
  }

  async ensureTopic(topic: string, spec: TopicSpec): Promise<TopicState> {
    await checkSecurity(this.options);
    const wanted = wantedMessageBytes(spec, this.options);
    let created = true;
    try {
      await this.admin.createTopics({
        topics: [topic],
        partitions: spec.partitions,
        replicas: -1,
        configs: topicConfigs(spec, wanted),
      });
    } catch (err) {
      // Two processes may race to create the same topic; the loser's error is harmless.
      if (!hasApiError(err, 'TOPIC_ALREADY_EXISTS'))
        throw wrapPlatformaticError(err, `cannot create topic ${topic}`, this.options);
      created = false;
    }
    const partitions = await this.waitForLeaders(topic);
    if (created || wanted === null) return { partitions, maxMessageBytes: wanted };
    return { partitions, maxMessageBytes: await this.raiseMessageBytes(topic, wanted) };
  }

  /** Raises an existing topic's max.message.bytes to `wanted` when lower; returns what it accepts now. */
  private async raiseMessageBytes(topic: string, wanted: number): Promise<number> {
    let have: number;
    try {
      const described = await this.admin.describeConfigs({
        resources: [
          {
            resourceType: ConfigResourceTypes.TOPIC,
            resourceName: topic,
            configurationKeys: [MAX_MESSAGE_BYTES],
          },
        ],
      });
      have = Number(described[0]?.configs.find((c) => c.name === MAX_MESSAGE_BYTES)?.value);
    } catch (err) {
      throw wrapPlatformaticError(err, `cannot read the configs of ${topic}`, this.options);
    }
    if (Number.isFinite(have) && have >= wanted) return have;
    try {
      await this.admin.incrementalAlterConfigs({
        resources: [
          {
            resourceType: ConfigResourceTypes.TOPIC,
            resourceName: topic,
            configs: [
              {
                name: MAX_MESSAGE_BYTES,
                configOperation: IncrementalAlterConfigOperationTypes.SET,
                value: String(wanted),
              },
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

  /** Returns the partition count once every partition has a leader. */
  private async waitForLeaders(topic: string): Promise<number> {
    // As kafkajs's waitForLeaders: return once every partition has a leader, so the first
    // send does not meet an unknown topic.
    const deadline = Date.now() + 30_000;
    for (let delay = 50; ; delay = Math.min(delay * 2, 1_000)) {
      try {
        const md = await this.admin.metadata({ topics: [topic], forceUpdate: true });
        const t = md.topics.get(topic);
        if (t && t.partitionsCount > 0 && t.partitions.every((p) => p !== undefined && p.leader >= 0))
          return t.partitionsCount;
      } catch (err) {
        const wrapped = wrapPlatformaticError(err, `topic ${topic} has no leaders`, this.options);
        if (!wrapped.retriable || Date.now() > deadline) throw wrapped;
      }
      if (Date.now() > deadline)
        throw new TealError('TEAL_KAFKA_ERROR', `topic ${topic} has no leaders after 30 s`, {
          retriable: true,
        });
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  async partitionCount(topic: string): Promise<number> {
    await checkSecurity(this.options);
    try {
      const md = await this.admin.metadata({ topics: [topic], forceUpdate: true });
      return md.topics.get(topic)?.partitionsCount ?? 0;
    } catch (err) {
      throw wrapPlatformaticError(err, `cannot read the metadata of ${topic}`, this.options);
    }
  }

  async partitionCounts(topics: readonly string[]): Promise<Map<string, number>> {
    await checkSecurity(this.options);
    try {
      const md = await this.admin.metadata({ topics: [...topics], forceUpdate: true });
      return new Map(topics.map((t) => [t, md.topics.get(t)?.partitionsCount ?? 0] as const));
    } catch (err) {
      throw wrapPlatformaticError(err, `cannot read the metadata of ${topics.join(', ')}`, this.options);
    }
  }

  async listTopics(prefix = ''): Promise<string[]> {
    await checkSecurity(this.options);
    try {
      const topics = await this.admin.listTopics();
      return topics.filter((t) => t.startsWith(prefix)).sort();
    } catch (err) {
      throw wrapPlatformaticError(err, 'cannot list topics', this.options);
    }
  }

  async logEndOffsets(topic: string): Promise<Array<{ partition: number; end: bigint }>> {
    return (await this.listOffsets(topic, -1n, 'end')).map((o) => ({
      partition: o.partition,
      end: o.offset,
    }));
  }

  async logStartOffsets(topic: string): Promise<Array<{ partition: number; start: bigint }>> {
    return (await this.listOffsets(topic, -2n, 'start')).map((o) => ({
      partition: o.partition,
      start: o.offset,
    }));
  }

  /** ListOffsets of every partition at `timestamp` (-1: log end, -2: log start). */
  private async listOffsets(
    topic: string,
    timestamp: bigint,
    what: string,
  ): Promise<Array<{ partition: number; offset: bigint }>> {
    try {
      const count = await this.partitionCount(topic);
      const listed = await this.admin.listOffsets({
        topics: [
          {
            name: topic,
            partitions: Array.from({ length: count }, (_, partitionIndex) => ({ partitionIndex, timestamp })),
          },
        ],
      });
      return (listed.find((t) => t.name === topic)?.partitions ?? [])
        .map((p) => ({ partition: p.partitionIndex, offset: p.offset }))
        .sort((a, b) => a.partition - b.partition);
    } catch (err) {
      throw wrapPlatformaticError(err, `cannot read the ${what} offsets of ${topic}`, this.options);
    }
  }

  async deleteTopics(topics: string[]): Promise<void> {
    if (topics.length === 0) return;
    await checkSecurity(this.options);
    try {
      await this.admin.deleteTopics({ topics });
    } catch (err) {
      throw wrapPlatformaticError(err, `cannot delete topics ${topics.join(', ')}`, this.options);
    }
  }

  async close(): Promise<void> {
    await this.admin.close().catch(() => undefined);
  }
}
