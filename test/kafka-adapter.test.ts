import { randomBytes } from 'node:crypto';
import { kafkaClientFromEnv } from '@teal/config';
import type { TealError } from '@teal/errors';
import { type IncomingRecord, KafkaClient, type KafkaClientKind, SchemaTopic } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import { Partitioners } from 'kafkajs';
import { afterAll, describe, expect, test } from 'vitest';
import { kafkaBrokers, uniqueName } from './support/env.ts';

const CLIENTS: KafkaClientKind[] = ['kafkajs', 'platformatic'];

// A key lands in the same partition whichever client wrote it: both adapters' partitionFor
// equal kafkajs's own DefaultPartitioner (the Java client's murmur2) for many keys.
describe('@teal/kafka partitioning', () => {
  test('partitionFor is the same murmur2 partition in both adapters and in kafkajs', async () => {
    const clients = CLIENTS.map((client) => new KafkaClient({ brokers: kafkaBrokers(), client }));
    try {
      const publishers = await Promise.all(clients.map((c) => c.publisher()));
      const kafkajsPartitioner = Partitioners.DefaultPartitioner();
      const keys = [
        Buffer.alloc(0),
        Buffer.from('a'),
        Buffer.from('ab'),
        Buffer.from('abc'),
        Buffer.from('abcd'),
      ];
      for (let i = 0; i < 5000; i++) keys.push(randomBytes(i % 67));
      for (const key of keys) {
        for (const partitions of [1, 2, 3, 4, 7, 12, 64]) {
          const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
            partitionId,
            leader: 0,
            replicas: [0],
            isr: [0],
            partitionErrorCode: 0,
          }));
          const expected = kafkajsPartitioner({
            topic: 't',
            partitionMetadata,
            message: { key, value: null },
          });
          for (const publisher of publishers) expect(publisher.partitionFor(key, partitions)).toBe(expected);
        }
      }
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  test('TEAL_KAFKA_CLIENT picks the client; an unknown name is a clear error', () => {
    const saved = process.env.TEAL_KAFKA_CLIENT;
    try {
      process.env.TEAL_KAFKA_CLIENT = 'platformatic';
      expect(new KafkaClient({ brokers: kafkaBrokers(), client: kafkaClientFromEnv() }).clientKind).toBe(
        'platformatic',
      );
      process.env.TEAL_KAFKA_CLIENT = 'kafkajs';
      expect(new KafkaClient({ brokers: kafkaBrokers(), client: kafkaClientFromEnv() }).clientKind).toBe(
        'kafkajs',
      );
      expect(new KafkaClient({ brokers: kafkaBrokers(), client: 'platformatic' }).clientKind).toBe(
        'platformatic',
      );
      process.env.TEAL_KAFKA_CLIENT = 'rdkafka';
      expect(() => new KafkaClient({ brokers: kafkaBrokers(), client: kafkaClientFromEnv() })).toThrow(
        /kafkajs or platformatic/,
      );
    } finally {
      if (saved === undefined) delete process.env.TEAL_KAFKA_CLIENT;
      else process.env.TEAL_KAFKA_CLIENT = saved;
    }
  });
});

