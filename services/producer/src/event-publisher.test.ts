import { type ChangeEvent, decodeEvent, type Lsn, SchemaCache, type TableSchema } from '@teal/change-event';
import type { OutgoingRecord, Publisher, TopicAdmin } from '@teal/kafka';
import { describe, expect, it } from 'vitest';
import { EventPublisher } from './event-publisher.ts';
import { TopicLayouts } from './topic-layout.ts';

const table: TableSchema = {
  schema: 'public',
  table: 'items',
  columns: [
    { name: 'id', type: { oid: 23, name: 'int4', kind: 'base' }, typmod: -1, isKey: true },
    { name: 'v', type: { oid: 25, name: 'text', kind: 'base' }, typmod: -1, isKey: false },
  ],
  keyColumns: ['id'],
};

function event(op: ChangeEvent['op'], id: number, lsn: Lsn, seq: number): ChangeEvent {
  const row: Record<string, string> = op === 't' ? {} : { id: String(id) };
  return {
    op,
    schema: 'public',
    table: 'items',
    position: { lsn, seq },
    xid: 7,
    commitTimeUs: 1n,
    key: row,
    after: op === 'c' ? { id: String(id), v: 'x' } : null,
    before: null,
    unchanged: [],
  };
}

function fakes() {
  const log: string[] = [];
  const sends: Array<{ records: OutgoingRecord[]; resolve: () => void; reject: (e: unknown) => void }> = [];
  const publisher: Publisher = {
    send: (records) =>
      new Promise<void>((resolve, reject) => {
        log.push(`send ${records.length}`);
        sends.push({ records, resolve, reject });
      }),
    partitionFor: () => 0,
    close: async () => {},
  };
  const admin = {
    ensureTopic: async (topic: string) => {
      log.push(`topic ${topic}`);
      return { partitions: 3, maxMessageBytes: null };
    },
    partitionCount: async () => 3,
    partitionCounts: async (topics: string[]) => new Map(topics.map((t) => [t, topicPartitions.count])),
  } as unknown as TopicAdmin;
  const topicPartitions = { count: 3 };
  const schemas = { publish: async (fp: string) => void log.push(`schema ${fp}`) };
  return { log, sends, publisher, admin, schemas, topicPartitions };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('EventPublisher', () => {
  it('writes no headers unless asked: the Avro value already carries position, op and xid', async () => {
    const f = fakes();
    const pub = new EventPublisher({ ...f, prefix: 'tp', partitions: 3, startLsn: 10n });
    const codec = await pub.prepare(table);
    pub.begin();
    pub.addEvent(codec, event('c', 1, 100n, 1));
    pub.commit(120n);
    await tick();
    const record = f.sends[0].records[0];
    expect(record.headers).toBeUndefined();
    const schemas = new SchemaCache();
    schemas.add(codec.valueFingerprintHex, codec.valueSchemaJson);
    expect(decodeEvent(record.value!, schemas).event).toMatchObject({
      op: 'c',
      xid: 7,
      position: { lsn: 100n, seq: 1 },
    });
  });

  it('publishes schemas before the first record, confirms only after the ack, truncates every partition', async () => {
    const f = fakes();
    const confirmed: Lsn[] = [];
    const pub = new EventPublisher({
      ...f,
      prefix: 'tp',
      partitions: 3,
      startLsn: 10n,
      headers: true,
      onConfirm: (l) => confirmed.push(l),
    });
    const codec = await pub.prepare(table);
    pub.begin();
    pub.addEvent(codec, event('c', 1, 100n, 1));
    pub.addEvent(codec, event('t', 0, 100n, 2));
    pub.commit(120n);
    await tick();
    await tick(); // the truncate's batch goes once the partition count is read again
    expect(f.log[0]).toBe('topic tp.public.items');
    expect(f.log.filter((l) => l.startsWith('schema'))).toHaveLength(2);
    expect(f.log.at(-1)).toBe('send 4');
    const records = f.sends[0].records;
    expect(records.slice(1).map((r) => r.partition)).toEqual([0, 1, 2]);
    expect(records[0].headers).toEqual({ 'teal.position': '0/64:1', 'teal.op': 'c', 'teal.xid': '7' });
    expect(confirmed).toEqual([]);
    f.sends[0].resolve();
    await tick();
    expect(confirmed).toEqual([120n]);
  });

  it('a failed send confirms nothing after it and reports once', async () => {
    const f = fakes();
    const confirmed: Lsn[] = [];
    const errors: unknown[] = [];
    const pub = new EventPublisher({
      ...f,
      prefix: 'tp',
      partitions: 3,
      startLsn: 10n,
      limits: { maxBatchRecords: 1 },
      onConfirm: (l) => confirmed.push(l),
      onError: (e) => errors.push(e),
    });
    const codec = await pub.prepare(table);
    pub.begin();
    pub.addEvent(codec, event('c', 1, 100n, 1));
    pub.commit(120n);
    pub.begin();
    pub.addEvent(codec, event('c', 2, 200n, 1));
    pub.commit(220n);
    expect(f.sends).toHaveLength(2);
    f.sends[0].reject(new Error('broker gone'));
    f.sends[1].resolve();
    await tick();
    expect(confirmed).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(() => pub.addEvent(codec, event('c', 3, 300n, 1))).toThrow('broker gone');
  });

  it('stops with TEAL_ROW_TOO_LARGE on a record over the limit, naming table, key, size and setting', async () => {
    const f = fakes();
    const errors: unknown[] = [];
    const layouts = new TopicLayouts({ admin: f.admin, partitions: 3, maxMessageBytes: 1024 * 1024 });
    const pub = new EventPublisher({
      ...f,
      layouts,
      prefix: 'tp',
      partitions: 3,
      startLsn: 10n,
      onError: (e) => errors.push(e),
    });
    const codec = await pub.prepare(table);
    pub.begin();
    pub.addEvent(codec, event('c', 1, 100n, 1));
    const big = { ...event('c', 42, 100n, 2), after: { id: '42', v: 'x'.repeat(2 * 1024 * 1024) } };
    expect(() => pub.addEvent(codec, big)).toThrow(
      /a change of public\.items \(key \{"id":"42"\}\) is a Kafka record of \d+ bytes, more than the 1048576 bytes tp\.public\.items takes \(kafka\.maxMessageBytes: raise it above \d+ in teal\.config\.ts \(or TEAL_KAFKA_MAX_MESSAGE_BYTES\)/,
    );
    expect(errors).toHaveLength(1);
    expect((errors[0] as { code: string }).code).toBe('TEAL_ROW_TOO_LARGE');
    await tick();
    expect(f.sends).toHaveLength(0); // nothing after the failure goes, not even the row before it
  });

  it('closes a batch before a record that would take it over the topic limit', async () => {
    const f = fakes();
    const layouts = new TopicLayouts({ admin: f.admin, partitions: 3, maxMessageBytes: 1024 * 1024 });
    const pub = new EventPublisher({ ...f, layouts, prefix: 'tp', partitions: 3, startLsn: 10n });
    const codec = await pub.prepare(table);
    pub.begin();
    const row = (id: number, bytes: number) => ({
      ...event('c', id, 100n, id),
      after: { id: String(id), v: 'y'.repeat(bytes) },
    });
    pub.addEvent(codec, row(1, 600 * 1024));
    pub.addEvent(codec, row(2, 600 * 1024));
    pub.commit(120n);
    await tick();
    expect(f.sends.map((s) => s.records.length)).toEqual([1, 1]);
  });

  it('sends every record and truncate of an ordered table to partition 0; others by key', async () => {
    const f = fakes();
    f.publisher.partitionFor = (key, count) => key.length % count;
    const layouts = new TopicLayouts({ admin: f.admin, partitions: 3, ordered: { 'public.items': true } });
    const pub = new EventPublisher({ ...f, layouts, prefix: 'tp', partitions: 3, startLsn: 10n });
    const codec = await pub.prepare(table);
    pub.begin();
    for (let id = 1; id <= 5; id++) pub.addEvent(codec, event('c', id * 1000, 100n, id));
    pub.addEvent(codec, event('t', 0, 100n, 6));
    pub.commit(120n);
    await tick();
    await tick();
    expect(f.sends.flatMap((s) => s.records.map((r) => r.partition))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('a changed partition count stops the truncate before it is sent, and the sends behind it', async () => {
    const f = fakes();
    const errors: unknown[] = [];
    const layouts = new TopicLayouts({ admin: f.admin, partitions: 3 });
    const pub = new EventPublisher({
      ...f,
      layouts,
      prefix: 'tp',
      partitions: 3,
      startLsn: 10n,
      limits: { maxBatchRecords: 3 },
      onError: (e) => errors.push(e),
    });
    const codec = await pub.prepare(table);
    f.topicPartitions.count = 5; // kafka-topics --alter --partitions 5
    pub.begin();
    pub.addEvent(codec, event('t', 0, 100n, 1));
    pub.addEvent(codec, event('c', 1, 100n, 2));
    pub.commit(120n);
    await tick();
    await tick();
    expect(f.sends).toHaveLength(0);
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toMatch(/topic tp\.public\.items went from 3 to 5 partitions/);
    expect((errors[0] as { code: string }).code).toBe('TEAL_TOPIC_PARTITIONS_CHANGED');
  });

  it('holds no more than maxHeldBytes (plus one record) while Kafka does not acknowledge, then goes on', async () => {
    const f = fakes();
    const budget = 2_000;
    const pub = new EventPublisher({
      ...f,
      prefix: 'tp',
      partitions: 3,
      startLsn: 10n,
      limits: { maxBatchRecords: 5, maxInFlightSends: 100, maxHeldBytes: budget },
    });
    const codec = await pub.prepare(table);
    let added = 0;
    let largest = 0;
    let peak = 0;
    let acked = 0;
    pub.begin();
    // A producer loop as the stream's: add while not saturated, then wait for capacity.
    const loop = (async () => {
      for (let id = 1; id <= 400; id++) {
        if (pub.saturated) await pub.waitForCapacity();
        const before = pub.heldBytes;
        pub.addEvent(codec, event('c', id, 100n, id));
        largest = Math.max(largest, pub.heldBytes - before);
        peak = Math.max(peak, pub.heldBytes);
        added++;
      }
    })();
    for (let round = 0; round < 2000 && added < 400; round++) {
      await tick();
      peak = Math.max(peak, pub.heldBytes);
      // Kafka acknowledges one send now and then: the loop resumes only as bytes are released.
      if (round % 5 === 0 && f.sends[acked]) f.sends[acked++]!.resolve();
      if (pub.saturated) expect(pub.heldBytes).toBeLessThan(budget + largest);
    }
    for (const s of f.sends) s.resolve();
    await loop;
    expect(added).toBe(400);
    expect(peak).toBeGreaterThan(budget / 2); // the budget was reached, not avoided
    expect(peak).toBeLessThan(budget + largest);
  });
});
