import { Admin } from '@platformatic/kafka';
import { TealError } from '@teal/errors';
import type { KafkaOptions, TopicAdmin, TopicSpec } from '../types.ts';
import { platformaticOptions } from './connection.ts';
import { hasApiError, wrapPlatformaticError } from './errors.ts';

/** TopicAdmin on @platformatic/kafka. */
export class PlatformaticAdmin implements TopicAdmin {
  private readonly admin: Admin;

  constructor(options: KafkaOptions) {
    this.admin = new Admin(platformaticOptions(options, 'admin'));
  }

  async ensureTopic(topic: string, spec: TopicSpec): Promise<void> {
    try {
      await this.admin.createTopics({
        topics: [topic],
        partitions: spec.partitions,
        replicas: -1,
        configs: spec.compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
      });
    } catch (err) {
      // Two processes may race to create the same topic; the loser's error is harmless.
      if (!hasApiError(err, 'TOPIC_ALREADY_EXISTS'))
        throw wrapPlatformaticError(err, `cannot create topic ${topic}`);
    }
    // As kafkajs's waitForLeaders: return once every partition has a leader, so the first
    // send does not meet an unknown topic.
    const deadline = Date.now() + 30_000;
    for (let delay = 50; ; delay = Math.min(delay * 2, 1_000)) {
      try {
        const md = await this.admin.metadata({ topics: [topic], forceUpdate: true });
        const t = md.topics.get(topic);
        if (t && t.partitionsCount > 0 && t.partitions.every((p) => p !== undefined && p.leader >= 0)) return;
      } catch (err) {
        if (Date.now() > deadline) throw wrapPlatformaticError(err, `topic ${topic} has no leaders`);
      }
      if (Date.now() > deadline)
        throw new TealError('TEAL_KAFKA_ERROR', `topic ${topic} has no leaders after 30 s`, {
          retriable: true,
        });
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  async partitionCount(topic: string): Promise<number> {
    try {
      const md = await this.admin.metadata({ topics: [topic], forceUpdate: true });
      return md.topics.get(topic)?.partitionsCount ?? 0;
    } catch (err) {
      throw wrapPlatformaticError(err, `cannot read the metadata of ${topic}`);
    }
  }

  async listTopics(prefix = ''): Promise<string[]> {
    try {
      const topics = await this.admin.listTopics();
      return topics.filter((t) => t.startsWith(prefix)).sort();
    } catch (err) {
      throw wrapPlatformaticError(err, 'cannot list topics');
    }
  }

  async logEndOffsets(topic: string): Promise<Array<{ partition: number; end: bigint }>> {
    try {
      const count = await this.partitionCount(topic);
      const listed = await this.admin.listOffsets({
        topics: [
          {
            name: topic,
            partitions: Array.from({ length: count }, (_, partitionIndex) => ({
              partitionIndex,
              timestamp: -1n,
            })),
          },
        ],
      });
      return (listed.find((t) => t.name === topic)?.partitions ?? [])
        .map((p) => ({ partition: p.partitionIndex, end: p.offset }))
        .sort((a, b) => a.partition - b.partition);
    } catch (err) {
      throw wrapPlatformaticError(err, `cannot read the end offsets of ${topic}`);
    }
  }

  async deleteTopics(topics: string[]): Promise<void> {
    if (topics.length === 0) return;
    try {
      await this.admin.deleteTopics({ topics });
    } catch (err) {
      throw wrapPlatformaticError(err, `cannot delete topics ${topics.join(', ')}`);
    }
  }

  async close(): Promise<void> {
    await this.admin.close().catch(() => undefined);
  }
}