// teal's Kafka interface against the real broker, for each client: acks=all publishing,
// key -> partition, per-partition order across sends, a failed send stops the sends behind
// it, batches retried in place, the schema topic read back from its start.
describe.each(CLIENTS)('@teal/kafka on a real broker (%s)', (kind) => {
  const client = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-test', client: kind });
  afterAll(() => client.close());

  async function readAll(topic: string, count: number): Promise<IncomingRecord[]> {
    const seen: IncomingRecord[] = [];
    const consumer = client.groupConsumer({
      groupId: uniqueName('group'),
      topics: new RegExp(`^${topic.replace('.', '\\.')}$`),
    });
    await consumer.run({
      async eachBatch(batch) {
        seen.push(...batch.records);
      },
    });
    try {
      await waitFor(() => seen.length >= count, { what: `${count} records`, timeoutMs: 60_000 });
    } finally {
      await consumer.close();
    }
    return seen;
  }

  test('records land in the partition partitionFor names', async () => {
    const topic = `teal_test.${uniqueName('murmur')}`;
    const admin = client.admin();
    await admin.ensureTopic(topic, { partitions: 7 });
    const publisher = await client.publisher();
    const keys = Array.from({ length: 300 }, (_, i) => randomBytes(1 + (i % 40)));
    await publisher.send(keys.map((key, i) => ({ topic, key, value: Buffer.from(String(i)) })));
    const seen = await readAll(topic, keys.length);
    expect(seen).toHaveLength(keys.length);
    for (const r of seen) expect(r.partition).toBe(publisher.partitionFor(r.key!, 7));
    expect(new Set(seen.map((r) => r.partition)).size).toBe(7);
    await admin.deleteTopics([topic]);
  });

  test('a failed send rejects the sends queued behind it; later sends go through in order', async () => {
    const topic = `teal_test.${uniqueName('fail')}`;
    const admin = client.admin();
    await admin.ensureTopic(topic, { partitions: 2 });
    const publisher = await client.publisher();
    await publisher.send([{ topic, key: Buffer.from('k'), value: Buffer.from('0') }]);
    // A topic that does not exist (auto-creation is off) makes the send fail.
    const missing = `teal_test.${uniqueName('missing')}`;
    const failing = publisher.send([{ topic: missing, key: Buffer.from('k'), value: Buffer.from('x') }]);
    const behind = publisher.send([{ topic, key: Buffer.from('k'), value: Buffer.from('lost') }]);
    await expect(failing).rejects.toThrow();
    const err = await behind.then(
      () => undefined,
      (e: TealError) => e,
    );
    expect(err?.code).toBe('TEAL_KAFKA_SEND_ABORTED');
    expect(err?.retriable).toBe(true);
    // The publisher takes sends again once the failure is known.
    await publisher.send([{ topic, key: Buffer.from('k'), value: Buffer.from('1') }]);
    await publisher.send([{ topic, key: Buffer.from('k'), value: Buffer.from('2') }]);
    const seen = await readAll(topic, 3);
    expect(seen.map((r) => r.value?.toString())).toEqual(['0', '1', '2']);
    await admin.deleteTopics([topic]);
  }, 180_000);

  test('records of one key land in one partition in order, and a failed batch comes again', async () => {
    const topic = `teal_test.${uniqueName('adapter')}`;
    const admin = client.admin();
    await admin.ensureTopic(topic, { partitions: 3 });
    await admin.ensureTopic(topic, { partitions: 3 }); // idempotent
    expect(await admin.partitionCount(topic)).toBe(3);

    const publisher = await client.publisher();
    const keys = ['a', 'b', 'c', 'd', 'e'];
    for (let round = 0; round < 4; round++) {
      await publisher.send(
        keys.map((k) => ({
          topic,
          key: Buffer.from(k),
          value: Buffer.from(`${k}${round}`),
          headers: { round: `${round}` },
        })),
      );
    }
    const ends = await admin.logEndOffsets(topic);
    expect(ends.reduce((sum, e) => sum + e.end, 0n)).toBe(20n);

    const seen: IncomingRecord[] = [];
    let failedOnce = false;
    const consumer = client.groupConsumer({
      groupId: uniqueName('group'),
      topics: new RegExp(`^${topic.replace('.', '\\.')}$`),
    });
    await consumer.run({
      async eachBatch(batch) {
        if (!failedOnce) {
          failedOnce = true;
          throw new Error('transient failure in the handler');
        }
        seen.push(...batch.records);
      },
    });
    try {
      await waitFor(() => seen.length >= 20, { what: '20 records', timeoutMs: 60_000 });
    } finally {
      await consumer.close();
    }
    expect(failedOnce).toBe(true);
    expect(seen).toHaveLength(20); // the failed batch was delivered again, nothing twice
    for (const k of keys) {
      const records = seen.filter((r) => r.key?.toString() === k);
      expect(new Set(records.map((r) => r.partition)).size).toBe(1);
      expect(records[0]!.partition).toBe(publisher.partitionFor(Buffer.from(k), 3));
      expect(records.map((r) => r.value?.toString())).toEqual([0, 1, 2, 3].map((n) => `${k}${n}`));
      expect(records.map((r) => r.headers.round)).toEqual(['0', '1', '2', '3']);
    }
    await admin.deleteTopics([topic]);
  });

  // Regression: concurrent send() calls on a new topic were reordered by kafkajs (each call
  // awaits metadata before queueing its request), so later positions landed before earlier
  // ones and the consumer skipped the earlier ones as replays (rows lost after a drain).
  test('regression: concurrent sends keep call order within a partition', async () => {
    const topic = `teal_test.${uniqueName('order')}`;
    const admin = client.admin();
    await admin.ensureTopic(topic, { partitions: 2 });
    const publisher = await client.publisher();
    const sends = Array.from({ length: 40 }, (_, i) =>
      publisher.send([
        { topic, key: Buffer.from('same-key'), value: Buffer.from(String(i)) },
        { topic, key: Buffer.from('other-key'), value: Buffer.from(String(i)) },
      ]),
    );
    await Promise.all(sends);
    const seen: IncomingRecord[] = [];
    const consumer = client.groupConsumer({
      groupId: uniqueName('group'),
      topics: new RegExp(`^${topic.replace('.', '\\.')}$`),
    });
    await consumer.run({
      async eachBatch(batch) {
        seen.push(...batch.records);
      },
    });
    try {
      await waitFor(() => seen.length >= 80, { what: '80 records', timeoutMs: 60_000 });
    } finally {
      await consumer.close();
    }
    for (const key of ['same-key', 'other-key']) {
      const values = seen.filter((r) => r.key?.toString() === key).map((r) => Number(r.value?.toString()));
      expect(values).toEqual(Array.from({ length: 40 }, (_, i) => i));
    }
    await admin.deleteTopics([topic]);
  });

  test('onAssign decides where each partition starts', async () => {
    const topic = `teal_test.${uniqueName('assign')}`;
    const admin = client.admin();
    await admin.ensureTopic(topic, { partitions: 1 });
    const publisher = await client.publisher();
    await publisher.send(
      Array.from({ length: 10 }, (_, i) => ({ topic, partition: 0, key: null, value: Buffer.from(`${i}`) })),
    );
    const seen: bigint[] = [];
    const consumer = client.groupConsumer({
      groupId: uniqueName('group'),
      topics: new RegExp(`^${topic.replace('.', '\\.')}$`),
    });
    await consumer.run({
      onAssign: async (assigned) => new Map(assigned.map((tp) => [`${tp.topic}:${tp.partition}`, 7n])),
      async eachBatch(batch) {
        seen.push(...batch.records.map((r) => r.offset));
      },
    });
    try {
      await waitFor(() => seen.length >= 3, { what: 'records from offset 7', timeoutMs: 60_000 });
    } finally {
      await consumer.close();
    }
    expect(seen).toEqual([7n, 8n, 9n]);
    await admin.deleteTopics([topic]);
  });

  test('the schema topic returns every published schema', async () => {
    const schemas = new SchemaTopic(client, `teal_test.${uniqueName('schemas')}`);
    await schemas.publish('00000000000000aa', '{"type":"int"}');
    await schemas.publish('00000000000000bb', '{"type":"string"}');
    const loaded = await schemas.loadAll();
    expect(Object.fromEntries(loaded)).toEqual({
      '00000000000000aa': '{"type":"int"}',
      '00000000000000bb': '{"type":"string"}',
    });
    await schemas.close();
  });
});
