import { Kafka, logLevel } from 'kafkajs';
import { log } from './util.ts';

const admin = (brokers: string) =>
  new Kafka({ clientId: 'teal-bench', brokers: brokers.split(','), logLevel: logLevel.NOTHING }).admin();

/** Records a topic holds now (sum over partitions of high - low watermark); 0 when it does not exist. */
export async function topicRecordCount(brokers: string, topic: string): Promise<number> {
  const a = admin(brokers);
  try {
    await a.connect();
    if (!(await a.listTopics()).includes(topic)) return 0;
    const offsets = await a.fetchTopicOffsets(topic);
    return offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  } finally {
    await a.disconnect().catch(() => {});
  }
}

/** Deletes this run's topics from the shared broker (bench_ prefixes only). */
export async function deleteTopics(brokers: string, match: (topic: string) => boolean): Promise<void> {
  const a = admin(brokers);
  try {
    await a.connect();
    const topics = (await a.listTopics()).filter((t) => t.startsWith('bench_') && match(t));
    if (topics.length) await a.deleteTopics({ topics, timeout: 30_000 });
  } catch (err) {
    log(`could not delete bench topics: ${(err as Error).message}`);
  } finally {
    await a.disconnect().catch(() => {});
  }
}
