import { compileTransforms, defineConfig, resolveConfig } from '@teal/config';
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { type VerifyTableReport, verifyTables } from '../services/control/src/verify.ts';
import { blueUrl, greenUrl, pgClient, uniqueName } from './support/env.ts';

// verify against real blue and green: tables written by hand on both sides (no pipeline),
// so each test controls exactly how green differs from blue seen through the transforms.

async function createBoth(
  blue: pg.Client,
  green: pg.Client,
  blueDdl: string,
  greenDdl: string,
  drops: string[],
) {
  await blue.query(blueDdl);
  await green.query(greenDdl);
  onTestFinished(async () => {
    await blue.query(`DROP TABLE IF EXISTS ${drops[0]}`);
    await green.query(`DROP TABLE IF EXISTS ${drops[1]}`);
  });
}

function setup(users: string, people: string) {
  const config = resolveConfig(
    defineConfig({
      transforms: {
        [users]: {
          renameTo: people,
          renameColumns: { name: 'full_name' },
          dropColumns: ['password_hash'],
          cast: { balance: 'numeric(12,2)' },
          derive: { email_domain: (r) => r.email?.split('@')[1]?.toLowerCase() ?? null },
          filter: (r) => !r.email?.endsWith('@test.invalid'),
        },
      },
    }),
  );
  return { config, transforms: compileTransforms(config) };
}

async function seedUsers(blue: pg.Client, green: pg.Client, users: string, people: string) {
  await createBoth(
    blue,
    green,
    `CREATE TABLE ${users} (id int PRIMARY KEY, name text, email text, password_hash text, balance numeric)`,
    `CREATE TABLE ${people} (id bigint PRIMARY KEY, full_name text, email text, email_domain text,
       balance numeric(12,2), created_in_green timestamptz DEFAULT now())`,
    [users, people],
  );
  // 25 rows: several chunks of 4, one filtered out, NULLs and empty strings apart.
  await blue.query(
    `INSERT INTO ${users}
     SELECT i, CASE WHEN i = 3 THEN '' WHEN i = 4 THEN NULL ELSE 'user ' || i END,
            CASE WHEN i = 7 THEN 'bot@test.invalid' WHEN i = 8 THEN NULL ELSE 'U' || i || '@Example.COM' END,
            md5(i::text), i * 1.5
       FROM generate_series(1, 25) i`,
  );
  await green.query(
    `INSERT INTO ${people} (id, full_name, email, email_domain, balance)
     SELECT i, CASE WHEN i = 3 THEN '' WHEN i = 4 THEN NULL ELSE 'user ' || i END,
            CASE WHEN i = 8 THEN NULL ELSE 'U' || i || '@Example.COM' END,
            CASE WHEN i = 8 THEN NULL ELSE 'example.com' END, i * 1.5
       FROM generate_series(1, 25) i WHERE i <> 7`,
  );
}

function only(report: { tables: VerifyTableReport[] }): VerifyTableReport {
  expect(report.tables).toHaveLength(1);
  return report.tables[0];
}

