import { compileTransforms, resolveConfig } from '@teal/config';
import type pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { type VerifyTableReport, verifyTables } from '../services/control/src/verify.ts';
import { blueUrl, greenUrl, pgClient, uniqueName } from './support/env.ts';

// Regression (issue 12, verify and collations): verify ordered text keys with COLLATE "C" on
// both sides so that the two orders agreed, which no index on the key (built in the column's
// own collation) can serve: every chunk query was a Seq Scan and a sort of the whole table,
// and a cutover could time out on a big text-keyed table. Verify now pages blue in its own
// index order and fetches green's rows of a chunk by key; it pages green in green's order
// only to find rows blue lacks. Every statement a chunk runs is EXPLAINed here with the
// values verify gave it: each uses the key index, none scans the table. The second test keeps
// what COLLATE "C" was for: green's key column in another collation (ICU, ordering case and
// accents differently from blue's libc one) still gives exact missing, extra and changed rows.

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

async function createBoth(
  blue: pg.Client,
  green: pg.Client,
  blueDdl: string,
  greenDdl: string,
  table: string,
) {
  await blue.query(blueDdl);
  await green.query(greenDdl);
  onTestFinished(async () => {
    await blue.query(`DROP TABLE IF EXISTS ${table}`);
    await green.query(`DROP TABLE IF EXISTS ${table}`);
  });
}

async function verifyOne(
  table: string,
  chunkRows: number,
  onChunkQuery?: (side: 'blue' | 'green', query: { text: string; values: unknown[] }) => void,
): Promise<VerifyTableReport> {
  const config = resolveConfig(undefined);
  const report = await verifyTables({
    blueUrl: blueUrl(),
    greenUrl: greenUrl(),
    config,
    transforms: compileTransforms(config),
    tables: [table],
    chunkRows,
    onChunkQuery,
  });
  expect(report.tables).toHaveLength(1);
  return report.tables[0];
}

describe('regression: verify without COLLATE "C"', () => {
  test('every chunk statement on a 200k-row text-keyed table uses the key index, none a Seq Scan', async () => {
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    const name = uniqueName('vcollate_scan');
    const table = `public.${name}`;
    const ddl = `CREATE TABLE ${table} (code text PRIMARY KEY, n int NOT NULL, note text)`;
    await createBoth(blue, green, ddl, ddl, table);
    const rows = `SELECT 'k-' || md5(g::text), g, 'note ' || g FROM generate_series(1, 200000) g`;
    await blue.query(`INSERT INTO ${table} ${rows}`);
    await green.query(`INSERT INTO ${table} ${rows}`);
    // One row only green has, one changed: green is then paged too, and its keys looked up in blue.
    await green.query(`INSERT INTO ${table} VALUES ('only-in-green', 0, NULL)`);
    await green.query(`UPDATE ${table} SET note = 'changed' WHERE n = 100`);
    await blue.query(`ANALYZE ${table}`);
    await green.query(`ANALYZE ${table}`);

    const queries: { side: 'blue' | 'green'; text: string; values: unknown[] }[] = [];
    const report = await verifyOne(table, 20_000, (side, q) => queries.push({ side, ...q }));
    expect(report).toMatchObject({ ok: false, blueRows: 200_000, greenRows: 200_001 });
    expect(report.extraInGreen).toEqual([{ code: 'only-in-green' }]);
    expect(report.different).toHaveLength(1);
    expect(report.missingInGreen).toEqual([]);

    // Blue chunks (the first, and those after a key), green lookups, green key pages, blue lookups.
    const shapes = new Map<string, (typeof queries)[number]>();
    for (const q of queries) {
      const shape = `${q.side}:${q.text.replace(/\$\d+/g, '$').slice(0, 120)}:${q.values.length}`;
      if (!shapes.has(shape)) shapes.set(shape, q);
    }
    expect(shapes.size).toBeGreaterThanOrEqual(5);
    const sides = new Set([...shapes.values()].map((q) => q.side));
    expect(sides).toEqual(new Set(['blue', 'green']));
    for (const q of shapes.values()) {
      const client = q.side === 'blue' ? blue : green;
      const explained = await client.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN (FORMAT JSON) ${q.text}`,
        q.values,
      );
      const plan = JSON.parse(explained.rows[0]['QUERY PLAN'])[0].Plan as PlanNode;
      const onTable = nodes(plan).filter((n) => n['Relation Name'] === name);
      expect(onTable.length, q.text).toBeGreaterThan(0);
      for (const n of onTable) {
        expect(n['Node Type'], q.text).toMatch(/^Index (Only )?Scan$/);
        expect(n['Index Name'], q.text).toBe(`${name}_pkey`);
      }
    }
    expect(queries.some((q) => q.text.includes('COLLATE'))).toBe(false);
  });

  test("green's key column in another collation: a missing, an extra and a changed row are still exact", async () => {
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    const collations = await green.query<{ collname: string }>(
      `SELECT collname FROM pg_collation WHERE collname IN ('en-US-x-icu', 'und-x-icu') ORDER BY collname`,
    );
    // This machine's Postgres has ICU; the test says so rather than skipping quietly.
    expect(collations.rows.length).toBeGreaterThan(0);
    const icu = collations.rows[0].collname;
    const table = `public.${uniqueName('vcollate_icu')}`;
    await createBoth(
      blue,
      green,
      `CREATE TABLE ${table} (tenant text COLLATE "C", code text COLLATE "C", v int, PRIMARY KEY (tenant, code))`,
      `CREATE TABLE ${table} (tenant text COLLATE "${icu}", code text COLLATE "${icu}", v int, PRIMARY KEY (tenant, code))`,
      table,
    );
    const rows = `SELECT t, c, ascii(t) * 1000 + ascii(c) FROM unnest(ARRAY['a', 'B', 'é', 'Z', '_', 'e', 'E']) t,
                  unnest(ARRAY['x', 'Y', '10', '9', 'ß', 'ss', 'a b', 'ab']) c`;
    await blue.query(`INSERT INTO ${table} ${rows}`);
    await green.query(`INSERT INTO ${table} ${rows}`);
    // The two orders really differ (else this test proves nothing).
    const order = `SELECT string_agg(tenant, '' ORDER BY tenant) AS o FROM (SELECT DISTINCT tenant FROM ${table}) d`;
    expect((await blue.query(order)).rows[0].o).not.toBe((await green.query(order)).rows[0].o);

    expect(await verifyOne(table, 5)).toMatchObject({ ok: true, blueRows: 56, greenRows: 56 });

    await green.query(`DELETE FROM ${table} WHERE tenant = 'é' AND code = 'ss'`);
    await green.query(`UPDATE ${table} SET v = -1 WHERE tenant = 'B' AND code = 'ß'`);
    await green.query(`INSERT INTO ${table} VALUES ('e', 'extra', 0)`);
    const report = await verifyOne(table, 5);
    expect(report).toMatchObject({ ok: false, blueRows: 56, greenRows: 56 });
    expect(report.missingInGreen).toEqual([{ tenant: 'é', code: 'ss' }]);
    expect(report.extraInGreen).toEqual([{ tenant: 'e', code: 'extra' }]);
    expect(report.different).toEqual([{ key: { tenant: 'B', code: 'ß' }, columns: ['v'] }]);
  });
});
