import { TealError } from '@teal/errors';
import { discoverTables, Producer } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { pino } from 'pino';
import { describe, expect, onTestFinished, test } from 'vitest';
import { controlConfig, controlPipeline, ownBlueDatabase, sessionOn } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, pgClient, uniqueName } from './support/env.ts';

// Issue 12: a partitioned table's initial copy arrived, then every later insert, update and
// delete was dropped: the publication lacked publish_via_partition_root, so pgoutput named
// each change after its leaf partition, and the stream reader skipped tables it did not know.
// Drain still said drained. Now the publication publishes through the root, an existing one
// is switched on start, changes logged under a leaf's name before that are mapped to the root,
// a partition attached later with rows is copied, and naming a leaf in `tables` is refused.

const partitioned = (name: string) =>
  `CREATE TABLE ${name} (id int NOT NULL, day date NOT NULL, v text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)`;

async function createPartitioned(db: pg.Client, name: string): Promise<void> {
  await db.query(partitioned(name));
  await db.query(
    `CREATE TABLE ${name}_jan PARTITION OF ${name} FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')`,
  );
  await db.query(
    `CREATE TABLE ${name}_feb PARTITION OF ${name} FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')`,
  );
  onTestFinished(async () => {
    await db.query(`DROP TABLE IF EXISTS ${name}, ${name}_mar, ${name}_apr`);
  });
}

async function rows(db: pg.Client, name: string): Promise<string[]> {
  const r = await db.query<{ r: string }>(`SELECT (id, day, v)::text AS r FROM ${name} ORDER BY id, day`);
  return r.rows.map((x) => x.r);
}

async function greenEqualsBlue(blue: pg.Client, green: pg.Client, name: string, what: string): Promise<void> {
  const expected = await rows(blue, name);
  await waitFor(async () => JSON.stringify(await rows(green, name)) === JSON.stringify(expected), {
    what,
    timeoutMs: 60_000,
  });
}

