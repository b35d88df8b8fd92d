import { type ResolvedConfig, resolveConfig } from '@teal/config';
import { Consumer } from '@teal/consumer';
import { greenCopyTarget } from '@teal/consumer/direct-copy';
import { KafkaClient } from '@teal/kafka';
import { Producer } from '@teal/producer';
import pg from 'pg';
import { onTestFinished } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers } from './env.ts';

/**
 * A whole pipeline (real Producer and Consumer in this process) for `tables`, with its own
 * slot, publication and topic prefix named `name`; stopped and cleaned up (slot,
 * publication, topics) when the test finishes.
 */
export async function startPipeline(
  name: string,
  tables: string[],
  overrides: Record<string, unknown> = {},
  /** Other servers than the shared blue and green (scratch clusters of another version, say). */
  urls: { blue: string; green: string } = { blue: blueUrl(), green: greenUrl() },
): Promise<{ config: ResolvedConfig; producer: Producer; consumer: Consumer }> {
  const config = resolveConfig(
    {
      tables,
      slot: name,
      publication: name,
      kafka: { topicPrefix: name, partitions: 3 },
      heartbeatMs: 1000,
      ...overrides,
    },
    {
      env: {
        TEAL_BLUE_URL: urls.blue,
        TEAL_GREEN_URL: urls.green,
        TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
      },
    },
  );
  // snapshot.via 'direct' takes the consumer's green writer, as the cli wires it.
  const producer = new Producer(config, {
    directCopy: (c) => greenCopyTarget(c, { sessions: c.snapshot.parallel }),
  });
  const consumer = new Consumer(config, { groupId: `${name}-group` });
  onTestFinished(async () => {
    await consumer.stop();
    await producer.stop();
    const blue = new pg.Client({ connectionString: urls.blue });
    await blue.connect();
    try {
      await blue.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [
        name,
      ]);
      await blue.query(`DROP PUBLICATION IF EXISTS ${pg.escapeIdentifier(name)}`);
    } finally {
      await blue.end();
    }
    const kafka = new KafkaClient({ brokers: kafkaBrokers() });
    const admin = kafka.admin();
    await admin.deleteTopics(await admin.listTopics(`${name}.`));
    await kafka.close();
  });
  await producer.start();
  await consumer.start();
  return { config, producer, consumer };
}
