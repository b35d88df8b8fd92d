import type { Row } from '@teal/change-event';
import { resolveConfig } from '@teal/config';
import { Consumer } from '@teal/consumer';
import { greenCopyTarget } from '@teal/consumer/direct-copy';
import { KafkaClient } from '@teal/kafka';
import { readSnapshotProgress } from '@teal/postgres';
import { Producer } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// snapshot.via 'direct': the initial copy goes from blue to green by COPY, in ranges, with no
// snapshot record in the topics; the stream from the consistent point then applies on top.
// Three shapes: a keyed table piped as bytes (values full of COPY's escapes), a table without
// a key (ctid ranges, repeated rows), and a table with transforms (rename, drop, derive,
// filter) into green's generated and identity ALWAYS columns.

const dump = async (db: pg.Client, sql: string) => (await db.query(sql)).rows.map((r) => JSON.stringify(r));

/** Producer (with the consumer's green writer) and consumer for `tables`, all named `name`; cleaned up at the end. */
function directPipeline(
  name: string,
  tables: string[],
  db: { blue: pg.Client; green: pg.Client },
  settings: Record<string, unknown>,
  deps: ConstructorParameters<typeof Producer>[1] = {},
) {
  const config = resolveConfig(
    { tables, slot: name, publication: name, kafka: { topicPrefix: name, partitions: 2 }, ...settings },
    {
      env: {
        TEAL_BLUE_URL: blueUrl(),
        TEAL_GREEN_URL: greenUrl(),
        TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
      },
    },
  );
  const producer = new Producer(config, {
    directCopy: (cfg) => greenCopyTarget(cfg, { sessions: cfg.snapshot.parallel }),
    ...deps,
  });
  const consumer = new Consumer(config, { groupId: `${name}-group` });
  const kafka = new KafkaClient({ brokers: kafkaBrokers() });
  onTestFinished(async () => {
    await consumer.stop();
    await producer.stop();
    await db.blue.query(
      'SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1',
      [name],
    );
    await db.blue.query(`DROP PUBLICATION IF EXISTS ${name}`);
    const admin = kafka.admin();
    await admin.deleteTopics(await admin.listTopics(`${name}.`));
    await kafka.close();
    for (const t of tables) {
      await db.blue.query(`DROP TABLE IF EXISTS ${t}`);
      await db.green.query(`DROP TABLE IF EXISTS ${t}`);
    }
    await db.blue.end();
    await db.green.end();
  });
  return { producer, consumer, kafka };
}

