import type { Row, TableSchema } from '@teal/change-event';
import { createPool } from '@teal/postgres';
import type pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { loadTableSchema, TypeCatalog } from '../services/producer/src/catalog.ts';
import { keyValues, readChunk, readChunkInSnapshot } from '../services/producer/src/snapshot-reader.ts';
import { blueUrl, pgClient, uniqueName } from './support/env.ts';

// Regression (issue 12, NULLs in key columns): the snapshot pages a table by key, and a key
// column holding NULL (REPLICA IDENTITY FULL without a primary key: every column is the key;
// nullable keyColumns) broke it: the last key's NULL was stored as '' (an integer column then
// failed, a text one restarted from '' and repeated rows), and the row comparison
// `(a, b) > ($1, $2)` is NULL for every row with a NULL key column, so those rows were
// skipped. Under FULL two rows can even be equal, and a chunk boundary between them skipped
// the second. Both snapshot paths (the initial copy's readChunk, the chunked snapshot's
// readChunkInSnapshot) must return every row exactly once.

const CHUNK = 4;

async function pageAll(read: (after: (string | null)[] | null) => Promise<Row[]>, table: TableSchema) {
  const out: Row[] = [];
  let after: (string | null)[] | null = null;
  for (let chunks = 0; ; chunks++) {
    // A loop restarting from the same key would never end: more chunks than rows is a failure.
    expect(chunks).toBeLessThan(200);
    const rows = await read(after);
    out.push(...rows);
    if (rows.length < CHUNK) return { rows: out, chunks: chunks + 1 };
    after = keyValues(table, rows[rows.length - 1]);
  }
}

/** Rows as sortable strings, so that a multiset compares (duplicates count). */
const canonical = (rows: readonly Row[], columns: readonly string[]) =>
  rows.map((r) => JSON.stringify(columns.map((c) => r[c] ?? null))).sort();

async function expectEveryRowOnce(blue: pg.Client, pool: pg.Pool, table: string, keyColumns?: string[]) {
  const schema = await loadTableSchema(blue, new TypeCatalog(blue), 'public', table, keyColumns);
  const columns = schema.columns.map((c) => c.name);
  const all = await blue.query<Row>(`SELECT * FROM ${table}`);
  const expected = canonical(all.rows, columns);

  const initial = await pageAll((after) => readChunk(blue, schema, after, CHUNK), schema);
  expect(initial.chunks).toBeGreaterThan(5);
  expect(canonical(initial.rows, columns)).toEqual(expected);

  const chunked = await pageAll(
    async (after) => (await readChunkInSnapshot(pool, schema, after, CHUNK, [])).rows,
    schema,
  );
  expect(canonical(chunked.rows, columns)).toEqual(expected);
}

describe('regression: snapshot paging over NULL key columns', () => {
  test('REPLICA IDENTITY FULL without a primary key: NULLs in every key position, equal rows across chunk boundaries', async () => {
    const blue = await pgClient(blueUrl());
    const pool = createPool(blueUrl(), { max: 2, applicationName: 'teal-test' });
    onTestFinished(() => pool.end());
    const table = uniqueName('null_full');
    await blue.query(`CREATE TABLE ${table} (a int, b text, c int)`);
    onTestFinished(async () => {
      await blue.query(`DROP TABLE IF EXISTS ${table}`);
    });
    await blue.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
    // Every NULL pattern of three columns, '' apart from NULL, each row twice; then plain rows.
    await blue.query(
      `INSERT INTO ${table}
       SELECT a, b, c FROM unnest(ARRAY[1, 2, NULL]::int[]) a, unnest(ARRAY['x', '', NULL]::text[]) b,
              unnest(ARRAY[7, NULL]::int[]) c, generate_series(1, 2)`,
    );
    await blue.query(`INSERT INTO ${table} SELECT g, 'v' || g, g FROM generate_series(3, 12) g`);
    await expectEveryRowOnce(blue, pool, table);
  });

  test('configured keyColumns that are nullable, under a unique index whose NULLs are distinct', async () => {
    const blue = await pgClient(blueUrl());
    const pool = createPool(blueUrl(), { max: 2, applicationName: 'teal-test' });
    onTestFinished(() => pool.end());
    const table = uniqueName('null_keycols');
    await blue.query(`CREATE TABLE ${table} (x text, y int, v text)`);
    onTestFinished(async () => {
      await blue.query(`DROP TABLE IF EXISTS ${table}`);
    });
    await blue.query(`CREATE UNIQUE INDEX ON ${table} (x, y)`);
    await blue.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
    await blue.query(
      `INSERT INTO ${table}
       SELECT x, y, 'v' || coalesce(x, '-') || coalesce(y::text, '-') || n
         FROM unnest(ARRAY['a', 'b', NULL]::text[]) x, unnest(ARRAY[1, 2, NULL]::int[]) y, generate_series(1, 2) n
        WHERE x IS NULL OR y IS NULL OR n = 1`,
    );
    await blue.query(`INSERT INTO ${table} SELECT 'c', g, 'w' FROM generate_series(1, 12) g`);
    await expectEveryRowOnce(blue, pool, table, ['x', 'y']);
  });
});
