import { SchemaCache, TableCodec, tableTopic } from '@teal/change-event';
import { compileTransforms, resolveConfig } from '@teal/config';
import { Applier, type DeadLetterWriter, GreenCatalog } from '@teal/consumer';
import type { IncomingRecord } from '@teal/kafka';
import { createPool, ensureGreenState } from '@teal/postgres';
import { rootLogger } from '@teal/runtime';
import { expect, onTestFinished, test } from 'vitest';
import { MisplacedFetch } from '../services/consumer/src/offset-contiguity.ts';
import { changeEvent, column, tableSchema } from '../services/consumer/src/testing/harness.ts';
import { greenUrl, kafkaBrokers, uniqueName } from './support/env.ts';

// Issue 13, item 4: the applier never checked that a batch follows green's stored offset. A
// batch fetched from a stale offset (before the seek to green's position landed, or handed to
// a lane after its partition was revoked) was applied, and the records between green's offset
// and the batch were passed over for good. Against the real green, with the Kafka side
// (the batch, the partition's earliest offset) given by the test.

test('a batch that does not follow green offset is never applied; a first-ever batch starts at the earliest offset', async () => {
  const prefix = uniqueName('tpast');
  const table = uniqueName('t');
  const topic = tableTopic(prefix, 'public', table);
  const pool = createPool(greenUrl(), { applicationName: 'teal-test', max: 2 });
  onTestFinished(async () => {
    await pool.query(`DROP TABLE IF EXISTS public.${table}`);
    await pool.query('DELETE FROM teal.applied_position WHERE topic = $1', [topic]);
    await pool.end();
  });
  await ensureGreenState(pool);
  await pool.query(`CREATE TABLE public.${table} (id int PRIMARY KEY, name text)`);
  const schema = tableSchema('public', table, [column('id', 'int4', true), column('name', 'text')]);
  const codec = new TableCodec(schema, prefix);
  const cache = new SchemaCache();
  cache.add(codec.keyFingerprintHex, codec.keySchemaJson);
  cache.add(codec.valueFingerprintHex, codec.valueSchemaJson);
  const config = resolveConfig({
    green: { url: greenUrl() },
    kafka: { brokers: kafkaBrokers(), topicPrefix: prefix },
  });
  let earliest = 0n;
  const applier = new Applier({
    pool,
    schemas: { cache, reload: async () => undefined },
    transforms: compileTransforms(config),
    catalog: new GreenCatalog(pool),
    deadLetters: { send: async () => undefined } as unknown as DeadLetterWriter,
    apply: config.apply,
    topicPrefix: prefix,
    log: rootLogger(),
    earliestOffset: async () => earliest,
  });
  const batch = (partition: number, offsets: number[]) => ({
    topic,
    partition,
    highWatermark: BigInt(offsets[offsets.length - 1] + 1),
    records: offsets.map((o): IncomingRecord => {
      const event = changeEvent(schema, {
        op: 'c',
        lsn: BigInt(1000 + partition * 100 + o),
        seq: 0,
        after: { id: String(partition * 100 + o), name: `n${o}` },
      });
      return {
        topic,
        partition,
        offset: BigInt(o),
        key: codec.encodeKey(event.key),
        value: codec.encodeEvent(event),
        headers: {},
        timestampMs: 0,
      };
    }),
  });
  const ids = async () =>
    (await pool.query<{ id: string }>(`SELECT id FROM public.${table} ORDER BY id`)).rows.map((r) =>
      Number(r.id),
    );
  const stored = async (partition: number) =>
    (
      await pool.query<{ o: string }>(
        'SELECT kafka_offset::text AS o FROM teal.applied_position WHERE topic = $1 AND partition = $2',
        [topic, partition],
      )
    ).rows[0]?.o;

  expect(await applier.applyBatch(batch(0, [0, 1, 2]))).toBe(3n);
  // Offsets 3 and 4 are still in Kafka: a batch from 5 was fetched from a stale offset.
  const misplaced = await applier.applyBatch(batch(0, [5, 6])).catch((err: unknown) => err);
  expect(misplaced).toBeInstanceOf(MisplacedFetch);
  expect((misplaced as MisplacedFetch).next).toBe(3n);
  expect(await stored(0)).toBe('2');
  expect(await ids()).toEqual([0, 1, 2]);
  // A replay overlapping the stored offset follows it: the new records apply.
  expect(await applier.applyBatch(batch(0, [2, 3, 4, 5, 6]))).toBe(7n);
  expect(await ids()).toEqual([0, 1, 2, 3, 4, 5, 6]);

  // Partition 1 never stored anything: its first batch must start at the earliest offset.
  const early = await applier.applyBatch(batch(1, [3, 4])).catch((err: unknown) => err);
  expect(early).toBeInstanceOf(MisplacedFetch);
  expect((early as MisplacedFetch).next).toBe(0n);
  expect(await stored(1)).toBeUndefined();
  earliest = 3n; // retention removed 0..2 before anything was stored: nothing green could have had
  expect(await applier.applyBatch(batch(1, [3, 4]))).toBe(5n);
  expect(await ids()).toEqual([0, 1, 2, 3, 4, 5, 6, 103, 104]);
});
