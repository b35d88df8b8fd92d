import { type ChangeEvent, tableTopic } from '@teal/change-event';
import { type ResolvedConfig, resolveConfig } from '@teal/config';
import { Consumer } from '@teal/consumer';
import { KafkaClient } from '@teal/kafka';
import { controlKey, readControlValue } from '@teal/postgres';
import { Producer } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';
import { dropSlotAndPublication, readAllEvents } from './support/producer-fixture.ts';

// Regression: an operator added partitions to a table topic (kafka-topics --alter). The
// producer kept its cached count for truncates (they never reached the new partitions), and
// once either Kafka client refreshed its metadata a key's later records went to another
// partition than its earlier ones; the two apply in parallel, so an older row image could win.
// Now teal picks every partition itself from the count it recorded for the topic (teal.control
// topic_layout:<prefix>), stops with TEAL_TOPIC_PARTITIONS_CHANGED when the count changes
// under it (a truncate checks first, and a periodic check runs), refuses a start with the new
// count while green has not applied the topic, and takes the new count once it has.
describe('regression: a topic whose partition count changed split a key over two partitions', () => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-partitions-changed-test' });
  afterAll(() => kafka.close());

  function configFor(name: string, client: 'platformatic' | 'kafkajs' = 'platformatic'): ResolvedConfig {
    return resolveConfig(
      {
        tables: [`public.${name}`],
        slot: name,
        publication: name,
        kafka: { topicPrefix: name, partitions: 2, client },
        heartbeatMs: 500,
      },
      {
        env: {
          TEAL_BLUE_URL: blueUrl(),
          TEAL_GREEN_URL: greenUrl(),
          TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
        },
      },
    );
  }

  async function setup(name: string, client?: 'platformatic' | 'kafkajs') {
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    for (const c of [blue, green]) await c.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v int)`);
    const config = configFor(name, client);
    const running: Array<{ stop(): Promise<void> }> = [];
    onTestFinished(async () => {
      for (const r of running.reverse()) await r.stop().catch(() => {});
      await dropSlotAndPublication(blue, name, name);
      await blue.query(`DROP TABLE IF EXISTS ${name}`);
      await green.query(`DROP TABLE IF EXISTS ${name}`);
      await green.query('DELETE FROM teal.control WHERE key = $1', [controlKey('topic_layout', config)]);
      const admin = kafka.admin();
      await admin.deleteTopics(await admin.listTopics(`${name}.`));
      await admin.close();
    });
    const producer = () => {
      const p = new Producer(config);
      running.push(p);
      return p;
    };
    const consumer = () => {
      const c = new Consumer(config, { groupId: `${name}-group` });
      running.push(c);
      return c;
    };
    const topic = tableTopic(name, 'public', name);
    const addPartitions = async (count: number) => {
      const admin = kafka.kafka.admin();
      await admin.connect();
      await admin.createPartitions({ topicPartitions: [{ topic, count }] });
      await admin.disconnect();
    };
    const dump = async (c: typeof blue) => (await c.query(`SELECT id, v FROM ${name} ORDER BY id`)).rows;
    const greenEqualsBlue = async (what: string) => {
      const expected = await dump(blue);
      await waitFor(async () => JSON.stringify(await dump(green)) === JSON.stringify(expected), {
        what,
        timeoutMs: 60_000,
      });
    };
    return { blue, green, config, producer, consumer, topic, addPartitions, greenEqualsBlue };
  }

  for (const client of ['platformatic', 'kafkajs'] as const)
    test(`while streaming: a truncate after kafka-topics --alter is not sent; the producer stops, naming topic and counts (${client})`, async () => {
      const name = uniqueName('parts_trunc');
      const s = await setup(name, client);
      await s.blue.query(`INSERT INTO ${name} SELECT g, 0 FROM generate_series(1, 20) g`);
      const producer = s.producer();
      await producer.start();
      await waitFor(() => producer.status().state === 'streaming', { what: 'streaming', timeoutMs: 60_000 });

      await s.addPartitions(3);
      await s.blue.query(`UPDATE ${name} SET v = 1`);
      await s.blue.query(`TRUNCATE ${name}`);
      const error = await waitFor(() => producer.status().error, {
        what: 'the producer to stop',
        timeoutMs: 30_000,
      });
      expect(error.code).toBe('TEAL_TOPIC_PARTITIONS_CHANGED');
      expect(error.message).toContain(`topic ${s.topic} went from 2 to 3 partitions`);
      expect(error.message).toContain('start the producer again');
      expect(producer.status().state).toBe('failed');
      // Nothing went to the new partition, and the truncate went nowhere (it waits for the restart).
      const events = await readAllEvents(kafka, name, s.topic);
      expect(events.filter((e: ChangeEvent) => e.op === 't')).toEqual([]);
      const admin = kafka.admin();
      const ends = await admin.logEndOffsets(s.topic);
      await admin.close();
      expect(ends.find((e) => e.partition === 2)?.end).toBe(0n);
    });

  test('a start with the new count is refused while green has not applied the topic, then taken once it has', async () => {
    const name = uniqueName('parts_restart');
    const s = await setup(name);
    const first = s.producer();
    await first.start();
    await waitFor(() => first.status().state === 'streaming', { what: 'streaming', timeoutMs: 60_000 });
    await s.blue.query(`INSERT INTO ${name} SELECT g, 1 FROM generate_series(1, 40) g`);
    // Stops on its own within the periodic check (no truncate to trigger it).
    await s.addPartitions(4);
    const error = await waitFor(() => first.status().error, {
      what: 'the periodic partition check to stop the producer',
      timeoutMs: 40_000,
    });
    expect(error.code).toBe('TEAL_TOPIC_PARTITIONS_CHANGED');
    await first.stop();
    const layout = await readControlValue<Record<string, { partitions: number }>>(
      s.green,
      controlKey('topic_layout', s.config),
    );
    expect(layout?.[s.topic]?.partitions).toBe(2);

    // No consumer has applied anything: the new count would split keys, so the start is refused.
    const refused = s.producer();
    await expect(refused.start()).rejects.toMatchObject({
      code: 'TEAL_TOPIC_PARTITIONS_CHANGED',
      message: expect.stringContaining(`topic ${s.topic} has 4 partitions now, but teal wrote it with 2`),
    });
    await refused.stop();

    // The consumer applies everything; then the next start takes 4 partitions and keys flow.
    const consumer = s.consumer();
    await consumer.start();
    await s.greenEqualsBlue('green applied the first rows');
    const second = s.producer();
    await second.start();
    await waitFor(() => second.status().state === 'streaming', {
      what: 'streaming again',
      timeoutMs: 60_000,
    });
    await s.blue.query(`UPDATE ${name} SET v = v + 1`);
    await s.blue.query(`DELETE FROM ${name} WHERE id % 5 = 0`);
    await s.greenEqualsBlue('green equal to blue after the restart with 4 partitions');
    const taken = await waitFor(
      async () =>
        (
          await readControlValue<Record<string, { partitions: number }>>(
            s.green,
            controlKey('topic_layout', s.config),
          )
        )?.[s.topic]?.partitions === 4,
      { what: 'the new count recorded' },
    );
    expect(taken).toBe(true);
    expect(second.status().state).toBe('streaming');
  });
});