describe('direct initial copy', () => {
  test('copies keyed, keyless and transformed tables straight to green, then streams on top', async () => {
    const name = uniqueName('direct_copy');
    const [a, b, c] = [`${name}_a`, `${name}_b`, `${name}_c`];
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    await blue.query(
      `CREATE TABLE ${a} (id int PRIMARY KEY, v text, j jsonb, n numeric, t timestamptz, x bytea)`,
    );
    await blue.query(
      `INSERT INTO ${a} SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE E'tab\\there\\nnl\\\\back ' || g || ' é' END,
              CASE WHEN g % 5 = 0 THEN '{"big": 123456789012345678901234567890}'::jsonb END, g / 3.0,
              '2026-01-01 00:00:00.123456+00'::timestamptz + g * interval '1 second', decode(md5(g::text), 'hex')
         FROM generate_series(1, 5000) g`,
    );
    await blue.query(`CREATE TABLE ${b} (x int, y text)`);
    await blue.query(`ALTER TABLE ${b} REPLICA IDENTITY FULL`);
    await blue.query(`INSERT INTO ${b} SELECT g % 50, 'r' || (g % 50) FROM generate_series(1, 3000) g`);
    await blue.query(`CREATE TABLE ${c} (id int PRIMARY KEY, name text, email text, secret text)`);
    await blue.query(
      `INSERT INTO ${c} SELECT g, 'n' || g, 'u' || g || '@Dom' || (g % 3) || '.test', 's' FROM generate_series(1, 2000) g`,
    );
    await green.query(
      `CREATE TABLE ${a} (id int PRIMARY KEY, v text, j jsonb, n numeric, t timestamptz, x bytea)`,
    );
    await green.query(`CREATE TABLE ${b} (x int, y text)`);
    await green.query(
      `CREATE TABLE ${c} (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, full_name text, email text, domain text,
                          twice int GENERATED ALWAYS AS (id * 2) STORED)`,
    );
    const { producer, consumer, kafka } = directPipeline(
      name,
      [a, b, c],
      { blue, green },
      {
        heartbeatMs: 500,
        snapshot: { via: 'direct', parallel: 2, rangeRows: 700 },
        transforms: {
          [`public.${c}`]: {
            renameColumns: { name: 'full_name' },
            dropColumns: ['secret'],
            derive: { domain: (row: Readonly<Row>) => row.email?.split('@')[1]?.toLowerCase() ?? null },
            filter: (row: Readonly<Row>) => Number(row.id) % 10 !== 0,
          },
        },
      },
    );
    await producer.start();
    await consumer.start();
    await waitFor(() => producer.status().state === 'streaming', { what: 'streaming', timeoutMs: 120_000 });

    const progress = await readSnapshotProgress(green);
    for (const t of [a, b, c]) expect(progress.get(`public.${t}`)?.state).toBe('done');
    expect(progress.get(`public.${a}`)?.rowsDone).toBe(5000);
    expect(progress.get(`public.${c}`)?.rowsDone).toBe(1800);
    // No snapshot record went through Kafka: the topics are empty until blue changes.
    const admin = kafka.admin();
    for (const t of [a, b, c]) {
      const ends = await admin.logEndOffsets(`${name}.public.${t}`);
      expect(ends.reduce((s, p) => s + p.end, 0n)).toBe(0n);
    }
    const aCols = 'id, v, j::text, n::text, t::text, x::text';
    expect(await dump(green, `SELECT ${aCols} FROM ${a} ORDER BY id`)).toEqual(
      await dump(blue, `SELECT ${aCols} FROM ${a} ORDER BY id`),
    );
    expect(
      await dump(green, `SELECT x, y, count(*)::int AS n FROM ${b} GROUP BY 1, 2 ORDER BY 1, 2`),
    ).toEqual(await dump(blue, `SELECT x, y, count(*)::int AS n FROM ${b} GROUP BY 1, 2 ORDER BY 1, 2`));
    const expectedC = `SELECT id, name AS full_name, email, lower(split_part(email, '@', 2)) AS domain, id * 2 AS twice
                         FROM ${c} WHERE id % 10 <> 0 ORDER BY id`;
    const greenC = `SELECT id, full_name, email, domain, twice FROM ${c} ORDER BY id`;
    expect(await dump(green, greenC)).toEqual(await dump(blue, expectedC));

    // The stream from the consistent point applies on top of the copied rows.
    await blue.query(`UPDATE ${a} SET v = 'changed' WHERE id <= 10`);
    await blue.query(`DELETE FROM ${a} WHERE id > 4990`);
    await blue.query(`INSERT INTO ${b} VALUES (999, 'new')`);
    await blue.query(`UPDATE ${c} SET email = 'z@New.test' WHERE id = 1`);
    await blue.query(`INSERT INTO ${c} VALUES (5001, 'late', 'l@late.test', 's')`);
    await waitFor(
      async () =>
        Number(
          (await green.query(`SELECT count(*) AS n FROM ${c} WHERE id = 5001 OR domain = 'new.test'`)).rows[0]
            .n,
        ) === 2 && Number((await green.query(`SELECT count(*) AS n FROM ${a}`)).rows[0].n) === 4990,
      { what: 'stream changes in green', timeoutMs: 60_000 },
    );
    await waitFor(
      async () =>
        JSON.stringify(
          await dump(green, `SELECT x, y, count(*)::int AS n FROM ${b} GROUP BY 1, 2 ORDER BY 1, 2`),
        ) ===
        JSON.stringify(
          await dump(blue, `SELECT x, y, count(*)::int AS n FROM ${b} GROUP BY 1, 2 ORDER BY 1, 2`),
        ),
      { what: 'keyless table equal', timeoutMs: 60_000 },
    );
    expect(await dump(green, `SELECT ${aCols} FROM ${a} ORDER BY id`)).toEqual(
      await dump(blue, `SELECT ${aCols} FROM ${a} ORDER BY id`),
    );
    expect(await dump(green, greenC)).toEqual(await dump(blue, expectedC));
  }, 240_000);

  test('the stream runs into Kafka during the copy and waits there until the table is in green', async () => {
    const name = uniqueName('direct_held');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    await blue.query(`INSERT INTO ${name} SELECT g, 'v' || g FROM generate_series(1, 3000) g`);
    await green.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let ranges = 0;
    const { producer, consumer, kafka } = directPipeline(
      name,
      [name],
      { blue, green },
      { heartbeatMs: 300, snapshot: { via: 'direct', parallel: 2, rangeRows: 500 } },
      {
        // The copy stops after its first range until the test lets it go on.
        afterDirectRange: async () => {
          if (++ranges === 1) await held;
        },
      },
    );
    onTestFinished(() => release());
    await producer.start();
    await consumer.start();
    await waitFor(() => ranges >= 1, { what: 'the first range copied', timeoutMs: 60_000 });
    // Changes of rows copied already, of rows not copied yet, and new ones, while the copy is held.
    await blue.query(`UPDATE ${name} SET v = 'u' WHERE id IN (1, 2999)`);
    await blue.query(`DELETE FROM ${name} WHERE id IN (3, 2998)`);
    await blue.query(`INSERT INTO ${name} VALUES (5000, 'new')`);
    const lsn = (await blue.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l;
    // The slot moves past them (they are in Kafka) although the copy is not done...
    await waitFor(
      async () =>
        (
          await blue.query(
            "SELECT (confirmed_flush_lsn >= $2::pg_lsn)::text = 'true' AS ok FROM pg_replication_slots WHERE slot_name = $1",
            [name, lsn],
          )
        ).rows[0]?.ok === 't',
      { what: 'slot confirmed past the changes during the copy', timeoutMs: 60_000 },
    );
    const ends = await kafka.admin().logEndOffsets(`${name}.public.${name}`);
    expect(ends.reduce((n, p) => n + p.end, 0n)).toBe(5n);
    expect(producer.status().state).toBe('snapshotting');
    // ...and green has none of them: the consumer holds the table back.
    expect((await readSnapshotProgress(green)).get(`public.${name}`)?.direct).toBe(true);
    expect((await green.query(`SELECT v FROM ${name} WHERE id IN (1, 5000) ORDER BY id`)).rows).toEqual([
      { v: 'v1' },
    ]);
    release();
    const rows = `SELECT id, v FROM ${name} ORDER BY id`;
    const expected = JSON.stringify((await blue.query(rows)).rows);
    await waitFor(async () => JSON.stringify((await green.query(rows)).rows) === expected, {
      what: 'green equals blue after the copy and the held changes',
      timeoutMs: 60_000,
    });
    expect((await readSnapshotProgress(green)).get(`public.${name}`)).toMatchObject({
      state: 'done',
      direct: false,
    });
    await waitFor(() => producer.status().state === 'streaming', { what: 'streaming', timeoutMs: 30_000 });
  }, 180_000);
});
