import { KafkaClient } from '@teal/kafka';
import { decodeAll, TopicReader } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { controlConfig, controlPipeline } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// Issue 12: nobody had tested ALTER TABLE ... ALTER COLUMN ... TYPE on blue while streaming.
// It found that every change of a table's shape moved its keys to other Kafka partitions: the
// partition was murmur2 of the key's single-object encoding, whose fingerprint names the
// table version, so a row's changes before and after an ALTER sat in two partitions applied
// in parallel (an older image could win). Now the partition hashes the key's Avro body only.
// With green altered the same way every value arrives (the consumer reads green's shape again
// when a table's first record of a new version comes, no restart); with green left as it was, the values green cannot
// take are dead-lettered with the reason and drain says clean: false (loud).

async function rows(db: pg.Client, table: string): Promise<string[]> {
  const r = await db.query<{ r: string }>(`SELECT (t.*)::text AS r FROM ${table} t ORDER BY 1`);
  return r.rows.map((x) => x.r);
}

async function tableOnBoth(blue: pg.Client, green: pg.Client, name: string): Promise<void> {
  for (const db of [blue, green]) {
    await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, n int, c int)`);
    onTestFinished(async () => {
      await db.query(`DROP TABLE IF EXISTS ${name}`);
    });
  }
  await blue.query(`INSERT INTO ${name} SELECT g, g, g FROM generate_series(1, 30) g`);
}

describe('a column type changed on blue while streaming', () => {
  test('int -> bigint and int -> text, green altered too: every value arrives, each key stays in its partition', async () => {
    const name = uniqueName('rg_retype');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    await tableOnBoth(blue, green, name);
    const config = controlConfig(name, blueUrl(), [`public.${name}`], {
      kafka: { topicPrefix: `${name}_t`, partitions: 4 },
    });
    const { control } = await controlPipeline(config);
    await blue.query(`UPDATE ${name} SET n = n + 100`);
    await control.drain({ timeoutMs: 60_000, fence: false });

    // Green first (it must take the wider values before they come), then blue.
    await green.query(`ALTER TABLE ${name} ALTER COLUMN n TYPE bigint`);
    await green.query(`ALTER TABLE ${name} ALTER COLUMN c TYPE text`);
    await blue.query(`ALTER TABLE ${name} ALTER COLUMN n TYPE bigint`);
    await blue.query(`UPDATE ${name} SET n = n + 5000000000`);
    await blue.query(`ALTER TABLE ${name} ALTER COLUMN c TYPE text`);
    await blue.query(`UPDATE ${name} SET c = 'text ' || c WHERE id % 2 = 0`);
    await blue.query(`INSERT INTO ${name} VALUES (31, 9000000000, 'new row')`);
    const drained = await control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.drained).toBe(true);
    expect(drained.clean).toBe(true);
    expect(await rows(green, name)).toEqual(await rows(blue, name));

    // Contract item 2: all events of one key in one partition, across the table's versions.
    const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: `${name}-read` });
    onTestFinished(() => kafka.close());
    const topic = `${config.kafka.topicPrefix}.public.${name}`;
    const reader = new TopicReader(kafka, [topic]);
    await reader.start();
    onTestFinished(() => reader.stop());
    const total = drained.partitions.reduce((sum, p) => sum + p.end, 0);
    await waitFor(() => reader.records.length >= total, { what: 'every record of the topic read' });
    const decoded = await decodeAll(kafka, config.kafka.topicPrefix, reader.records);
    const partitionsOfKey = new Map<string, Set<number>>();
    for (const { record, event } of decoded) {
      const id = event.key.id ?? '';
      partitionsOfKey.set(id, (partitionsOfKey.get(id) ?? new Set()).add(record.partition));
    }
    expect(partitionsOfKey.size).toBe(31);
    const spread = [...partitionsOfKey].filter(([, ps]) => ps.size > 1).map(([id]) => id);
    expect(spread, 'keys whose records are in more than one partition').toEqual([]);
    const types = new Set(
      decoded.map((d) => (d.event.after && d.event.op !== 'r' ? d.event.after.n : undefined)),
    );
    expect(types.has('5000000101')).toBe(true);
  });

  test('green left as it was: what it cannot take is dead-lettered with the reason, drain says clean: false', async () => {
    const name = uniqueName('rg_retype_green');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    await tableOnBoth(blue, green, name);
    const { control } = await controlPipeline(controlConfig(name, blueUrl(), [`public.${name}`]));
    await control.drain({ timeoutMs: 60_000, fence: false });
    await blue.query(`ALTER TABLE ${name} ALTER COLUMN n TYPE bigint`);
    await blue.query(`UPDATE ${name} SET n = 6 WHERE id = 6`);
    await blue.query(`UPDATE ${name} SET n = 5000000000 WHERE id = 7`);
    await blue.query(`ALTER TABLE ${name} ALTER COLUMN c TYPE text`);
    await blue.query(`UPDATE ${name} SET c = '8' WHERE id = 8`);
    await blue.query(`UPDATE ${name} SET c = 'nine' WHERE id = 9`);
    const drained = await control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.drained).toBe(true);
    expect(drained.clean).toBe(false);
    expect(drained.deadLetters.tables).toEqual([{ table: `public.${name}`, count: 2 }]);
    const greenRows = await rows(green, name);
    expect(greenRows).toContain('(6,6,6)');
    expect(greenRows).toContain('(8,8,8)');
    // The rows green refused keep their old values there, as the dead letters say.
    expect(greenRows).toContain('(7,7,7)');
    expect(greenRows).toContain('(9,9,9)');
  });

  test('the key retyped: widened to bigint it flows; to text (other partitions) the producer stops, a restart after the fix loses nothing', async () => {
    const name = uniqueName('rg_retype_key');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    await tableOnBoth(blue, green, name);
    const config = controlConfig(name, blueUrl(), [`public.${name}`], {
      kafka: { topicPrefix: `${name}_t`, partitions: 4 },
    });
    const first = await controlPipeline(config);
    await first.control.drain({ timeoutMs: 60_000, fence: false });
    await green.query(`ALTER TABLE ${name} ALTER COLUMN id TYPE bigint`);
    await blue.query(`ALTER TABLE ${name} ALTER COLUMN id TYPE bigint`);
    await blue.query(`UPDATE ${name} SET n = -n WHERE id <= 10`);
    await blue.query(`INSERT INTO ${name} VALUES (9000000000, 1, 1)`);
    const widened = await first.control.drain({ timeoutMs: 60_000, fence: false });
    expect(widened.clean).toBe(true);
    expect(first.producer.status().state).toBe('streaming');

    await blue.query(`ALTER TABLE ${name} ALTER COLUMN id TYPE text`);
    await blue.query(`UPDATE ${name} SET n = 0 WHERE id = '1'`);
    await blue.query(`INSERT INTO ${name} VALUES ('k-1', 2, 2)`);
    await waitFor(() => first.producer.status().state === 'failed', { what: 'the producer stopped' });
    expect(first.producer.status().error?.code).toBe('TEAL_TABLE_KEY_CHANGED');
    expect(first.producer.status().error?.message).toContain(`the key of public.${name} changed`);
    expect(first.producer.status().error?.message).toContain('(id int8) -> (id text)');

    // The fix the message names: green's key matches, what Kafka holds is applied, teal restarts.
    await green.query(`ALTER TABLE ${name} ALTER COLUMN id TYPE text`);
    await waitFor(async () => (await rows(green, name)).includes('(9000000000,1,1)'), {
      what: 'the changes before the key change applied',
    });
    await first.control.close();
    await first.consumer.stop();
    await first.producer.stop();
    const second = await controlPipeline(config);
    await blue.query(`UPDATE ${name} SET c = '3' WHERE id = 'k-1'`);
    const drained = await second.control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.drained).toBe(true);
    expect(drained.clean).toBe(true);
    expect(await rows(green, name)).toEqual(await rows(blue, name));
  });
});
