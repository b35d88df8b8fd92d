import { resolveConfig } from '@teal/config';
import { Consumer } from '@teal/consumer';
import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { column, TestStream, tableSchema } from '../services/consumer/src/testing/harness.ts';
import { controlConfig, controlPipeline } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// Issue 12, "Identity / generated": green's identity GENERATED ALWAYS columns refused every
// insert (428C9) and its stored generated columns every value sent for them, and the
// partition was blocked for good. Now inserts say OVERRIDING SYSTEM VALUE, an UPDATE never
// sets such a column, generated columns are never written (green computes its own), and a
// change green cannot take (blue changed an identity ALWAYS value) is refused with a message
// that says what to do.

const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-identity-test' });
afterAll(() => kafka.close());

describe('regression: identity and generated columns in green', () => {
  test('snapshot and stream into identity ALWAYS and generated columns: green equals blue, nothing blocked', async () => {
    const name = uniqueName('rg_ident');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    const ddl =
      'id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a int NOT NULL, ' +
      'doubled int GENERATED ALWAYS AS (a * 2) STORED, note text';
    for (const db of [blue, green]) await db.query(`CREATE TABLE ${name} (${ddl})`);
    // Green computes a column blue does not have, and one blue stores as a plain column (blue
    // sends its values; green must not write them).
    await green.query(`ALTER TABLE ${name} ADD COLUMN tripled int GENERATED ALWAYS AS (a * 3) STORED`);
    await blue.query(`ALTER TABLE ${name} ADD COLUMN note_length int`);
    await green.query(
      `ALTER TABLE ${name} ADD COLUMN note_length int GENERATED ALWAYS AS (length(note)) STORED`,
    );
    onTestFinished(async () => {
      for (const db of [blue, green]) await db.query(`DROP TABLE IF EXISTS ${name}`);
    });
    await blue.query(
      `INSERT INTO ${name} (a, note, note_length) SELECT g, 'snap', 4 FROM generate_series(1, 5) g`,
    );
    const config = controlConfig(name, blueUrl(), [`public.${name}`]);
    const { control, consumer } = await controlPipeline(config);

    await blue.query(
      `INSERT INTO ${name} (a, note, note_length) SELECT g, 'stream', 6 FROM generate_series(6, 10) g`,
    );
    await blue.query(`UPDATE ${name} SET a = a + 100, note = 'updated', note_length = 7 WHERE id IN (2, 7)`);
    await blue.query(`DELETE FROM ${name} WHERE id IN (3, 8)`);
    await blue.query(`INSERT INTO ${name} (id, a) OVERRIDING SYSTEM VALUE VALUES (1000, 1)`); // note NULL: length NULL

    const drained = await control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.drained).toBe(true);
    expect(drained.clean).toBe(true);
    const dump = async (db: typeof blue) =>
      (await db.query(`SELECT id, a, doubled, note, note_length FROM ${name} ORDER BY id`)).rows;
    expect(await dump(green)).toEqual(await dump(blue));
    const { rows: computed } = await green.query(
      `SELECT count(*)::int AS n FROM ${name} WHERE tripled = a * 3`,
    );
    expect(computed[0].n).toBe('9');
    const status = consumer.status();
    expect(status.deadLetters).toBe(0);
    expect(status.partitions.filter((p) => p.blocked)).toEqual([]);
  });

  test('a change of an identity ALWAYS value green refuses is dead-lettered with what to do; the rest flows', async () => {
    const prefix = uniqueName('rg_ident_c');
    const table = uniqueName('t');
    const green = await pgClient(greenUrl());
    await green.query(
      `CREATE TABLE public.${table} (id int PRIMARY KEY, serial int GENERATED ALWAYS AS IDENTITY, v text)`,
    );
    onTestFinished(async () => {
      await green.query(`DROP TABLE IF EXISTS public.${table}`);
    });
    const stream = new TestStream(kafka, prefix, 1);
    const consumer = new Consumer(
      resolveConfig({
        green: { url: greenUrl() },
        kafka: { brokers: kafkaBrokers(), topicPrefix: prefix, partitions: 1 },
      }),
      { groupId: `${prefix}-g` },
    );
    onTestFinished(async () => {
      await consumer.stop();
      await stream.close();
      const admin = kafka.admin();
      await admin.deleteTopics(await admin.listTopics(`${prefix}.`)).catch(() => undefined);
      await admin.close();
    });
    const schema = tableSchema('public', table, [
      column('id', 'int4', true),
      column('serial', 'int4'),
      column('v', 'text'),
    ]);
    await stream.send(schema, [
      { op: 'c', lsn: 100n, seq: 1, after: { id: '1', serial: '11', v: 'a' } },
      { op: 'c', lsn: 100n, seq: 2, after: { id: '2', serial: '12', v: 'b' } },
    ]);
    await consumer.start();
    const rows = async () =>
      (await green.query(`SELECT id, serial, v FROM public.${table} ORDER BY id`)).rows;
    await waitFor(async () => (await rows()).length === 2, { what: 'inserts applied' });
    await stream.send(schema, [
      // Same serial: the update goes through without touching it.
      { op: 'u', lsn: 200n, seq: 1, after: { id: '1', serial: '11', v: 'a2' } },
      // Blue gave row 2 a new serial: green refuses to UPDATE an identity ALWAYS column.
      { op: 'u', lsn: 300n, seq: 1, after: { id: '2', serial: '99', v: 'b2' } },
      { op: 'c', lsn: 400n, seq: 1, after: { id: '3', serial: '13', v: 'c' } },
    ]);
    await waitFor(async () => (await rows()).length === 3, {
      what: 'later insert applied',
      timeoutMs: 30_000,
    });
    expect(await rows()).toEqual([
      { id: '1', serial: '11', v: 'a2' },
      { id: '2', serial: '12', v: 'b' },
      { id: '3', serial: '13', v: 'c' },
    ]);
    expect(consumer.status().deadLetters).toBe(1);
  });
});
