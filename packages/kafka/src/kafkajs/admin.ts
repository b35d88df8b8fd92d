import type { Admin } from 'kafkajs';
import type { TopicAdmin, TopicSpec } from '../types.ts';
import { wrapKafkajsError } from './errors.ts';

/** TopicAdmin on kafkajs; connects on first use. */
export class KafkajsAdmin implements TopicAdmin {
  private connected: Promise<void> | undefined;

  constructor(private readonly admin: Admin) {}

  private connect(): Promise<void> {
    this.connected ??= this.admin.connect().catch((err) => {
      this.connected = undefined;
      throw wrapKafkajsError(err, 'cannot connect the Kafka admin client');
    });
    return this.connected;
  }

  async ensureTopic(topic: string, spec: TopicSpec): Promise<void> {
    await this.connect();
    try {
      await this.admin.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic,
            numPartitions: spec.partitions,
            replicationFactor: -1,
            configEntries: spec.compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
          },
        ],
      });
    } catch (err) {
      // Two processes may race to create the same topic; the loser's error is harmless.
      if ((err as { type?: string }).type === 'TOPIC_ALREADY_EXISTS') return;
      const nested = (err as { errors?: Array<{ type?: string }> }).errors;
      if (nested?.every((e) => e.type === 'TOPIC_ALREADY_EXISTS')) return;
      throw wrapKafkajsError(err, `cannot create topic ${topic}`);
    }
  }

  async partitionCount(topic: string): Promise<number> {
    await this.connect();
    const metadata = await this.admin.fetchTopicMetadata({ topics: [topic] });
    return metadata.topics[0]?.partitions.length ?? 0;
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

  /** Per partition, the log start offset (the earliest offset retention left). */
  async logStartOffsets(topic: string): Promise<Array<{ partition: number; start: bigint }>> {
    await this.connect();
    const offsets = await this.admin.fetchTopicOffsets(topic);
    return offsets.map((o) => ({ partition: o.partition, start: BigInt(o.low) }));
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
