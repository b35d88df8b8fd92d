import { parseLsn } from '@teal/change-event';
import { resolveConfig } from '@teal/config';
import { KafkaClient } from '@teal/kafka';
import { decodeAll, Producer, TopicReader } from '@teal/producer';
import { createMetrics, waitFor } from '@teal/runtime';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// The producer against real blue and Kafka: snapshot then stream, every op, truncate
// barrier, logical messages, and the slot never confirmed past what Kafka holds.
describe('producer: blue -> Kafka', () => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-producer-test' });
  afterAll(() => kafka.close());

  function configFor(name: string, tables: string[], extra: Record<string, unknown> = {}) {
    return resolveConfig(
      {
        tables,
        slot: `${name}_slot`,
        publication: `${name}_pub`,
        kafka: { topicPrefix: `${name}_t`, partitions: 3, headers: true },
        heartbeatMs: 500,
        snapshot: { chunkRows: 2 },
        ...extra,
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

  async function cleanup(name: string, producer: Producer) {
    await producer.stop();
    const blue = await pgClient(blueUrl());
    await blue.query(
      `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`,
      [`${name}_slot`],
    );
    await blue.query(`DROP PUBLICATION IF EXISTS ${name}_pub`);
  }

  test('snapshot rows, then inserts, TOAST-unchanged update, key change, delete, truncate and messages in order', async () => {
    const name = uniqueName('prod_stream');
    const blue = await pgClient(blueUrl());
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text, big text)`);
    await blue.query(`ALTER TABLE ${name} ALTER COLUMN big SET STORAGE EXTERNAL`);
    await blue.query(
      `INSERT INTO ${name} SELECT g, 'v' || g, repeat('x', 5000) FROM generate_series(1, 5) g`,
    );
    const config = configFor(name, [`public.${name}`]);
    const metrics = createMetrics(new Registry());
    const producer = new Producer(config, { metrics });
    onTestFinished(() => cleanup(name, producer));
    await producer.start();
    await waitFor(() => producer.status().state === 'streaming', { what: 'streaming', timeoutMs: 60_000 });
    const snapshot = producer.status().snapshot.find((s) => s.table === `public.${name}`);
    expect(snapshot).toMatchObject({ state: 'done', rowsDone: 5 });

    await blue.query(`INSERT INTO ${name} VALUES (6, 'six', 'small')`);
    await blue.query(`UPDATE ${name} SET v = 'one' WHERE id = 1`); // big stays TOASTed, unchanged
    await blue.query(`UPDATE ${name} SET id = 20 WHERE id = 2`);
    await blue.query(`DELETE FROM ${name} WHERE id = 3`);
    await blue.query(`SELECT pg_logical_emit_message(true, 'app.audit', 'hello')`);
    await blue.query(`TRUNCATE ${name}`);
    const { rows } = await blue.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const endOfWrites = parseLsn(rows[0].lsn);

    const topic = `${name}_t.public.${name}`;
    const reader = new TopicReader(kafka, [topic, `${name}_t._messages`]);
    await reader.start();
    onTestFinished(() => reader.stop());
    // 5 snapshot + insert + update + (d + c) + delete + truncate on each of 3 partitions
    await waitFor(() => reader.records.filter((r) => r.topic === topic).length >= 13, {
      what: 'records',
      timeoutMs: 60_000,
    });
    await waitFor(() => reader.records.some((r) => r.topic === `${name}_t._messages`), { what: 'message' });

    const decoded = await decodeAll(
      kafka,
      `${name}_t`,
      reader.records.filter((r) => r.topic === topic),
    );
    const events = decoded
      .map((d) => d.event)
      .sort((a, b) =>
        a.position.lsn === b.position.lsn
          ? a.position.seq - b.position.seq
          : a.position.lsn < b.position.lsn
            ? -1
            : 1,
      );
    const snap = events.filter((e) => e.op === 'r');
    expect(snap.map((e) => e.key.id).sort()).toEqual(['1', '2', '3', '4', '5']);
    expect(snap[0].after?.big).toBe('x'.repeat(5000));

    const stream = events.filter((e) => e.op !== 'r');
    expect(stream.map((e) => e.op)).toEqual(['c', 'u', 'd', 'c', 'd', 't', 't', 't']);
    expect(stream[0].after).toEqual({ id: '6', v: 'six', big: 'small' });
    // TOAST: the untouched value is named unchanged, never sent as NULL.
    expect(stream[1].unchanged).toEqual(['big']);
    expect(stream[1].after).toEqual({ id: '1', v: 'one' });
    expect(stream[2].key).toEqual({ id: '2' });
    expect(stream[3].key).toEqual({ id: '20' });
    expect(stream[4].key).toEqual({ id: '3' });
    // Snapshot rows come before every stream event; headers carry the position.
    expect(snap.every((e) => e.position.lsn < stream[0].position.lsn)).toBe(true);
    const truncates = decoded
      .filter((d) => d.event.op === 't')
      .map((d) => d.record.partition)
      .sort();
    expect(truncates).toEqual([0, 1, 2]);
    for (const d of decoded) {
      expect(d.record.headers['teal.op']).toBe(d.event.op);
      // Snapshot rows sort before every stream event at their LSN: seq -2^52 + ordinal.
      const seq = d.event.op === 'r' ? '-\\d+' : '\\d+';
      expect(d.record.headers['teal.position']).toMatch(new RegExp(`^[0-9A-F]+/[0-9A-F]+:${seq}$`));
    }
    // Per key: every event of a key is in one partition.
    const partitionsOf = new Map<string, Set<number>>();
    for (const d of decoded.filter((x) => x.event.op !== 't')) {
      const set = partitionsOf.get(d.event.key.id ?? '') ?? new Set();
      set.add(d.record.partition);
      partitionsOf.set(d.event.key.id ?? '', set);
    }
    for (const set of partitionsOf.values()) expect(set.size).toBe(1);

    // Status, metrics and the status row in green that a separate API process reads.
    const status = producer.status();
    expect(status.lastShippedPosition).toMatch(/^[0-9A-F]+\/[0-9A-F]+:-?\d+$/);
    expect(
      Number(
        (await metrics.eventsProduced.get()).values.find(
          (v) => v.labels.op === 'r' && v.labels.table === `public.${name}`,
        )?.value,
      ),
    ).toBe(5);
    expect(
      Number(
        (await metrics.snapshotRows.get()).values.find((v) => v.labels.table === `public.${name}`)?.value,
      ),
    ).toBe(5);
    const green = await pgClient(greenUrl());
    await waitFor(
      async () => {
        const r = await green.query<{ v: { slot: string; state: string } }>(
          'SELECT value AS v FROM teal.control WHERE key = $1',
          [`producer:${config.kafka.topicPrefix}`],
        );
        const v = r.rows[0]
          ? typeof r.rows[0].v === 'string'
            ? JSON.parse(r.rows[0].v)
            : r.rows[0].v
          : undefined;
        return v?.slot === config.slot && v?.state === 'streaming';
      },
      { what: 'status row in green', timeoutMs: 10_000 },
    );

    const message = reader.records.find((r) => r.topic === `${name}_t._messages`)!;
    expect(message.value?.toString()).toBe('hello');
    expect(message.headers['teal.prefix']).toBe('app.audit');

    // Heartbeats move the slot past our writes on an otherwise idle table.
    await waitFor(
      async () => {
        const r = await blue.query<{ c: string }>(
          'SELECT confirmed_flush_lsn::text AS c FROM pg_replication_slots WHERE slot_name = $1',
          [config.slot],
        );
        return parseLsn(r.rows[0].c) > endOfWrites;
      },
      { what: 'slot confirmed past the writes', timeoutMs: 30_000 },
    );
  });

  test('a streamed transaction arrives whole at commit; an aborted streamed one produces nothing', async () => {
    const name = uniqueName('prod_big');
    const blue = await pgClient(blueUrl());
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    // 64kB of decoding memory: 5000 rows of 100 bytes go out as in-progress stream blocks.
    const producer = new Producer(configFor(name, [`public.${name}`]), {
      replicationSettings: { logical_decoding_work_mem: '64kB' },
    });
    onTestFinished(() => cleanup(name, producer));
    await producer.start();
    await waitFor(() => producer.status().state === 'streaming', { what: 'streaming', timeoutMs: 60_000 });
    await blue.query('BEGIN');
    await blue.query(`INSERT INTO ${name} SELECT g, repeat('a', 100) FROM generate_series(1, 5000) g`);
    await blue.query('ROLLBACK');
    await blue.query('BEGIN');
    await blue.query(`INSERT INTO ${name} SELECT g, repeat('b', 100) FROM generate_series(10001, 30000) g`);
    await blue.query('COMMIT');
    await blue.query(`INSERT INTO ${name} VALUES (0, 'after')`);
    const topic = `${name}_t.public.${name}`;
    const reader = new TopicReader(kafka, [topic]);
    await reader.start();
    onTestFinished(() => reader.stop());
    await waitFor(() => reader.records.length >= 20001, {
      what: '20001 records',
      timeoutMs: 60_000,
    });
    const events = (await decodeAll(kafka, `${name}_t`, reader.records)).map((d) => d.event);
    const ids = events.map((e) => Number(e.key.id));
    expect(ids.filter((id) => id <= 5000 && id >= 1)).toEqual([]); // the aborted rows never reach Kafka
    expect(new Set(ids.filter((id) => id > 10000)).size).toBe(20000);
    // One transaction: one commit LSN, sequences 1..20000 (2 MB: more than one Produce request may
    // carry, so the replay at Stream Commit must flow through the batch limits).
    const big = events.filter((e) => Number(e.key.id) > 10000);
    expect(new Set(big.map((e) => e.position.lsn)).size).toBe(1);
    expect(big.map((e) => e.position.seq).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 20000 }, (_, i) => i + 1),
    );
    // Regression: the producer read the server version wrongly and asked for proto_version 1,
    // so big transactions were never streamed. Blue's own counters say they were.
    const streamed = await waitFor(
      async () => {
        const { rows } = await blue.query<{ n: string }>(
          'SELECT stream_txns::text AS n FROM pg_stat_replication_slots WHERE slot_name = $1',
          [`${name}_slot`],
        );
        return Number(rows[0]?.n ?? 0) >= 2 ? Number(rows[0].n) : undefined;
      },
      { what: 'blue to count the two streamed transactions', timeoutMs: 30_000 },
    );
    expect(streamed).toBeGreaterThanOrEqual(2);
  });
});
