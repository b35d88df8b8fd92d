import { describe, expect, onTestFinished, test } from 'vitest';
import { controlConfig, controlPipeline } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, pgClient, uniqueName } from './support/env.ts';

// Issue 12, "TRUNCATE parent, child": blue truncated an FK pair together (and with CASCADE);
// each table's topic truncated its own table alone, green refused the parent's with 0A000
// ("cannot truncate a table referenced in a foreign key constraint"), the partition blocked
// and drain never finished. A table another green table references is now emptied with
// DELETE under session_replication_role = replica, at its own position in its own topic.

describe('regression: TRUNCATE of an FK pair', () => {
  test('TRUNCATE parent, child and TRUNCATE parent CASCADE reach green; drain finishes; green equals blue', async () => {
    const name = uniqueName('rg_trfk');
    const parent = `${name}_p`;
    const child = `${name}_c`;
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    for (const db of [blue, green]) {
      await db.query(`CREATE TABLE ${parent} (id int PRIMARY KEY, v text)`);
      await db.query(
        `CREATE TABLE ${child} (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES ${parent}, v text)`,
      );
    }
    onTestFinished(async () => {
      for (const db of [blue, green]) await db.query(`DROP TABLE IF EXISTS ${child}, ${parent}`);
    });
    const config = controlConfig(name, blueUrl(), [`public.${parent}`, `public.${child}`]);
    const { control, consumer } = await controlPipeline(config);

    const fill = async (from: number) => {
      await blue.query(
        `INSERT INTO ${parent} SELECT g, 'p' || g FROM generate_series($1::int, $1::int + 9) g`,
        [from],
      );
      await blue.query(
        `INSERT INTO ${child} SELECT g, g, 'c' || g FROM generate_series($1::int, $1::int + 9) g`,
        [from],
      );
    };
    await fill(1);
    await blue.query(`TRUNCATE ${parent}, ${child}`);
    await fill(101);
    await blue.query(`TRUNCATE ${parent} CASCADE`);
    await fill(201);
    await blue.query(`UPDATE ${child} SET v = 'changed' WHERE id = 205`);

    const drained = await control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.drained).toBe(true);
    expect(drained.clean).toBe(true);
    const dump = async (db: typeof blue, t: string) =>
      (await db.query(`SELECT * FROM ${t} ORDER BY id`)).rows;
    for (const t of [parent, child]) expect(await dump(green, t)).toEqual(await dump(blue, t));
    expect((await dump(green, child)).map((r) => r.id)).toEqual(
      Array.from({ length: 10 }, (_, i) => String(201 + i)),
    );
    const status = consumer.status();
    expect(status.deadLetters).toBe(0);
    expect(status.partitions.filter((p) => p.blocked)).toEqual([]);
  });
});
