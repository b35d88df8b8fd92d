import { tableTopic } from '@teal/change-event';
import { type ResolvedConfig, resolveConfig } from '@teal/config';
import { Consumer } from '@teal/consumer';
import { KafkaClient } from '@teal/kafka';
import { controlKey, readControlValue } from '@teal/postgres';
import { decodeAll, Producer, TopicReader } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';
import { dropSlotAndPublication } from './support/producer-fixture.ts';

// Regression (issue 12, secondary UNIQUE constraints): partitions apply in parallel, so
// "delete id=1 with email x, then insert id=2 with email x" reached green in the other order
// and was refused (23505). The producer's half of the fix: a table whose blue has a unique
// index besides its key (or config.ordered) sends every record and truncate to partition 0 of
// its topic, in commit order; other tables still spread their keys. A table that becomes
// ordered between two runs is refused at start until green has applied its topic.
describe('regression: ordered tables keep commit order on one partition', () => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-ordered-test' });
  afterAll(() => kafka.close());

  function configFor(name: string, tables: string[], ordered: Record<string, boolean> = {}): ResolvedConfig {
    return resolveConfig(
      {
        tables,
        slot: name,
        publication: name,
        kafka: { topicPrefix: name, partitions: 3 },
        heartbeatMs: 500,
        ordered,
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

  async function setup(name: string, tables: string[], config: ResolvedConfig) {
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    const running: Array<{ stop(): Promise<void> }> = [];
    onTestFinished(async () => {
      for (const r of running.reverse()) await r.stop().catch(() => {});
      await dropSlotAndPublication(blue, name, name);
      for (const t of tables) {
        await blue.query(`DROP TABLE IF EXISTS ${t} CASCADE`);
        await green.query(`DROP TABLE IF EXISTS ${t} CASCADE`);
      }
      await green.query('DELETE FROM teal.control WHERE key = $1', [controlKey('topic_layout', config)]);
      const admin = kafka.admin();
      await admin.deleteTopics(await admin.listTopics(`${name}.`));
      await admin.close();
    });
    const track = <T extends { stop(): Promise<void> }>(x: T) => {
      running.push(x);
      return x;
    };
    return { blue, green, track };
  }

  /** Every record of `topics` up to their current ends, decoded. */
  async function readTopics(topics: string[]) {
    const admin = kafka.admin();
    let total = 0;
    for (const t of topics) total += (await admin.logEndOffsets(t)).reduce((s, e) => s + Number(e.end), 0);
    await admin.close();
    const reader = new TopicReader(kafka, topics);
    await reader.start();
    onTestFinished(() => reader.stop());
    await waitFor(() => reader.records.length >= total, { what: 'every record read' });
    return decodeAll(kafka, topics[0]!.split('.')[0]!, reader.records);
  }

  async function endOffsets(topic: string): Promise<bigint[]> {
    const admin = kafka.admin();
    try {
      return (await admin.logEndOffsets(topic)).map((e) => e.end);
    } finally {
      await admin.close();
    }
  }

  test('records of an ordered table (unique index, partitioned root, config) land on partition 0; others spread', async () => {
    const name = uniqueName('ordered');
    const [ord, plain, part, optout, forced] = ['ord', 'plain', 'part', 'optout', 'forced'].map(
      (t) => `${name}_${t}`,
    );
    const tables = [ord, plain, part, optout, forced] as string[];
    const config = configFor(
      name,
      tables.map((t) => `public.${t}`),
      { [`public.${optout}`]: false, [`public.${forced}`]: true },
    );
    const { blue, green, track } = await setup(name, tables, config);
    await blue.query(`CREATE TABLE ${ord} (id int PRIMARY KEY, email text UNIQUE, v int)`);
    await blue.query(`CREATE TABLE ${plain} (id int PRIMARY KEY, v int)`);
    await blue.query(
      `CREATE TABLE ${part} (id int, code text, v int, PRIMARY KEY (id), UNIQUE (code, id)) PARTITION BY RANGE (id)`,
    );
    await blue.query(`CREATE TABLE ${part}_a PARTITION OF ${part} FOR VALUES FROM (0) TO (100)`);
    await blue.query(`CREATE TABLE ${part}_b PARTITION OF ${part} FOR VALUES FROM (100) TO (1000)`);
    await blue.query(`CREATE TABLE ${optout} (id int PRIMARY KEY, email text UNIQUE)`);
    await blue.query(`CREATE TABLE ${forced} (id int PRIMARY KEY, v int)`);
    onTestFinished(async () => {
      for (const t of [`${part}_a`, `${part}_b`]) await blue.query(`DROP TABLE IF EXISTS ${t}`);
    });
    for (const t of [ord, plain, optout, forced])
      await blue.query(`INSERT INTO ${t} (id) SELECT generate_series(1, 5)`);
    await blue.query(`INSERT INTO ${part} (id, code) SELECT g * 40, 'c' || g FROM generate_series(1, 5) g`);

    const producer = track(new Producer(config));
    await producer.start();
    await waitFor(() => producer.status().state === 'streaming', { what: 'streaming', timeoutMs: 60_000 });
    for (const t of [ord, plain, optout, forced])
      await blue.query(`INSERT INTO ${t} (id) SELECT generate_series(6, 40)`);
    await blue.query(
      `INSERT INTO ${part} (id, code) SELECT g * 40 + 1, 'd' || g FROM generate_series(1, 20) g`,
    );
    // The swap that collided when applied out of order: a value moves between rows.
    await blue.query(`UPDATE ${ord} SET email = 'x' WHERE id = 1`);
    await blue.query(`UPDATE ${ord} SET email = NULL WHERE id = 1`);
    await blue.query(`UPDATE ${ord} SET email = 'x' WHERE id = 2`);
    await blue.query(`DELETE FROM ${ord} WHERE id > 30`);
    await blue.query(`TRUNCATE ${ord}, ${plain}`);
    await blue.query(`INSERT INTO ${ord} (id) VALUES (1)`);
    await blue.query(`INSERT INTO ${plain} (id) VALUES (1)`);

    const topic = (t: string) => tableTopic(name, 'public', t);
    await waitFor(
      async () => {
        const [o, p] = await Promise.all([endOffsets(topic(ord)), endOffsets(topic(plain))]);
        // ord: 40 inserts + 3 updates + 10 deletes + 1 truncate + 1 insert; plain: 40 + 3 truncates + 1
        return o.reduce((a, b) => a + b, 0n) >= 55n && p.reduce((a, b) => a + b, 0n) >= 44n;
      },
      { what: 'every change in Kafka', timeoutMs: 60_000 },
    );
    const events = await readTopics(tables.map(topic));
    const of = (t: string) => events.filter((e) => e.record.topic === topic(t));
    const partitions = (t: string) => new Set(of(t).map((e) => e.record.partition));

    expect(partitions(ord)).toEqual(new Set([0]));
    expect(of(ord).filter((e) => e.event.op === 't')).toHaveLength(1);
    // On its one partition, in commit order.
    const positions = of(ord)
      .sort((a, b) => Number(a.record.offset - b.record.offset))
      .map((e) => e.event.position);
    const streamed = positions.filter((p) => p.seq > 0);
    for (let i = 1; i < streamed.length; i++) {
      const [a, b] = [streamed[i - 1]!, streamed[i]!];
      expect(a.lsn < b.lsn || (a.lsn === b.lsn && a.seq < b.seq)).toBe(true);
    }
    expect(partitions(part)).toEqual(new Set([0])); // the root's UNIQUE (code, id)
    expect(partitions(forced)).toEqual(new Set([0])); // ordered: true in the config
    expect(partitions(plain).size).toBeGreaterThan(1);
    expect(
      of(plain)
        .filter((e) => e.event.op === 't')
        .map((e) => e.record.partition)
        .sort(),
    ).toEqual([0, 1, 2]);
    expect(partitions(optout).size).toBeGreaterThan(1); // ordered: false in the config

    const layout = await readControlValue<Record<string, { ordered: boolean }>>(
      green,
      controlKey('topic_layout', config),
    );
    expect(layout?.[topic(ord)]?.ordered).toBe(true);
    expect(layout?.[topic(plain)]?.ordered).toBe(false);
  });

  test('a table that becomes ordered between two runs is refused until green applied its topic, then goes to partition 0', async () => {
    const name = uniqueName('becomes_ordered');
    const table = name;
    const config = configFor(name, [`public.${table}`]);
    const { blue, green, track } = await setup(name, [table], config);
    for (const c of [blue, green]) await c.query(`CREATE TABLE ${table} (id int PRIMARY KEY, email text)`);
    const topic = tableTopic(name, 'public', table);

    const first = track(new Producer(config));
    await first.start();
    await waitFor(() => first.status().state === 'streaming', { what: 'streaming', timeoutMs: 60_000 });
    await blue.query(`INSERT INTO ${table} SELECT g, 'e' || g FROM generate_series(1, 30) g`);
    await waitFor(async () => (await endOffsets(topic)).reduce((a, b) => a + b, 0n) >= 30n, {
      what: 'the inserts in Kafka',
    });
    expect((await endOffsets(topic)).filter((end) => end > 0n).length).toBeGreaterThan(1);
    await first.stop();

    for (const c of [blue, green]) await c.query(`CREATE UNIQUE INDEX ${table}_email ON ${table} (email)`);
    const refused = track(new Producer(config));
    const refusal = await refused.start().then(
      () => undefined,
      (err: Error & { code?: string }) => err,
    );
    expect(refusal?.code).toBe('TEAL_TOPIC_PARTITIONS_CHANGED');
    expect(refusal?.message).toContain(
      `public.${table} is ordered now (unique index besides the key on blue: ${table}_email)`,
    );
    expect(refusal?.message).toContain(`ordered: { "public.${table}": false }`);
    await refused.stop();

    const consumer = track(new Consumer(config, { groupId: `${name}-group` }));
    await consumer.start();
    const dump = async (c: typeof blue) => (await c.query(`SELECT id, email FROM ${table} ORDER BY id`)).rows;
    const applied = async () => JSON.stringify(await dump(green)) === JSON.stringify(await dump(blue));
    await waitFor(applied, { what: 'green applied the topic', timeoutMs: 60_000 });

    const before = await endOffsets(topic);
    const second = track(new Producer(config));
    await second.start();
    await waitFor(() => second.status().state === 'streaming', {
      what: 'streaming again',
      timeoutMs: 60_000,
    });
    // The swap an out-of-order apply refused: email e1 moves from row 1 to row 2.
    await blue.query(
      `BEGIN; UPDATE ${table} SET email = NULL WHERE id = 2; UPDATE ${table} SET email = 'e2' WHERE id = 1; COMMIT`,
    );
    await blue.query(`UPDATE ${table} SET email = 'e1' WHERE id = 2`);
    await blue.query(`INSERT INTO ${table} SELECT g, 'e' || g FROM generate_series(31, 50) g`);
    await waitFor(applied, { what: 'green equal to blue after the restart', timeoutMs: 60_000 });
    const after = await endOffsets(topic);
    expect(after[0]! > before[0]!).toBe(true);
    expect(after.slice(1)).toEqual(before.slice(1)); // nothing more on partitions 1 and 2
  });
});
