import { TableCodec } from '@teal/change-event';
import { resolveConfig } from '@teal/config';
import { Consumer } from '@teal/consumer';
import { type IncomingRecord, KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { column, TestStream, tableSchema } from '../services/consumer/src/testing/harness.ts';
import { greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// Issue 7: an undecodable record in a running pipeline. Records whose bytes can never decode
// (garbage, an empty value, a corrupt body under a fingerprint the consumer knows) are
// permanent failures: they go to <prefix>._dlq with the original bytes and where they came
// from, and the records after them are applied. An unknown fingerprint is different by
// design (TEAL_SCHEMA_UNKNOWN is retriable: its schema may still be on its way), so it is
// not part of this test.

const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-dlq-undecodable-test' });
afterAll(() => kafka.close());

describe('undecodable records in the running pipeline', () => {
  test('garbage, an empty value and a corrupt body go to the DLQ with their headers; the records after them land in green', async () => {
    const prefix = uniqueName('dlqu');
    const table = uniqueName('t');
    const green = await pgClient(greenUrl());
    await green.query(`CREATE TABLE public.${table} (id int PRIMARY KEY, name text, n bigint)`);
    onTestFinished(async () => {
      await green.query(`DROP TABLE IF EXISTS public.${table}`);
    });
    const schema = tableSchema('public', table, [
      column('id', 'int4', true),
      column('name', 'text'),
      column('n', 'int8'),
    ]);
    const stream = new TestStream(kafka, prefix, 1);
    const topic = stream.topicOf(schema);
    const consumer = new Consumer(
      resolveConfig({
        green: { url: greenUrl() },
        kafka: { brokers: kafkaBrokers(), topicPrefix: prefix, partitions: 1 },
      }),
      { groupId: `${prefix}-g` },
    );
    const publisher = await kafka.publisher();
    const letters: IncomingRecord[] = [];
    const dlq = kafka.groupConsumer({ groupId: `${prefix}-dlq`, topics: new RegExp(`^${prefix}\\._dlq$`) });
    onTestFinished(async () => {
      await consumer.stop();
      await dlq.close();
      await publisher.close();
      await stream.close();
      const admin = kafka.admin();
      await admin.deleteTopics(await admin.listTopics(`${prefix}.`)).catch(() => undefined);
      await admin.close();
    });

    const row = (id: number, lsn: number) => ({
      op: 'c' as const,
      lsn: BigInt(lsn),
      seq: 1,
      after: { id: String(id), name: `row ${id}`, n: '9007199254740993' },
    });
    // A corrupt body under the real, published fingerprint: the `n` long's varint runs off
    // the end (continuation bits set on every byte).
    const codec = new TableCodec(schema, prefix);
    const valid = codec.encodeEvent({
      op: 'c',
      schema: 'public',
      table,
      position: { lsn: 150n, seq: 1 },
      xid: 1,
      commitTimeUs: 1_704_164_645_123_456n,
      key: { id: '99' },
      after: { id: '99', name: 'x', n: '1' },
      before: null,
      unchanged: [],
    });
    const corrupt = Buffer.concat([valid.subarray(0, 10), Buffer.alloc(valid.length - 10, 0xff)]);
    const garbage = Buffer.from('definitely not avro \u0000\u00ff', 'latin1');
    const bad: [string, Buffer, string][] = [
      ['garbage', garbage, 'TEAL_AVRO_BAD_HEADER'],
      ['empty', Buffer.alloc(0), 'TEAL_AVRO_BAD_HEADER'],
      ['corrupt body', corrupt, 'TEAL_AVRO_UNDECODABLE'],
    ];
    const raw = (value: Buffer, lsn: number) => ({
      topic,
      partition: 0,
      key: codec.encodeKey({ id: '99' }),
      value,
      headers: { 'teal.position': `0/${lsn.toString(16).toUpperCase()}:1`, 'teal.op': 'c', 'teal.xid': '1' },
    });

    // Offsets in partition 0: 0 valid, 1 garbage, 2 valid, 3 empty, 4 corrupt, 5 and 6 valid.
    await stream.send(schema, [row(1, 100)]);
    await publisher.send([raw(bad[0]![1], 110)]);
    await stream.send(schema, [row(2, 120)]);
    await publisher.send([raw(bad[1]![1], 130), raw(bad[2]![1], 140)]);
    await stream.send(schema, [row(3, 160), row(4, 170)]);

    await consumer.start();
    await dlq.run({
      eachBatch: async (b) => {
        letters.push(...b.records);
      },
    });
    await waitFor(
      async () => (await green.query(`SELECT count(*)::int AS n FROM public.${table}`)).rows[0].n === '4', // text: teal's clients parse nothing
      { what: 'the four valid records applied', timeoutMs: 60_000 },
    );
    const { rows } = await green.query(`SELECT id, name, n FROM public.${table} ORDER BY id`);
    expect(rows).toEqual(
      [1, 2, 3, 4].map((id) => ({ id: String(id), name: `row ${id}`, n: '9007199254740993' })),
    );
    await waitFor(() => letters.length >= 3, { what: 'three dead letters', timeoutMs: 60_000 });
    expect(letters).toHaveLength(3);
    const byOffset = [...letters].sort(
      (a, b) => Number(a.headers['teal.source.offset']) - Number(b.headers['teal.source.offset']),
    );
    [1, 3, 4].forEach((offset, i) => {
      const [what, bytes, code] = bad[i]!;
      const letter = byOffset[i]!;
      expect(letter.headers, what).toMatchObject({
        'teal.source.topic': topic,
        'teal.source.partition': '0',
        'teal.source.offset': String(offset),
        'teal.error.code': code,
      });
      expect(letter.headers['teal.error.message'], what).toMatch(/single-object|does not decode|Avro/);
      // The original bytes, so the record can be inspected and replayed as it was.
      expect(Buffer.from(letter.value ?? Buffer.alloc(0)).equals(bytes), what).toBe(true);
      expect(letter.key && Buffer.from(letter.key).equals(codec.encodeKey({ id: '99' })), what).toBe(true);
    });
    expect(consumer.status().deadLetters).toBe(3);
    // The position moved past every record, dead letters included.
    const { rows: pos } = await green.query(
      'SELECT kafka_offset FROM teal.applied_position WHERE topic = $1',
      [topic],
    );
    expect(pos).toEqual([{ kafka_offset: '6' }]);
  });
});
