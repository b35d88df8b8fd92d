import { comparePosition, type Row } from '@teal/change-event';
import { resolveConfig } from '@teal/config';
import { KafkaClient } from '@teal/kafka';
import { decodeAll, Producer, TopicReader } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// A table added to the configuration later is snapshotted by chunk while the stream runs
// (watermarks): replaying its topic in position order gives exactly blue's final rows,
// although a writer kept updating, deleting and inserting rows during the snapshot.
describe('producer: chunked snapshot while streaming', () => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-producer-snapshot-test' });
  afterAll(() => kafka.close());

  test('a table added later is snapshotted while streaming, concurrent writes neither lost nor overwritten', async () => {
    const name = uniqueName('prod_chunk');
    const first = `${name}_a`;
    const later = `${name}_b`;
    const prefix = `${name}_t`;
    const blue = await pgClient(blueUrl());
    const writer = await pgClient(blueUrl());
    await blue.query(`CREATE TABLE ${first} (id int PRIMARY KEY, v text)`);
    await blue.query(`CREATE TABLE ${later} (k text, n int, v int NOT NULL, PRIMARY KEY (k, n))`);
    await blue.query(`INSERT INTO ${later} SELECT 'k' || (g % 3), g, 0 FROM generate_series(1, 300) g`);
    const config = (tables: string[]) =>
      resolveConfig(
        {
          tables,
          slot: `${name}_slot`,
          publication: `${name}_pub`,
          kafka: { topicPrefix: prefix, partitions: 2 },
          heartbeatMs: 300,
          snapshot: { chunkRows: 5 },
        },
        {
          env: {
            TEAL_BLUE_URL: blueUrl(),
            TEAL_GREEN_URL: greenUrl(),
            TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
          },
        },
      );
    let producer = new Producer(config([first]));
    onTestFinished(async () => {
      await producer.stop();
      await blue.query('SELECT pg_drop_replication_slot($1)', [`${name}_slot`]);
      await blue.query(`DROP PUBLICATION IF EXISTS ${name}_pub`);
    });
    await producer.start();
    await waitFor(() => producer.status().state === 'streaming', { what: 'streaming' });
    await producer.stop();

    // Between a chunk's read and its high watermark, a row of that chunk changes: the chunk's
    // (older) copy of it must not reach Kafka after the stream's newer event.
    let raced = 0;
    producer = new Producer(config([first, later]), {
      afterChunkRead: async (table, chunk) => {
        if (table !== `public.${later}` || chunk.length === 0) return;
        raced++;
        await blue.query(`UPDATE ${later} SET v = v + 1000 WHERE k = $1 AND n = $2`, [
          chunk[0].k,
          chunk[0].n,
        ]);
      },
    });
    await producer.start();
    let writing = true;
    let i = 0;
    const writer2 = await pgClient(blueUrl());
    const writeLoop = async (client: typeof writer) => {
      while (writing) {
        i++;
        const n = 1 + ((i * 37) % 320);
        await client.query(
          `INSERT INTO ${later} VALUES ('k' || ($1::int % 3), $1, $2) ON CONFLICT (k, n) DO UPDATE SET v = EXCLUDED.v`,
          [n, i],
        );
        if (i % 11 === 0) await client.query(`DELETE FROM ${later} WHERE n = $1`, [1 + ((i * 13) % 320)]);
      }
    };
    const writes = Promise.all([writeLoop(writer), writeLoop(writer2)]);
    await waitFor(
      () => producer.status().snapshot.find((s) => s.table === `public.${later}`)?.state === 'done',
      {
        what: 'chunk snapshot done',
        timeoutMs: 90_000,
      },
    );
    writing = false;
    await writes;
    expect(i).toBeGreaterThan(20);
    expect(raced).toBeGreaterThan(10);
    const { rows } = await blue.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    await waitFor(async () => {
      const r = await blue.query<{ ok: string }>(
        'SELECT (confirmed_flush_lsn >= $2::pg_lsn)::text AS ok FROM pg_replication_slots WHERE slot_name = $1',
        [`${name}_slot`, rows[0].lsn],
      );
      return r.rows[0].ok === 'true';
    });

    const topic = `${prefix}.public.${later}`;
    const reader = new TopicReader(kafka, [topic]);
    await reader.start();
    onTestFinished(() => reader.stop());
    const admin = kafka.admin();
    const ends = await admin.logEndOffsets(topic);
    await admin.close();
    const total = ends.reduce((s, e) => s + Number(e.end), 0);
    await waitFor(() => reader.records.length >= total, { what: 'all records read' });
    const events = (await decodeAll(kafka, prefix, reader.records)).map((d) => d.event);
    expect(events.some((e) => e.op === 'r')).toBe(true);
    // Replay as the consumer does: per key, in position order.
    events.sort((a, b) => comparePosition(a.position, b.position));
    const state = new Map<string, Row>();
    for (const e of events) {
      const id = `${e.key.k}/${e.key.n}`;
      if (e.op === 'd') state.delete(id);
      else if (e.after) state.set(id, { ...state.get(id), ...e.after });
    }
    const expected = await blue.query<{ k: string; n: string; v: string }>(
      `SELECT k, n, v FROM ${later} ORDER BY k, n`,
    );
    const actual = [...state.values()]
      .map((r) => ({ k: r.k, n: r.n, v: r.v }))
      .sort((a, b) => (a.k === b.k ? Number(a.n) - Number(b.n) : String(a.k) < String(b.k) ? -1 : 1));
    expect(actual).toEqual(expected.rows);
  });

  test('an initial snapshot that breaks off is finished by chunk while streaming, from its last recorded key', async () => {
    const name = uniqueName('prod_resume');
    const prefix = `${name}_t`;
    const blue = await pgClient(blueUrl());
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    await blue.query(`INSERT INTO ${name} SELECT g, 'v' || g FROM generate_series(1, 60) g`);
    let reads = 0;
    let phase: 'initial' | 'chunked' = 'initial';
    const producer = new Producer(
      resolveConfig(
        {
          tables: [name],
          slot: `${name}_slot`,
          publication: `${name}_pub`,
          kafka: { topicPrefix: prefix, partitions: 2 },
          heartbeatMs: 300,
          snapshot: { chunkRows: 5 },
        },
        {
          env: {
            TEAL_BLUE_URL: blueUrl(),
            TEAL_GREEN_URL: greenUrl(),
            TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
          },
        },
      ),
      {
        afterChunkRead: async (_table, rows) => {
          reads++;
          if (phase === 'initial' && reads === 4) {
            phase = 'chunked';
            // While the initial snapshot is broken off, a row it already read changes.
            await blue.query(`UPDATE ${name} SET v = 'changed' WHERE id = 2`);
            throw new Error(`simulated failure after reading up to id ${rows.at(-1)?.id}`);
          }
        },
      },
    );
    onTestFinished(async () => {
      await producer.stop();
      await blue.query('SELECT pg_drop_replication_slot($1)', [`${name}_slot`]);
      await blue.query(`DROP PUBLICATION IF EXISTS ${name}_pub`);
    });
    await producer.start();
    await waitFor(
      () =>
        producer.status().snapshot.find((s) => s.table === `public.${name}`)?.state === 'done' &&
        producer.status().state === 'streaming',
      {
        what: 'snapshot finished by chunks',
      },
    );
    expect(phase).toBe('chunked');
    const topic = `${prefix}.public.${name}`;
    const reader = new TopicReader(kafka, [topic]);
    await reader.start();
    onTestFinished(() => reader.stop());
    await waitFor(
      async () => {
        const events = (await decodeAll(kafka, prefix, reader.records)).map((d) => d.event);
        return (
          new Set(events.map((e) => e.key.id)).size >= 60 && events.some((e) => e.after?.v === 'changed')
        );
      },
      { what: 'every row and the update' },
    );
    const events = (await decodeAll(kafka, prefix, reader.records)).map((d) => d.event);
    events.sort((a, b) => comparePosition(a.position, b.position));
    const state = new Map<string, string | null>();
    for (const e of events) if (e.after) state.set(e.key.id ?? '', e.after.v);
    const expected = await blue.query<{ id: string; v: string }>(`SELECT id, v FROM ${name}`);
    expect(state.size).toBe(60);
    for (const r of expected.rows) expect(state.get(r.id)).toBe(r.v);
    // Resumed after the last recorded chunk (id 15): 15 rows + 45, not 15 + 60.
    expect(events.filter((e) => e.op === 'r').length).toBe(60);
  });
});
