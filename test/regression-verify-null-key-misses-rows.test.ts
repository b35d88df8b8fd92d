import { compileTransforms, defineConfig, resolveConfig } from '@teal/config';
import type pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { type VerifyTableReport, verifyTables } from '../services/control/src/verify.ts';
import { blueUrl, greenUrl, pgClient, uniqueName } from './support/env.ts';

// Regression (issue 12, NULLs in key columns): verify paged keys with a row comparison
// `(x, y) > ($1, $2)`, which is NULL as soon as a key column is: rows whose key starts with
// NULL (they sort last) were after nothing and never read on either side, so verify reported
// OK while green missed them; a chunk ending on a key with a NULL skipped rows on both sides. And a REPLICA IDENTITY FULL table without a primary key, keyed by every
// column as the producer keys it, could not be verified.

async function createBoth(blue: pg.Client, green: pg.Client, ddl: string, table: string) {
  await blue.query(ddl);
  await green.query(ddl);
  onTestFinished(async () => {
    await blue.query(`DROP TABLE IF EXISTS ${table}`);
    await green.query(`DROP TABLE IF EXISTS ${table}`);
  });
}

async function verifyOne(table: string, keyColumns?: string[]): Promise<VerifyTableReport> {
  const config = resolveConfig(defineConfig(keyColumns ? { keyColumns: { [table]: keyColumns } } : {}));
  const report = await verifyTables({
    blueUrl: blueUrl(),
    greenUrl: greenUrl(),
    config,
    transforms: compileTransforms(config),
    tables: [table],
    chunkRows: 4,
  });
  expect(report.tables).toHaveLength(1);
  return report.tables[0];
}

const byKey = (keys: Record<string, string | null>[]) =>
  keys.map((k) => JSON.stringify(k)).sort((a, b) => (a < b ? -1 : 1));

describe('regression: verify over NULL key columns', () => {
  test('a missing and a changed row whose key starts with NULL: reported, not OK', async () => {
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    const table = `public.${uniqueName('vnull_first')}`;
    await createBoth(
      blue,
      green,
      `CREATE TABLE ${table} (x text, y int NOT NULL, v text); CREATE UNIQUE INDEX ON ${table} (x, y)`,
      table,
    );
    const rows = `SELECT x, y, 'v' FROM unnest(ARRAY['a', 'b', 'c', 'd', NULL]::text[]) x, generate_series(1, 2) y`;
    await blue.query(`INSERT INTO ${table} ${rows}`);
    await green.query(`INSERT INTO ${table} ${rows}`);
    await green.query(`DELETE FROM ${table} WHERE x IS NULL AND y = 1`);
    await green.query(`UPDATE ${table} SET v = 'changed' WHERE x IS NULL AND y = 2`);

    // Before: the chunk after ('d', 2) matched no NULL row on either side, and this was OK.
    const report = await verifyOne(table, ['x', 'y']);
    expect(report).toMatchObject({ ok: false, blueRows: 10, greenRows: 9 });
    expect(report.missingInGreen).toEqual([{ x: null, y: '1' }]);
    expect(report.different).toEqual([{ key: { x: null, y: '2' }, columns: ['v'] }]);
    expect(report.extraInGreen).toEqual([]);
  });

  test('nullable keyColumns: a missing, an extra and a changed row beyond a NULL chunk boundary are all named', async () => {
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    const table = `public.${uniqueName('vnull_cols')}`;
    await createBoth(
      blue,
      green,
      `CREATE TABLE ${table} (x text, y int, v text); CREATE UNIQUE INDEX ON ${table} (x, y)`,
      table,
    );
    // NULL in every position, '' apart from NULL; 4-row chunks end on keys with a NULL.
    const rows = `SELECT x, y, 'v' || coalesce(x, '-') || coalesce(y::text, '-')
                    FROM unnest(ARRAY['', 'a', 'b', 'c', NULL]::text[]) x, unnest(ARRAY[1, 2, NULL]::int[]) y`;
    await blue.query(`INSERT INTO ${table} ${rows}`);
    await green.query(`INSERT INTO ${table} ${rows}`);

    expect(await verifyOne(table, ['x', 'y'])).toMatchObject({ ok: true, blueRows: 15, greenRows: 15 });

    await green.query(`DELETE FROM ${table} WHERE x = 'c' AND y IS NULL`);
    await green.query(`DELETE FROM ${table} WHERE x IS NULL AND y = 2`);
    await green.query(`UPDATE ${table} SET v = 'changed' WHERE x = 'b' AND y = 2`);
    await green.query(`UPDATE ${table} SET v = 'changed' WHERE x IS NULL AND y IS NULL`);
    await green.query(`INSERT INTO ${table} VALUES ('d', NULL, 'extra'), (NULL, 3, 'extra')`);

    const report = await verifyOne(table, ['x', 'y']);
    expect(report.ok).toBe(false);
    expect(report).toMatchObject({ blueRows: 15, greenRows: 15 });
    expect(byKey(report.missingInGreen)).toEqual(
      byKey([
        { x: 'c', y: null },
        { x: null, y: '2' },
      ]),
    );
    expect(byKey(report.extraInGreen)).toEqual(
      byKey([
        { x: 'd', y: null },
        { x: null, y: '3' },
      ]),
    );
    expect(report.different).toEqual([
      { key: { x: 'b', y: '2' }, columns: ['v'] },
      { key: { x: null, y: null }, columns: ['v'] },
    ]);
  });

  test('REPLICA IDENTITY FULL without a primary key: keyed by every column, repeated rows counted', async () => {
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    const table = `public.${uniqueName('vnull_full')}`;
    await createBoth(blue, green, `CREATE TABLE ${table} (a int, b text)`, table);
    await blue.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
    const rows = `SELECT a, b FROM unnest(ARRAY[1, 2, NULL]::int[]) a, unnest(ARRAY['x', NULL]::text[]) b,
                  generate_series(1, 2)`;
    await blue.query(`INSERT INTO ${table} ${rows}`);
    await green.query(`INSERT INTO ${table} ${rows}`);

    expect(await verifyOne(table)).toMatchObject({ ok: true, blueRows: 12, greenRows: 12 });

    // One of two equal rows gone, a third copy of another, a new row with NULLs.
    await green.query(
      `DELETE FROM ${table} WHERE ctid = (SELECT min(ctid) FROM ${table} WHERE a IS NULL AND b = 'x')`,
    );
    await green.query(`INSERT INTO ${table} VALUES (2, NULL), (3, NULL)`);
    const report = await verifyOne(table);
    expect(report.ok).toBe(false);
    expect(report.missingInGreen).toEqual([{ a: null, b: 'x' }]);
    expect(byKey(report.extraInGreen)).toEqual(
      byKey([
        { a: '2', b: null },
        { a: '3', b: null },
      ]),
    );
    expect(report.different).toEqual([]);
  });
});
