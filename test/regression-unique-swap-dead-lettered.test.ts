import { resolveConfig } from '@teal/config';
import { Consumer } from '@teal/consumer';
import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { column, TestStream, tableSchema } from '../services/consumer/src/testing/harness.ts';
import { controlConfig, controlPipeline } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// Issue 12, "Secondary UNIQUE": green has a unique index besides the key. Collapsing a
// transaction's updates per key (a swap through a temporary value) and deletes-before-upserts
// produced states that collide, and partitions applied in parallel could write "insert id=2
// email x" before "delete id=1 email x". Both raised 23505, classed permanent, so correct rows
// were bisected into the dead-letter topic. Now such a table is applied in stream order, and a
// 23505 on an index that is not the statement's arbiter is retried with backoff first.

const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-unique-test' });
afterAll(() => kafka.close());

async function consumerOnly(partitions: number) {
  const prefix = uniqueName('rg_uswap_p');
  const table = uniqueName('t');
  const green = await pgClient(greenUrl());
  await green.query(`CREATE TABLE public.${table} (id int PRIMARY KEY, email text NOT NULL UNIQUE)`);
  onTestFinished(async () => {
    await green.query(`DROP TABLE IF EXISTS public.${table}`);
  });
  const stream = new TestStream(kafka, prefix, partitions);
  const consumer = new Consumer(
    resolveConfig({
      green: { url: greenUrl() },
      kafka: { brokers: kafkaBrokers(), topicPrefix: prefix, partitions },
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
  const schema = tableSchema('public', table, [column('id', 'int4', true), column('email', 'text')]);
  const emails = async () =>
    (await green.query(`SELECT id, email FROM public.${table} ORDER BY id`)).rows as {
      id: string;
      email: string;
    }[];
  return { table, green, stream, consumer, schema, emails };
}

describe('regression: unique values moving between rows', () => {
  test('a rotation through a temporary value and delete-then-reinsert of a value: 0 dead letters, green equals blue', async () => {
    const name = uniqueName('rg_uswap');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    for (const db of [blue, green])
      await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, email text NOT NULL UNIQUE, v int)`);
    onTestFinished(async () => {
      for (const db of [blue, green]) await db.query(`DROP TABLE IF EXISTS ${name}`);
    });
    // Several partitions: the producer sends an ordered table's records to partition 0 alone
    // (spread over partitions, a rotation is a cycle no retry resolves: each partition's batch
    // waits for another's). Blue's unique index makes the table ordered; the config says so too.
    const config = controlConfig(name, blueUrl(), [`public.${name}`], {
      kafka: { topicPrefix: `${name}_t`, partitions: 3 },
      ordered: { [name]: true },
    });
    const { control, consumer } = await controlPipeline(config);

    await blue.query(`INSERT INTO ${name} SELECT g, 'e' || g, 0 FROM generate_series(1, 30) g`);
    // The rows are in green before they move (in one batch with their inserts, any order fits).
    await waitFor(async () => (await green.query(`SELECT 1 FROM ${name}`)).rows.length === 30, {
      what: 'the rows in green',
      timeoutMs: 30_000,
    });
    // One blue transaction moves every email to the next row, through a temporary value: valid
    // in commit order, a collision if any two of its updates are reordered or collapsed.
    await blue.query(`DO $$
      BEGIN
        UPDATE ${name} SET email = 'tmp' WHERE id = 1;
        FOR i IN 2..30 LOOP
          UPDATE ${name} SET email = 'e' || (i - 1), v = v + 1 WHERE id = i;
        END LOOP;
        UPDATE ${name} SET email = 'e30' WHERE id = 1;
      END $$`);
    // Delete the row holding a value, then give the value to a new row (another key, so another
    // partition without ordering), in one transaction and in two.
    await blue.query(
      `BEGIN; DELETE FROM ${name} WHERE email = 'e5'; INSERT INTO ${name} VALUES (31, 'e5', 1); COMMIT`,
    );
    await blue.query(`DELETE FROM ${name} WHERE email = 'e7'`);
    await blue.query(`INSERT INTO ${name} VALUES (32, 'e7', 2)`);
    // And a swap of two rows' values in one transaction.
    await blue.query(
      `BEGIN; UPDATE ${name} SET email = 'swap' WHERE id = 10; UPDATE ${name} SET email = 'e9' WHERE id = 11; ` +
        `UPDATE ${name} SET email = 'e10' WHERE id = 10; COMMIT`,
    );

    const drained = await control.drain({ timeoutMs: 90_000, fence: false });
    expect(drained.drained).toBe(true);
    expect(drained.clean).toBe(true);
    const dump = async (db: typeof blue) => (await db.query(`SELECT * FROM ${name} ORDER BY id`)).rows;
    expect(await dump(green)).toEqual(await dump(blue));
    expect(consumer.status().deadLetters).toBe(0);
  });

  test('an insert taking a value whose delete sits in a later-applied partition is retried, not dead-lettered', async () => {
    const { stream, consumer, schema, emails } = await consumerOnly(2);
    await stream.send(schema, [{ op: 'c', lsn: 100n, seq: 1, after: { id: '1', email: 'x' }, partition: 0 }]);
    await consumer.start();
    await waitFor(async () => (await emails()).length === 1, { what: 'id 1 applied' });
    // Blue deleted id 1 (lsn 200) before inserting id 2 with its email (lsn 300); partition 1
    // carries the insert and is read first.
    await stream.send(schema, [{ op: 'c', lsn: 300n, seq: 1, after: { id: '2', email: 'x' }, partition: 1 }]);
    await waitFor(
      () => consumer.status().partitions.some((p) => p.partition === 1 && BigInt(p.highWatermark) > 0n),
      { what: 'partition 1 fetched' },
    );
    expect(await emails()).toEqual([{ id: '1', email: 'x' }]);
    await stream.send(schema, [{ op: 'd', lsn: 200n, seq: 1, key: { id: '1' }, partition: 0 }]);
    await waitFor(async () => JSON.stringify(await emails()) === JSON.stringify([{ id: '2', email: 'x' }]), {
      what: 'the insert applied after the delete',
      timeoutMs: 30_000,
    });
    expect(consumer.status().deadLetters).toBe(0);
  });

  // Coverage rather than a regression (the code before issue 12 applied this too): a swap that
  // is valid only at blue's COMMIT, applied in stream order with green's checks deferred.
  test('a direct swap under a DEFERRABLE unique constraint (blue deferred it) is applied with it deferred in green too', async () => {
    const name = uniqueName('rg_uswap_d');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    for (const db of [blue, green])
      await db.query(
        `CREATE TABLE ${name} (id int PRIMARY KEY, email text NOT NULL UNIQUE DEFERRABLE, v int)`,
      );
    onTestFinished(async () => {
      for (const db of [blue, green]) await db.query(`DROP TABLE IF EXISTS ${name}`);
    });
    const config = controlConfig(name, blueUrl(), [`public.${name}`], {
      kafka: { topicPrefix: `${name}_t`, partitions: 3 },
    });
    const { control, consumer } = await controlPipeline(config);
    await blue.query(`INSERT INTO ${name} VALUES (1, 'a', 0), (2, 'b', 0)`);
    await waitFor(async () => (await green.query(`SELECT 1 FROM ${name}`)).rows.length === 2, {
      what: 'the rows in green',
      timeoutMs: 30_000,
    });
    // No temporary value: valid only because the check waits for COMMIT. Row 1 changes twice,
    // so green's first statement ends with 'b' twice.
    await blue.query(
      `BEGIN; SET CONSTRAINTS ALL DEFERRED; UPDATE ${name} SET email = 'b' WHERE id = 1; ` +
        `UPDATE ${name} SET v = 1 WHERE id = 1; UPDATE ${name} SET email = 'a' WHERE id = 2; COMMIT`,
    );
    const drained = await control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.clean).toBe(true);
    const dump = async (db: typeof blue) => (await db.query(`SELECT * FROM ${name} ORDER BY id`)).rows;
    expect(await dump(green)).toEqual([
      { id: '1', email: 'b', v: '1' },
      { id: '2', email: 'a', v: '0' },
    ]);
    expect(consumer.status().deadLetters).toBe(0);
  });
});
