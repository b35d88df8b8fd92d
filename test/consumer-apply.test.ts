import { resolveConfig, type TableTransform } from '@teal/config';
import { Consumer, type ConsumerStatus } from '@teal/consumer';
import { type IncomingRecord, KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import {
  column,
  type EventInput,
  TestStream,
  tableSchema,
} from '../services/consumer/src/testing/harness.ts';
import { greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// The consumer against a real broker and a real green: records are produced exactly as the
// producer writes them (TableCodec + the schema topic), so no producer is involved.

const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-consumer-test' });
afterAll(() => kafka.close());

interface Setup {
  prefix: string;
  table: string;
  green: pg.Client;
  stream: TestStream;
  consumer: Consumer;
}

async function setup(
  ddl: (table: string) => string,
  options: {
    partitions?: number;
    apply?: Record<string, unknown>;
    transforms?: (table: string) => Record<string, TableTransform>;
  } = {},
): Promise<Setup> {
  const prefix = uniqueName('tc');
  const table = uniqueName('t');
  const green = await pgClient(greenUrl());
  const sql = ddl(table);
  if (sql) await green.query(sql);
  const stream = new TestStream(kafka, prefix, options.partitions ?? 2);
  const config = resolveConfig({
    green: { url: greenUrl() },
    kafka: { brokers: kafkaBrokers(), topicPrefix: prefix, partitions: options.partitions ?? 2 },
    apply: options.apply ?? {},
    transforms: options.transforms?.(table) ?? {},
  });
  const consumer = new Consumer(config, { groupId: `${prefix}-g` });
  onTestFinished(async () => {
    await consumer.stop();
    await stream.close();
    const admin = kafka.admin();
    const topics = await admin.listTopics(`${prefix}.`);
    await admin.deleteTopics(topics).catch(() => undefined);
    await admin.close();
  });
  return { prefix, table, green, stream, consumer };
}

async function rows(
  green: pg.Client,
  table: string,
  columns = '*',
): Promise<Record<string, string | null>[]> {
  return (await green.query(`SELECT ${columns} FROM public.${table} ORDER BY id`)).rows;
}

async function appliedThrough(green: pg.Client, topic: string): Promise<bigint> {
  const { rows: r } = await green.query<{ o: string | null }>(
    'SELECT max(kafka_offset) AS o FROM teal.applied_position WHERE topic = $1',
    [topic],
  );
  return r[0].o === null ? -1n : BigInt(r[0].o);
}

async function appliedThrough1(green: pg.Client, topic: string): Promise<bigint> {
  const { rows: r } = await green.query<{ o: string }>(
    'SELECT kafka_offset AS o FROM teal.applied_position WHERE topic = $1 AND partition = 1',
    [topic],
  );
  return r.length === 0 ? -1n : BigInt(r[0].o);
}

const users = (table: string) =>
  tableSchema('public', table, [column('id', 'int4', true), column('name', 'text'), column('doc', 'text')]);
const c = (lsn: number, id: number, name: string, doc = `doc${id}`): EventInput => ({
  op: 'c',
  lsn: BigInt(lsn),
  seq: id,
  after: { id: String(id), name, doc },
});

describe('consumer: Kafka -> green', () => {
  test('replayed records (same positions at new offsets) are skipped, their offsets still advance', async () => {
    const s = await setup((t) => `CREATE TABLE public.${t} (id int PRIMARY KEY, name text, doc text)`, {
      partitions: 1,
    });
    const schema = users(s.table);
    await s.stream.send(schema, [
      c(100, 1, 'a'),
      { op: 'u', lsn: 200n, seq: 1, after: { id: '1', name: 'b', doc: 'd' } },
    ]);
    await s.consumer.start();
    const topic = s.stream.topicOf(schema);
    await waitFor(async () => (await appliedThrough(s.green, topic)) >= 1n, {
      what: 'first two records applied',
    });
    // A restarted producer sends the insert again at a new offset: applying it would undo the update.
    await s.stream.send(schema, [c(100, 1, 'a'), c(300, 2, 'new')]);
    await waitFor(async () => (await appliedThrough(s.green, topic)) >= 3n, {
      what: 'replay offsets covered',
    });
    expect(await rows(s.green, s.table, 'id, name')).toEqual([
      { id: '1', name: 'b' },
      { id: '2', name: 'new' },
    ]);
    const { rows: pos } = await s.green.query(
      'SELECT kafka_offset, lsn::text, seq FROM teal.applied_position WHERE topic = $1',
      [topic],
    );
    expect(pos).toEqual([{ kafka_offset: '3', lsn: '0/12C', seq: '2' }]);
    const st = s.consumer.status();
    expect(st.state).toBe('running');
    expect(st.partitions).toEqual([
      expect.objectContaining({
        topic,
        partition: 0,
        appliedOffset: '3',
        appliedPosition: '0/12C:2',
        lag: 0,
      }),
    ]);
  });

  test('an update with unchanged TOAST values never nulls them, also when its insert is in the same batch', async () => {
    const s = await setup((t) => `CREATE TABLE public.${t} (id int PRIMARY KEY, name text, doc text)`);
    const schema = users(s.table);
    const big = 'x'.repeat(5000);
    await s.green.query(`INSERT INTO public.${s.table} VALUES (3, 'old', 'kept-in-green')`);
    await s.stream.send(schema, [
      c(100, 1, 'a', big),
      { op: 'u', lsn: 200n, seq: 1, after: { id: '1', name: 'b' }, unchanged: ['doc'] },
      // No earlier image: an UPDATE of the carried columns; a row green lacks stays absent.
      { op: 'u', lsn: 300n, seq: 1, after: { id: '2', name: 'ghost' }, unchanged: ['doc'] },
      { op: 'u', lsn: 400n, seq: 1, after: { id: '3', name: 'new' }, unchanged: ['doc'] },
    ]);
    await s.consumer.start();
    await waitFor(async () => (await rows(s.green, s.table)).some((r) => r.name === 'new'), {
      what: 'updates applied',
    });
    await waitFor(async () => (await rows(s.green, s.table)).some((r) => r.name === 'b'), {
      what: 'merge applied',
    });
    expect(await rows(s.green, s.table)).toEqual([
      { id: '1', name: 'b', doc: big },
      { id: '3', name: 'new', doc: 'kept-in-green' },
    ]);
  });

  test('a primary-key change (delete + insert) and a truncate between upserts', async () => {
    const s = await setup((t) => `CREATE TABLE public.${t} (id int PRIMARY KEY, name text, doc text)`, {
      partitions: 1,
    });
    const schema = users(s.table);
    await s.stream.send(schema, [
      c(100, 1, 'a'),
      c(100, 2, 'b'),
      { op: 't', lsn: 200n, seq: 1 },
      c(300, 3, 'c'),
      c(300, 4, 'moving'),
      { op: 'd', lsn: 400n, seq: 1, key: { id: '4' } },
      { op: 'c', lsn: 400n, seq: 2, after: { id: '40', name: 'moving', doc: 'doc4' } },
    ]);
    await s.consumer.start();
    await waitFor(async () => (await appliedThrough(s.green, s.stream.topicOf(schema))) >= 6n, {
      what: 'all applied',
    });
    expect(await rows(s.green, s.table, 'id, name')).toEqual([
      { id: '3', name: 'c' },
      { id: '40', name: 'moving' },
    ]);
  });

  test('a truncate runs once across partitions: a lagging partition neither keeps pre-truncate rows nor truncates later ones', async () => {
    const s = await setup((t) => `CREATE TABLE public.${t} (id int PRIMARY KEY, name text, doc text)`);
    const schema = users(s.table);
    // Partition 0 runs ahead: pre-truncate row, the truncate, a post-truncate row.
    await s.stream.send(schema, [
      { ...c(100, 1, 'pre-0'), partition: 0 },
      { op: 't', lsn: 200n, seq: 1, partition: 0 },
      { ...c(300, 3, 'post-0'), partition: 0 },
    ]);
    await s.consumer.start();
    const topic = s.stream.topicOf(schema);
    await waitFor(async () => (await rows(s.green, s.table)).some((r) => r.name === 'post-0'), {
      what: 'partition 0',
    });
    // Partition 1 lags behind: its pre-truncate row arrives after the truncate ran.
    await s.stream.send(schema, [{ ...c(150, 2, 'pre-1'), partition: 1 }]);
    await waitFor(async () => (await appliedThrough1(s.green, topic)) >= 0n, {
      what: 'partition 1 pre-truncate row',
    });
    expect((await rows(s.green, s.table, 'id, name')).map((r) => r.name)).toEqual(['post-0']);
    // Then partition 1 reaches the truncate and a row after it.
    await s.stream.send(schema, [
      { op: 't', lsn: 200n, seq: 1, partition: 1 },
      { ...c(400, 4, 'post-1'), partition: 1 },
    ]);
    await waitFor(async () => (await appliedThrough1(s.green, topic)) >= 2n, {
      what: 'partition 1 caught up',
    });
    expect((await rows(s.green, s.table, 'id, name')).map((r) => r.name)).toEqual(['post-0', 'post-1']);
  });

  test('the email_domain derivation, end to end through the transform config', async () => {
    const s = await setup(
      (t) => `CREATE TABLE public.${t} (id int PRIMARY KEY, email text, email_domain text)`,
      {
        transforms: (t) => ({
          [`public.${t}`]: {
            derive: { email_domain: (row) => row.email?.split('@')[1]?.toLowerCase() ?? null },
          },
        }),
      },
    );
    const schema = tableSchema('public', s.table, [column('id', 'int4', true), column('email', 'text')]);
    await s.stream.send(schema, [
      { op: 'c', lsn: 100n, seq: 1, after: { id: '1', email: 'ann@Example.com' } },
      { op: 'c', lsn: 100n, seq: 2, after: { id: '2', email: 'bob@old.org' } },
      { op: 'u', lsn: 200n, seq: 1, after: { id: '2', email: 'bob@new.org' } },
    ]);
    await s.consumer.start();
    await waitFor(async () => (await rows(s.green, s.table)).some((r) => r.email_domain === 'new.org'), {
      what: 'derived column',
    });
    expect(await rows(s.green, s.table)).toEqual([
      { id: '1', email: 'ann@Example.com', email_domain: 'example.com' },
      { id: '2', email: 'bob@new.org', email_domain: 'new.org' },
    ]);
  });

  test("a derive over an unchanged TOAST column reads green's value; a row the filter rejects leaves green", async () => {
    const s = await setup(
      (t) => `CREATE TABLE public.${t} (id int PRIMARY KEY, name text, doc text, doc_len text)`,
      {
        transforms: (t) => ({
          [`public.${t}`]: {
            derive: { doc_len: (row) => String(row.doc?.length ?? 0) },
            filter: (row) => row.name !== 'hidden',
          },
        }),
      },
    );
    // As if the snapshot had brought them.
    await s.green.query(`INSERT INTO public.${s.table} VALUES (1, 'a', 'hello', '5'), (2, 'b', 'bye', '3')`);
    await s.stream.send(users(s.table), [
      { op: 'u', lsn: 100n, seq: 1, after: { id: '1', name: 'a2' }, unchanged: ['doc'] },
      { op: 'u', lsn: 100n, seq: 2, after: { id: '2', name: 'hidden', doc: 'bye' } },
    ]);
    await s.consumer.start();
    await waitFor(async () => (await rows(s.green, s.table)).length === 1, { what: 'filtered row deleted' });
    await waitFor(async () => (await rows(s.green, s.table))[0].name === 'a2', {
      what: 'partial update applied',
    });
    expect(await rows(s.green, s.table)).toEqual([{ id: '1', name: 'a2', doc: 'hello', doc_len: '5' }]);
  });

  test('a record green rejects goes to the DLQ with its headers while its neighbours land', async () => {
    const s = await setup(
      (t) => `CREATE TABLE public.${t} (id int PRIMARY KEY, name text, doc text, CHECK (name <> 'bad'))`,
      { partitions: 1 },
    );
    const schema = users(s.table);
    await s.stream.send(schema, [c(100, 1, 'a'), c(100, 2, 'bad'), c(100, 3, 'c'), c(200, 4, 'd')]);
    const letters: IncomingRecord[] = [];
    const dlq = kafka.groupConsumer({
      groupId: `${s.prefix}-dlq`,
      topics: new RegExp(`^${s.prefix}\\._dlq$`),
    });
    onTestFinished(() => dlq.close());
    await s.consumer.start();
    await dlq.run({
      eachBatch: async (b) => {
        letters.push(...b.records);
      },
    });
    await waitFor(async () => (await appliedThrough(s.green, s.stream.topicOf(schema))) >= 3n, {
      what: 'all applied',
    });
    expect((await rows(s.green, s.table, 'id')).map((r) => r.id)).toEqual(['1', '3', '4']);
    await waitFor(() => letters.length >= 1, { what: 'dead letter', timeoutMs: 60_000 });
    expect(letters).toHaveLength(1);
    expect(letters[0].headers).toMatchObject({
      'teal.source.topic': s.stream.topicOf(schema),
      'teal.source.partition': '0',
      'teal.source.offset': '1',
      'teal.error.code': '23514',
    });
    expect(letters[0].headers['teal.error.message']).toMatch(/check constraint/);
    expect(letters[0].value?.subarray(0, 2)).toEqual(Buffer.from([0xc3, 0x01]));
    expect(s.consumer.status().deadLetters).toBe(1);
  });

  test('a column green lacks blocks the partition by default, with a message naming table, column and config key', async () => {
    const s = await setup((t) => `CREATE TABLE public.${t} (id int PRIMARY KEY, name text)`, {
      partitions: 1,
    });
    await s.stream.send(users(s.table), [c(100, 1, 'a')]);
    await s.consumer.start();
    const blocked = await waitFor(() => s.consumer.status().partitions.find((p) => p.blocked), {
      what: 'blocked partition',
    });
    expect(blocked.blocked!.reason).toContain(`public.${s.table}`);
    expect(blocked.blocked!.reason).toContain('"doc"');
    expect(blocked.blocked!.reason).toContain('apply.onMissingColumn');
    expect(await rows(s.green, s.table)).toEqual([]);
    // The status row in green tells a separate API process the same.
    await waitFor(
      async () => {
        const { rows: r } = await s.green.query('SELECT value FROM teal.control WHERE key = $1', [
          `consumer_blocked:${s.prefix}`,
        ]);
        return JSON.stringify(r[0]?.value ?? '').includes(s.table);
      },
      { what: 'consumer_blocked in teal.control' },
    );
    // The operator adds the column in green: the partition flows on.
    await s.green.query(`ALTER TABLE public.${s.table} ADD COLUMN doc text`);
    await waitFor(async () => (await rows(s.green, s.table)).length === 1, {
      what: 'row after fix',
      timeoutMs: 60_000,
    });
    await waitFor(() => !s.consumer.status().partitions.some((p) => p.blocked), { what: 'unblocked' });
  });

  test("onMissingColumn 'ignore' drops the column, 'add' adds it to green", async () => {
    const ignore = await setup((t) => `CREATE TABLE public.${t} (id int PRIMARY KEY, name text)`, {
      apply: { onMissingColumn: 'ignore' },
    });
    await ignore.stream.send(users(ignore.table), [c(100, 1, 'a')]);
    await ignore.consumer.start();
    await waitFor(async () => (await rows(ignore.green, ignore.table)).length === 1, {
      what: 'ignored column',
    });
    expect(await rows(ignore.green, ignore.table)).toEqual([{ id: '1', name: 'a' }]);

    const add = await setup((t) => `CREATE TABLE public.${t} (id int PRIMARY KEY, name text)`, {
      apply: { onMissingColumn: 'add' },
    });
    await add.stream.send(users(add.table), [c(100, 1, 'a')]);
    await add.consumer.start();
    await waitFor(async () => (await rows(add.green, add.table)).length === 1, { what: 'added column' });
    expect(await rows(add.green, add.table)).toEqual([{ id: '1', name: 'a', doc: 'doc1' }]);
  });

  test('a new schema version mid-stream just works; a missing table is created only with createTables', async () => {
    const s = await setup(() => '', { apply: { createTables: true, onMissingColumn: 'add' }, partitions: 1 });
    const v1 = tableSchema('public', s.table, [column('id', 'int4', true), column('name', 'text')]);
    const v2 = tableSchema('public', s.table, [
      column('id', 'int4', true),
      column('name', 'text'),
      column('age', 'int8'),
    ]);
    await s.stream.send(v1, [{ op: 'c', lsn: 100n, seq: 1, after: { id: '1', name: 'a' } }]);
    await s.consumer.start();
    await waitFor(async () => (await appliedThrough(s.green, s.stream.topicOf(v1))) >= 0n, {
      what: 'v1 applied',
    });
    await s.stream.send(v2, [
      { op: 'c', lsn: 200n, seq: 1, after: { id: '2', name: 'b', age: '9007199254740993' } },
    ]);
    await waitFor(async () => (await appliedThrough(s.green, s.stream.topicOf(v1))) >= 1n, {
      what: 'v2 applied',
    });
    expect(await rows(s.green, s.table)).toEqual([
      { id: '1', name: 'a', age: null },
      { id: '2', name: 'b', age: '9007199254740993' },
    ]);
    const { rows: types } = await s.green.query(
      `SELECT attname, format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'public.${s.table}'::regclass AND attnum > 0 ORDER BY attnum`,
    );
    expect(types).toEqual([
      { attname: 'id', t: 'integer' },
      { attname: 'name', t: 'text' },
      { attname: 'age', t: 'bigint' },
    ]);
  });

  test('a missing green table blocks with an actionable message when createTables is off', async () => {
    const s = await setup(() => '', { partitions: 1 });
    await s.stream.send(users(s.table), [c(100, 1, 'a')]);
    await s.consumer.start();
    const blocked = await waitFor(() => s.consumer.status().partitions.find((p) => p.blocked), {
      what: 'blocked',
    });
    expect(blocked.blocked!.reason).toContain(`green has no table public.${s.table}`);
    expect(blocked.blocked!.reason).toContain('apply.createTables');
    const st: ConsumerStatus = s.consumer.status();
    expect(st.partitions[0].appliedOffset).toBe('-1');
  });
});