describe('verifyTables', () => {
  it('finds green equal to blue through rename, drop, cast, derive and filter', async () => {
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    const users = `public.${uniqueName('vusers')}`;
    const people = `public.${uniqueName('vpeople')}`;
    await seedUsers(blue, green, users, people);
    const { config, transforms } = setup(users, people);
    const progress: number[] = [];

    const report = await verifyTables({
      blueUrl: blueUrl(),
      greenUrl: greenUrl(),
      config,
      transforms,
      tables: [users],
      chunkRows: 4,
      onProgress: (p) => progress.push(p.rowsDone),
    });

    expect(report.ok).toBe(true);
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
    expect(only(report)).toEqual({
      blue: users,
      green: people,
      ok: true,
      blueRows: 25,
      filteredRows: 1,
      greenRows: 24,
      chunks: 7,
      mismatchedChunks: 0,
      columns: ['full_name', 'email', 'balance', 'email_domain'],
      skippedColumns: [],
      missingInGreen: [],
      extraInGreen: [],
      different: [],
      transformFailures: [],
      truncated: false,
    });
    expect(progress).toEqual([4, 8, 12, 16, 20, 24, 25]);
  });

  it('names the key and column of a row changed behind teal, a missing row and an extra row', async () => {
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    const users = `public.${uniqueName('vusers')}`;
    const people = `public.${uniqueName('vpeople')}`;
    await seedUsers(blue, green, users, people);
    const { config, transforms } = setup(users, people);
    await green.query(`UPDATE ${people} SET email_domain = 'example.org', balance = 0 WHERE id = 10`);
    await green.query(`UPDATE ${people} SET full_name = NULL WHERE id = 3`);
    await green.query(`DELETE FROM ${people} WHERE id = 21`);
    await green.query(
      `INSERT INTO ${people} (id, full_name) VALUES (7, 'filtered in blue'), (100, 'beyond blue')`,
    );

    const report = await verifyTables({
      blueUrl: blueUrl(),
      greenUrl: greenUrl(),
      config,
      transforms,
      tables: [users],
      chunkRows: 4,
    });

    expect(report.ok).toBe(false);
    const table = only(report);
    expect(table).toMatchObject({
      ok: false,
      blueRows: 25,
      filteredRows: 1,
      greenRows: 25,
      mismatchedChunks: 5,
    });
    expect(table.different).toEqual([
      { key: { id: '3' }, columns: ['full_name'] },
      { key: { id: '10' }, columns: ['balance', 'email_domain'] },
    ]);
    expect(table.missingInGreen).toEqual([{ id: '21' }]);
    expect(table.extraInGreen).toEqual([{ id: '7' }, { id: '100' }]);
    expect(table.truncated).toBe(false);

    const bounded = only(
      await verifyTables({
        blueUrl: blueUrl(),
        greenUrl: greenUrl(),
        config,
        transforms,
        tables: [users],
        maxKeysPerTable: 2,
      }),
    );
    expect(bounded.chunks).toBe(2); // all of blue, then green after blue's last key
    expect(bounded.missingInGreen.length + bounded.extraInGreen.length + bounded.different.length).toBe(2);
    expect(bounded.truncated).toBe(true);
  });

  it('orders text and composite keys alike on both sides', async () => {
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    const tags = `public.${uniqueName('vtags')}`;
    const ddl = `CREATE TABLE ${tags} (tenant text, code varchar(20), val int, PRIMARY KEY (tenant, code))`;
    await createBoth(blue, green, ddl, ddl, [tags, tags]);
    const rows = `SELECT t, c, ascii(t) + ascii(c) FROM unnest(ARRAY['a','B','é','Z','_']) t,
                  unnest(ARRAY['x','Y','10','9','ß']) c`;
    await blue.query(`INSERT INTO ${tags} ${rows}`);
    await green.query(`INSERT INTO ${tags} ${rows}`);
    await green.query(`UPDATE ${tags} SET val = -1 WHERE tenant = 'é' AND code = '9'`);
    const config = resolveConfig(undefined);

    const table = only(
      await verifyTables({
        blueUrl: blueUrl(),
        greenUrl: greenUrl(),
        config,
        transforms: compileTransforms(config),
        tables: [tags],
        chunkRows: 3,
      }),
    );
    expect(table).toMatchObject({ blueRows: 25, greenRows: 25, chunks: 9, mismatchedChunks: 1 });
    expect(table.different).toEqual([{ key: { tenant: 'é', code: '9' }, columns: ['val'] }]);
    expect(table.missingInGreen).toEqual([]);
    expect(table.extraInGreen).toEqual([]);
  });

  it('names every green row as extra when blue is empty, reading green in pages', async () => {
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    const items = `public.${uniqueName('vitems')}`;
    const ddl = `CREATE TABLE ${items} (id int PRIMARY KEY)`;
    await createBoth(blue, green, ddl, ddl, [items, items]);
    await green.query(`INSERT INTO ${items} SELECT generate_series(1, 5)`);
    const config = resolveConfig(undefined);

    const table = only(
      await verifyTables({
        blueUrl: blueUrl(),
        greenUrl: greenUrl(),
        config,
        transforms: compileTransforms(config),
        tables: [items],
        chunkRows: 2,
      }),
    );
    expect(table).toMatchObject({ ok: false, blueRows: 0, greenRows: 5, chunks: 3, mismatchedChunks: 3 });
    expect(table.extraInGreen).toEqual(['1', '2', '3', '4', '5'].map((id) => ({ id })));
  });

  it('reports a table it cannot compare, and transform failures, without stopping', async () => {
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    const nokey = `public.${uniqueName('vnokey')}`;
    const failing = `public.${uniqueName('vfail')}`;
    await createBoth(blue, green, `CREATE TABLE ${nokey} (a int)`, `CREATE TABLE ${nokey} (a int)`, [
      nokey,
      nokey,
    ]);
    const ddl = `CREATE TABLE ${failing} (id int PRIMARY KEY, email text)`;
    await createBoth(blue, green, ddl, ddl, [failing, failing]);
    await blue.query(`INSERT INTO ${failing} VALUES (1, 'a@b'), (2, 'broken')`);
    await green.query(`INSERT INTO ${failing} VALUES (1, 'a@b')`);
    const config = resolveConfig(
      defineConfig({
        transforms: {
          [failing]: {
            derive: {
              email: (r) => {
                if (!r.email?.includes('@')) throw new Error('not an address');
                return r.email;
              },
            },
          },
        },
      }),
    );

    const report = await verifyTables({
      blueUrl: blueUrl(),
      greenUrl: greenUrl(),
      config,
      transforms: compileTransforms(config),
      tables: [nokey, failing],
    });
    expect(report.ok).toBe(false);
    expect(report.tables[0].error).toBe(
      `${nokey} has no primary key: add keyColumns["${nokey}"] to teal.config.ts`,
    );
    expect(report.tables[1]).toMatchObject({ blueRows: 2, greenRows: 1, mismatchedChunks: 0, ok: false });
    expect(report.tables[1].transformFailures).toEqual([
      { key: { id: '2' }, error: `transform derive "email" of table ${failing} threw: not an address` },
    ]);
  });
});
