import { describe, expect, onTestFinished, test } from 'vitest';
import { controlConfig, controlPipeline } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, pgClient, uniqueName } from './support/env.ts';

// Issue 12, "NULLs in key columns" (green's half): `DELETE ... WHERE (key) IN (...)` and
// `ON CONFLICT (key)` never match NULL, so deleting or updating a row whose key holds NULL
// left it in green (and an update added a second row); a table without a unique key in green
// (REPLICA IDENTITY FULL, no primary key) could not be upserted at all. Now a NULL key column
// is matched with IS NULL, such rows are upserted as UPDATE + INSERT of the rest, and a
// keyless table gets plain inserts and one-row deletes in stream order (equal rows included).

describe('regression: NULL in key columns', () => {
  test('REPLICA IDENTITY FULL without a primary key, and nullable keyColumns: green equals blue', async () => {
    const name = uniqueName('rg_nullkey');
    const full = `${name}_f`;
    const keyed = `${name}_k`;
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    await blue.query(`CREATE TABLE ${full} (a int, b text)`);
    await blue.query(`ALTER TABLE ${full} REPLICA IDENTITY FULL`);
    await green.query(`CREATE TABLE ${full} (a int, b text)`);
    await blue.query(`CREATE TABLE ${keyed} (a int NOT NULL, b text, v int)`);
    await blue.query(`ALTER TABLE ${keyed} REPLICA IDENTITY FULL`);
    // Green holds a unique index on the key; NULLs are distinct in it, as in any unique index.
    await green.query(`CREATE TABLE ${keyed} (a int NOT NULL, b text, v int, UNIQUE (a, b))`);
    onTestFinished(async () => {
      for (const db of [blue, green]) await db.query(`DROP TABLE IF EXISTS ${full}, ${keyed}`);
    });
    const config = controlConfig(name, blueUrl(), [`public.${full}`, `public.${keyed}`], {
      keyColumns: { [`public.${keyed}`]: ['a', 'b'] },
    });
    const { control, consumer } = await controlPipeline(config);

    await blue.query(
      `INSERT INTO ${full} VALUES (1, NULL), (NULL, 'x'), (NULL, NULL), (2, 'y'), (2, 'y'), (5, 'd'), (5, 'd')`,
    );
    await blue.query(`UPDATE ${full} SET b = 'z' WHERE a = 1`); // key (1, NULL) -> (1, 'z')
    await blue.query(`UPDATE ${full} SET a = 3 WHERE b = 'x'`); // key (NULL, 'x') -> (3, 'x')
    await blue.query(`DELETE FROM ${full} WHERE a IS NULL AND b IS NULL`);
    await blue.query(`DELETE FROM ${full} WHERE a = 2`); // both equal rows
    await blue.query(`DELETE FROM ${full} WHERE ctid = (SELECT ctid FROM ${full} WHERE a = 5 LIMIT 1)`); // one of two
    await blue.query(`INSERT INTO ${full} VALUES (NULL, NULL)`);

    await blue.query(`INSERT INTO ${keyed} VALUES (1, NULL, 0), (1, 'x', 0), (2, NULL, 0), (3, NULL, 0)`);
    await blue.query(`UPDATE ${keyed} SET v = v + 1 WHERE b IS NULL`);
    await blue.query(`UPDATE ${keyed} SET v = 10 WHERE a = 2`);
    await blue.query(`DELETE FROM ${keyed} WHERE a = 3`);
    await blue.query(`UPDATE ${keyed} SET b = 'y' WHERE a = 1 AND b IS NULL`); // key change out of NULL
    await blue.query(`UPDATE ${keyed} SET b = NULL WHERE a = 1 AND b = 'x'`); // and into NULL

    const drained = await control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.drained).toBe(true);
    expect(drained.clean).toBe(true);
    const dump = async (db: typeof blue, t: string) =>
      (await db.query(`SELECT * FROM ${t} ORDER BY a NULLS FIRST, b NULLS FIRST`)).rows;
    expect(await dump(green, full)).toEqual(await dump(blue, full));
    expect(await dump(green, keyed)).toEqual(await dump(blue, keyed));
    expect((await dump(green, full)).length).toBe(4);
    expect(consumer.status().deadLetters).toBe(0);
    expect(consumer.status().partitions.filter((p) => p.blocked)).toEqual([]);
  });

  test('equal rows of a keyless table present at the snapshot arrive as many times as blue has them', async () => {
    const name = uniqueName('rg_nullkey_s');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    await blue.query(`CREATE TABLE ${name} (a int, b text)`);
    await blue.query(`ALTER TABLE ${name} REPLICA IDENTITY FULL`);
    await green.query(`CREATE TABLE ${name} (a int, b text)`);
    onTestFinished(async () => {
      for (const db of [blue, green]) await db.query(`DROP TABLE IF EXISTS ${name}`);
    });
    await blue.query(
      `INSERT INTO ${name} VALUES (5, 'd'), (5, 'd'), (NULL, NULL), (NULL, NULL), (NULL, NULL), (1, NULL)`,
    );
    const config = controlConfig(name, blueUrl(), [`public.${name}`]);
    const { control, consumer } = await controlPipeline(config);
    await blue.query(`INSERT INTO ${name} VALUES (5, 'd')`);
    const drained = await control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.clean).toBe(true);
    const dump = async (db: typeof blue) =>
      (await db.query(`SELECT * FROM ${name} ORDER BY a NULLS FIRST, b NULLS FIRST`)).rows;
    expect(await dump(green)).toEqual(await dump(blue));
    expect((await dump(green)).length).toBe(7);
    expect(consumer.status().deadLetters).toBe(0);
  });
});
