// Verify's time on one text-keyed table of ROWS rows (default 1M) present on blue and green,
// equal on both sides: `npx tsx services/control/bench/verify-text-keys.ts [rows] [module...]`.
// Each module is a copy of verify.ts to time (default: this tree's); with several, runs
// alternate between them, 3 rounds, and the median of each is printed. The table is created
// on both sides under a unique name and dropped at the end.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { compileTransforms, resolveConfig } from '@teal/config';
import pg from 'pg';

const blueUrl = process.env.TEAL_BLUE_URL ?? 'postgres://postgres@127.0.0.1:5433/app';
const greenUrl = process.env.TEAL_GREEN_URL ?? 'postgres://postgres@127.0.0.1:5434/app';
const rows = Number(process.argv[2] ?? 1_000_000);
const modules = process.argv.slice(3);
if (modules.length === 0) modules.push(path.join(import.meta.dirname, '..', 'src', 'verify.ts'));

const table = `bench_verify_${randomBytes(4).toString('hex')}`;
const ddl = `CREATE TABLE ${table} (code text PRIMARY KEY, n int NOT NULL, note text)`;
const fill = `INSERT INTO ${table} SELECT 'k-' || md5(g::text), g, 'note ' || g FROM generate_series(1, ${rows}) g`;

const blue = new pg.Client({ connectionString: blueUrl });
const green = new pg.Client({ connectionString: greenUrl });
await blue.connect();
await green.connect();
try {
  for (const c of [blue, green]) {
    await c.query(ddl);
    await c.query(fill);
    await c.query(`VACUUM ANALYZE ${table}`);
  }
  const config = resolveConfig(undefined);
  const times = new Map<string, number[]>(modules.map((m) => [m, []]));
  for (let round = 0; round < 3; round++) {
    for (const m of modules) {
      const { verifyTables } = await import(pathToFileURL(path.resolve(m)).href);
      const started = performance.now();
      const report = await verifyTables({
        blueUrl,
        greenUrl,
        config,
        transforms: compileTransforms(config),
        tables: [`public.${table}`],
      });
      const s = (performance.now() - started) / 1000;
      if (!report.ok) throw new Error(`${m}: verify did not find the copies equal`);
      times.get(m)?.push(s);
      console.log(`round ${round + 1} ${m}: ${s.toFixed(1)} s`);
    }
  }
  for (const [m, t] of times) {
    const median = [...t].sort((a, b) => a - b)[1];
    console.log(
      `${m}: median ${median.toFixed(1)} s of ${t.map((x) => x.toFixed(1)).join(', ')} (${rows} rows)`,
    );
  }
} finally {
  await blue.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
  await green.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
  await blue.end();
  await green.end();
}
