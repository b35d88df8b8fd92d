import { type ChangeEvent, schemasTopic, type TableSchema } from '@teal/change-event';
import { KafkaClient, type OutgoingRecord, type Publisher, SchemaTopic } from '@teal/kafka';
import { EventPublisher } from '@teal/producer';
import { afterAll, expect, test } from 'vitest';
import { kafkaBrokers, uniqueName } from './support/env.ts';
import { readAllEvents } from './support/producer-fixture.ts';

// Issue 15, item 3: memory is bounded by design, not by luck. Against the real broker, with
// every acknowledgement held back until the test lets it go (a slow Kafka), the publisher
// never holds more than its byte budget (plus one record); the stream loop's rule
// (saturated -> waitForCapacity) is what stops it, and every record still arrives, in order.

const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-held-bytes-test' });
afterAll(() => kafka.close());

const table: TableSchema = {
  schema: 'public',
  table: 'held',
  columns: [
    { name: 'id', type: { oid: 23, name: 'int4', kind: 'base' }, typmod: -1, isKey: true },
    { name: 'v', type: { oid: 25, name: 'text', kind: 'base' }, typmod: -1, isKey: false },
  ],
  keyColumns: ['id'],
};

const change = (id: number): ChangeEvent => ({
  op: 'c',
  schema: 'public',
  table: 'held',
  position: { lsn: 1000n, seq: id },
  xid: 9,
  commitTimeUs: 1n,
  key: { id: String(id) },
  after: { id: String(id), v: 'x'.repeat(200) },
  before: null,
  unchanged: [],
});

test('while Kafka holds back its acks the publisher never holds more than maxHeldBytes; every record arrives in order', async () => {
  const prefix = uniqueName('theld');
  const budget = 64 * 1024;
  const admin = kafka.admin();
  const real = await kafka.publisher();
  // The real publisher, each send's acknowledgement released only when the test says so.
  const held: Array<() => void> = [];
  const slow: Publisher = {
    send: (records: OutgoingRecord[]) =>
      real.send(records).then(() => new Promise<void>((resolve) => held.push(resolve))),
    partitionFor: (key, n) => real.partitionFor(key, n),
    close: () => real.close(),
  };
  const schemas = new SchemaTopic(kafka, schemasTopic(prefix));
  await schemas.ensure();
  const pub = new EventPublisher({
    publisher: slow,
    admin,
    schemas,
    prefix,
    partitions: 1,
    startLsn: 0n,
    limits: { maxBatchRecords: 50, maxInFlightSends: 64, maxHeldBytes: budget },
  });
  const codec = await pub.prepare(table);
  const total = 3_000;
  let peak = 0;
  let largest = 0;
  let waits = 0;
  pub.begin();
  const loop = (async () => {
    for (let id = 1; id <= total; id++) {
      if (pub.saturated) {
        waits++;
        await pub.waitForCapacity();
      }
      const before = pub.heldBytes;
      pub.addEvent(codec, change(id));
      largest = Math.max(largest, pub.heldBytes - before);
      peak = Math.max(peak, pub.heldBytes);
    }
    pub.commit(2000n);
  })();
  // Let acknowledgements through one by one, as a slow broker would, until all is acknowledged.
  let drained = false;
  const releaser = (async () => {
    while (!drained) {
      const release = held.shift();
      if (release) release();
      else await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  await loop;
  await pub.drain();
  drained = true;
  await releaser;
  expect(waits).toBeGreaterThan(0); // the budget stopped the loop, not the batch limits
  expect(peak).toBeGreaterThan(budget / 2);
  expect(peak).toBeLessThanOrEqual(budget + largest);
  expect(pub.heldBytes).toBe(0);

  const topic = pub.topicOf('public', 'held');
  const events = await readAllEvents(kafka, prefix, topic);
  expect(events).toHaveLength(total);
  // One partition: Kafka's order is the order of the adds.
  expect(events.map((e) => e.position.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  await admin.deleteTopics([topic, schemasTopic(prefix)]);
  await admin.close();
});
