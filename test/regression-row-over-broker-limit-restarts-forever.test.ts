import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import { describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';
import { startPipeline } from './support/pipeline.ts';

// Regression: a row larger than the broker's message limit (a 3 MB jsonb; Kafka's default
// max.message.bytes is 1 MiB) was rejected by the Produce request, the error was not fatal,
// and the producer restarted the stream from the same LSN forever: nothing after it flowed,
// blue's WAL grew. Now teal's topics take kafka.maxMessageBytes (16 MiB by default), the
// consumer fetches records that large, and a record above the limit stops the producer with
// TEAL_ROW_TOO_LARGE naming the table, the key, the size and the setting to raise.
describe('regression: a row over the broker limit restarted the stream forever', () => {
  async function bigRowTable(name: string) {
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    for (const c of [blue, green])
      await c.query(`CREATE TABLE ${name} (id int PRIMARY KEY, doc jsonb, body text, v int)`);
    onTestFinished(async () => {
      await blue.query(`DROP TABLE IF EXISTS ${name}`);
      await green.query(`DROP TABLE IF EXISTS ${name}`);
    });
    return { blue, green };
  }

  // md5 of random values: text that does not compress, so the Kafka record is as large as the row.
  const jsonbOfMb = (mb: number) =>
    `(SELECT jsonb_build_object('items', jsonb_agg(jsonb_build_object('i', g, 's', md5(random()::text) || md5(random()::text))))
        FROM generate_series(1, ${Math.round((mb * 1_000_000) / 75)}) g)`;
  const textOfMb = (mb: number) =>
    `(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, ${Math.round((mb * 1_000_000) / 32)}))`;

  for (const client of ['platformatic', 'kafkajs'] as const)
    test(`a 3 MB jsonb row (snapshot) and a ~10 MB row (stream) replicate with the default limit, and later rows flow (${client})`, async () => {
      const name = uniqueName('bigrow');
      const { blue, green } = await bigRowTable(name);
      await blue.query(`INSERT INTO ${name} (id, doc, v) VALUES (1, ${jsonbOfMb(3)}, 1), (2, NULL, 2)`);
      const { producer } = await startPipeline(name, [`public.${name}`], {
        kafka: { topicPrefix: name, partitions: 3, client },
      });
      await waitFor(() => producer.status().state === 'streaming', { what: 'streaming', timeoutMs: 60_000 });
      await blue.query(`INSERT INTO ${name} (id, body, v) VALUES (3, ${textOfMb(10.2)}, 3)`);
      await blue.query(`UPDATE ${name} SET v = 20 WHERE id = 2`);
      await blue.query(`INSERT INTO ${name} (id, v) VALUES (4, 4)`);

      const sizes = await blue.query<{ id: string; bytes: string }>(
        `SELECT id, (octet_length(coalesce(doc::text, '')) + octet_length(coalesce(body, '')))::text AS bytes FROM ${name} ORDER BY id`,
      );
      expect(Number(sizes.rows[0].bytes)).toBeGreaterThan(3_000_000);
      expect(Number(sizes.rows[2].bytes)).toBeGreaterThan(10_000_000);

      const dump = async (c: typeof blue) =>
        (await c.query(`SELECT id, md5(doc::text) AS doc, md5(body) AS body, v FROM ${name} ORDER BY id`))
          .rows;
      const expected = await dump(blue);
      await waitFor(async () => JSON.stringify(await dump(green)) === JSON.stringify(expected), {
        what: 'green equal to blue with the big rows',
        timeoutMs: 90_000,
      }).catch(async (err) => {
        throw new Error(
          `${err.message}: green ${JSON.stringify(await dump(green))}, producer ${JSON.stringify(producer.status().error)}`,
        );
      });
      expect(producer.status().state).toBe('streaming');
    });

  test('a row above a configured limit stops the producer with TEAL_ROW_TOO_LARGE (table, key, size, setting), no restart loop', async () => {
    const name = uniqueName('toolarge');
    const { blue } = await bigRowTable(name);
    const { producer } = await startPipeline(name, [`public.${name}`], {
      kafka: { topicPrefix: name, partitions: 3, maxMessageBytes: 1024 * 1024 },
    });
    await waitFor(() => producer.status().state === 'streaming', { what: 'streaming', timeoutMs: 60_000 });
    await blue.query(`INSERT INTO ${name} (id, v) VALUES (1, 1)`);
    await blue.query(`INSERT INTO ${name} (id, body, v) VALUES (42, ${textOfMb(2)}, 2)`);

    const error = await waitFor(() => producer.status().error, {
      what: 'the producer to stop on the big row',
      timeoutMs: 60_000,
    });
    expect(producer.status().state).toBe('failed');
    expect(error.code).toBe('TEAL_ROW_TOO_LARGE');
    expect(error.message).toContain(`public.${name}`);
    expect(error.message).toContain('"id":"42"');
    expect(error.message).toMatch(/\d+ bytes/);
    expect(error.message).toContain('kafka.maxMessageBytes');
    expect(error.message).toContain('TEAL_KAFKA_MAX_MESSAGE_BYTES');
    // Failed for good: the stream loop does not start again from the same LSN.
    const failedAt = producer.status().confirmedLsn;
    await blue.query(`INSERT INTO ${name} (id, v) VALUES (5, 5)`);
    await blue.query(`SELECT pg_logical_emit_message(false, 'teal.heartbeat', now()::text)`);
    const stillFailed = await waitFor(
      async () => {
        const { rows } = await blue.query<{ active: string }>(
          'SELECT active::text AS active FROM pg_replication_slots WHERE slot_name = $1',
          [name],
        );
        return rows[0]?.active === 'false' ? true : undefined;
      },
      { what: 'the slot released (no walsender restarted)', timeoutMs: 30_000 },
    );
    expect(stillFailed).toBe(true);
    expect(producer.status().state).toBe('failed');
    expect(producer.status().confirmedLsn).toBe(failedAt);
  });

  for (const client of ['platformatic', 'kafkajs'] as const) {
    test(`an existing topic with a lower max.message.bytes is raised at start, its other configs kept (${client})`, async () => {
      const topic = uniqueName(`lowlimit_${client}`);
      const old = new KafkaClient({ brokers: kafkaBrokers(), client });
      const raising = new KafkaClient({ brokers: kafkaBrokers(), client, maxMessageBytes: 8 * 1024 * 1024 });
      onTestFinished(async () => {
        const admin = old.admin();
        await admin.deleteTopics([topic]);
        await old.close();
        await raising.close();
      });
      // As a teal before issue 12 made it: the broker's own 1 MiB limit, compacted.
      expect(await old.admin().ensureTopic(topic, { partitions: 2, compacted: true })).toEqual({
        partitions: 2,
        maxMessageBytes: null,
      });
      expect(await raising.admin().ensureTopic(topic, { partitions: 4 })).toEqual({
        partitions: 2,
        maxMessageBytes: 8 * 1024 * 1024,
      });
      const admin = old.kafka.admin();
      await admin.connect();
      try {
        const described = await admin.describeConfigs({
          includeSynonyms: false,
          resources: [
            { type: 2 /* TOPIC */, name: topic, configNames: ['max.message.bytes', 'cleanup.policy'] },
          ],
        });
        const configs = Object.fromEntries(
          described.resources[0]!.configEntries.map((e) => [e.configName, e.configValue]),
        );
        expect(configs).toEqual({
          'max.message.bytes': String(8 * 1024 * 1024),
          'cleanup.policy': 'compact',
        });
      } finally {
        await admin.disconnect();
      }
    });
  }

  for (const client of ['platformatic', 'kafkajs'] as const) {
    test(`the broker's MESSAGE_TOO_LARGE is TEAL_ROW_TOO_LARGE, not retriable (${client})`, async () => {
      const topic = uniqueName(`refused_${client}`);
      const kafka = new KafkaClient({ brokers: kafkaBrokers(), client });
      onTestFinished(async () => {
        await kafka.admin().deleteTopics([topic]);
        await kafka.close();
      });
      await kafka.admin().ensureTopic(topic, { partitions: 1 }); // the broker's 1 MiB limit
      const publisher = await kafka.publisher();
      const sent = publisher.send([
        { topic, partition: 0, key: null, value: Buffer.alloc(2 * 1024 * 1024, 7) },
      ]);
      await expect(sent).rejects.toMatchObject({ code: 'TEAL_ROW_TOO_LARGE', retriable: false });
      await expect(sent).rejects.toThrow(`--entity-name ${topic} --add-config max.message.bytes=`);
    });
  }
});
