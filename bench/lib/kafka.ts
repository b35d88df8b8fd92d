import { Kafka, logLevel } from 'kafkajs';
import { log } from './util.ts';

/** Deletes this run's topics from the shared broker (bench_ prefixes only). */
export async function deleteTopics(brokers: string, match: (topic: string) => boolean): Promise<void> {
  const admin = new Kafka({
    clientId: 'teal-bench',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
  }).admin();
  try {
    await admin.connect();
    const topics = (await admin.listTopics()).filter((t) => t.startsWith('bench_') && match(t));
    if (topics.length) await admin.deleteTopics({ topics, timeout: 30_000 });
  } catch (err) {
    log(`could not delete bench topics: ${(err as Error).message}`);
  } finally {
    await admin.disconnect().catch(() => {});
  }
}