describe('partitioned tables replicate through their root', () => {
  test('leaf inserts, updates (across partitions), deletes, truncates and attached partitions reach green', async () => {
    const name = uniqueName('rg_part');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    await createPartitioned(blue, name);
    await green.query(
      `CREATE TABLE ${name} (id int NOT NULL, day date NOT NULL, v text, PRIMARY KEY (id, day))`,
    );
    onTestFinished(async () => {
      await green.query(`DROP TABLE IF EXISTS ${name}`);
    });
    await blue.query(
      `INSERT INTO ${name} SELECT g, DATE '2024-01-01' + (g % 50), 'v' || g FROM generate_series(1, 40) g`,
    );
    const config = controlConfig(name, blueUrl(), [`public.${name}`], { snapshot: { chunkRows: 7 } });
    let pipeline = await controlPipeline(config, { producerDeps: { catalogPollMs: 200 } });
    await greenEqualsBlue(blue, green, name, 'the initial snapshot of every partition in green');

    // Writes to the root and to the leaves directly.
    await blue.query(`INSERT INTO ${name} VALUES (100, '2024-01-15', 'root insert')`);
    await blue.query(`INSERT INTO ${name}_feb VALUES (101, '2024-02-15', 'leaf insert')`);
    await blue.query(`UPDATE ${name}_jan SET v = 'leaf update' WHERE id = 2`);
    await blue.query(`UPDATE ${name} SET day = '2024-02-20', v = 'moved to feb' WHERE id = 3`);
    await blue.query(`DELETE FROM ${name}_feb WHERE id = 101`);
    await blue.query(`DELETE FROM ${name} WHERE id = 4`);
    // A partition created later, and one attached with rows already in it (attaching logs no inserts).
    await blue.query(
      `CREATE TABLE ${name}_mar PARTITION OF ${name} FOR VALUES FROM ('2024-03-01') TO ('2024-04-01')`,
    );
    await blue.query(`INSERT INTO ${name} VALUES (200, '2024-03-02', 'into a new partition')`);
    await blue.query(`CREATE TABLE ${name}_apr (LIKE ${name})`);
    await blue.query(
      `INSERT INTO ${name}_apr SELECT g, DATE '2024-04-01' + (g % 20), 'attached' FROM generate_series(300, 330) g`,
    );
    await blue.query(
      `ALTER TABLE ${name} ATTACH PARTITION ${name}_apr FOR VALUES FROM ('2024-04-01') TO ('2024-05-01')`,
    );
    await blue.query(`UPDATE ${name} SET v = 'after attach' WHERE id = 301`);
    await greenEqualsBlue(blue, green, name, 'leaf changes and the attached partition in green');
    const drained = await pipeline.control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.drained).toBe(true);
    expect(await rows(green, name)).toEqual(await rows(blue, name));

    // A publication per partition (as teal made it before): the changes logged meanwhile are
    // named after the leaves; a restart switches it to the root and maps those to the root.
    await pipeline.control.close();
    await pipeline.consumer.stop();
    await pipeline.producer.stop();
    await blue.query(`ALTER PUBLICATION ${name}_pub SET (publish_via_partition_root = false)`);
    await blue.query(`INSERT INTO ${name}_jan VALUES (400, '2024-01-20', 'logged as a leaf')`);
    await blue.query(`UPDATE ${name}_feb SET v = 'updated as a leaf' WHERE id = 3`);
    await blue.query(`DELETE FROM ${name}_jan WHERE id = 5`);
    pipeline = await controlPipeline(config);
    const via = await blue.query<{ v: string }>(
      'SELECT pubviaroot::text AS v FROM pg_publication WHERE pubname = $1',
      [`${name}_pub`],
    );
    expect(via.rows[0].v).toBe('true');
    await greenEqualsBlue(blue, green, name, 'changes logged under the leaves names in green');
    expect(await rows(green, name)).toContain('(400,2024-01-20,"logged as a leaf")');
    await blue.query(`TRUNCATE ${name}`);
    await blue.query(`INSERT INTO ${name}_feb VALUES (500, '2024-02-05', 'after the truncate')`);
    const again = await pipeline.control.drain({ timeoutMs: 60_000, fence: false });
    expect(again.drained).toBe(true);
    expect(await rows(green, name)).toEqual([`(500,2024-02-05,"after the truncate")`]);
  });

  test('a leaf partition named in `tables` is refused at start, naming it and its root', async () => {
    const name = uniqueName('rg_part_leaf');
    const blue = await pgClient(blueUrl());
    await createPartitioned(blue, name);
    const producer = new Producer(controlConfig(name, blueUrl(), [`public.${name}_jan`]));
    onTestFinished(() => producer.stop());
    const err = await producer.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TealError);
    expect((err as TealError).code).toBe('TEAL_CONFIG_INVALID');
    expect((err as TealError).message).toContain(`public.${name}_jan (a partition of public.${name})`);
    const slots = await blue.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [
      `${name}_slot`,
    ]);
    expect(slots.rows).toHaveLength(0);
  });

  test("`tables: 'all'` takes partitioned roots and skips their partitions", async () => {
    const name = uniqueName('rg_part_all');
    const url = await ownBlueDatabase(blueUrl(), name);
    const db = await sessionOn(url);
    await db.query(partitioned('events'));
    await db.query(
      `CREATE TABLE events_jan PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')`,
    );
    await db.query('CREATE TABLE plain (id int PRIMARY KEY)');
    await db.query('CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY)');
    const tables = await discoverTables(db, 'all');
    expect(tables.map((t) => [t.name, t.partitioned])).toEqual([
      ['public.events', true],
      ['public.plain', false],
    ]);
  });

  test('a TRUNCATE of a partition alone (not published through the root) and a detached partition are errors in the log', async () => {
    const name = uniqueName('rg_part_trunc');
    const blue = await pgClient(blueUrl());
    await createPartitioned(blue, name);
    await blue.query(`INSERT INTO ${name} VALUES (1, '2024-01-02', 'a'), (2, '2024-02-02', 'b')`);
    const logged: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(line) });
    const producer = new Producer(controlConfig(name, blueUrl(), [`public.${name}`]), {
      catalogPollMs: 200,
      logger,
    });
    onTestFinished(async () => {
      await producer.stop();
      await blue.query('SELECT pg_drop_replication_slot($1)', [`${name}_slot`]).catch(() => {});
      await blue.query(`DROP PUBLICATION IF EXISTS ${name}_pub`);
      await blue.query(`DROP TABLE IF EXISTS ${name}_feb`);
    });
    await producer.start();
    await waitFor(() => producer.status().state === 'streaming', { what: 'streaming', timeoutMs: 60_000 });
    await blue.query(`TRUNCATE ${name}_jan`);
    await waitFor(
      () => logged.some((l) => l.includes(`partition public.${name}_jan of public.${name} was emptied`)),
      { what: 'the partition truncate in the log' },
    );
    await blue.query(`ALTER TABLE ${name} DETACH PARTITION ${name}_feb`);
    await waitFor(() => logged.some((l) => l.includes('were detached or dropped on blue')), {
      what: 'the detached partition in the log',
    });
  });
});
