import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { expect, onTestFinished } from 'vitest';
import { blueUrl, greenUrl, pgClient, uniqueName } from './env.ts';
import { startPipeline } from './pipeline.ts';

// Brief item 4 end to end: for every built-in type and its edge values, green's text
// representation equals blue's after blue -> pgoutput -> Avro -> Kafka -> green, through
// the snapshot and through the stream, and an update that leaves a TOASTed value unchanged
// does not touch it. One body for test/e2e-types.test.ts (the shared blue and green) and
// test/engine-versions.test.ts (scratch clusters of every major).

export const TYPE_COLUMNS: Array<[name: string, type: string, values: string[]]> = [
  ['n_int2', 'int2', ['-32768', '32767']],
  ['n_int4', 'int4', ['-2147483648', '2147483647']],
  ['n_int8', 'int8', ['9223372036854775807', '-9223372036854775808', '9007199254740993']],
  [
    'n_num',
    'numeric',
    ['NaN', 'Infinity', '-Infinity', '123456789012345678901234567890.000000000000000000012345', '-0.000001'],
  ],
  ['n_num_c', 'numeric(12,2)', ['1234567890.12', '-0.01', 'NaN']],
  ['f_4', 'float4', ['NaN', '-0', 'Infinity', '1.17549435e-38', '3.4028235e+38', '0.1']],
  ['f_8', 'float8', ['NaN', '-0', '-Infinity', '5e-324', '1.7976931348623157e+308', '0.1']],
  ['b', 'bool', ['true', 'false']],
  [
    't_tz',
    'timestamptz',
    [
      'infinity',
      '-infinity',
      '2024-02-29 23:59:59.999999+00',
      '0044-03-15 12:00:00.000001+00 BC',
      '12345-01-01 00:00:00+00',
    ],
  ],
  ['t_ts', 'timestamp', ['infinity', '1999-12-31 23:59:59.123456', '4713-01-01 00:00:00 BC']],
  ['d', 'date', ['infinity', '-infinity', '0001-01-01 BC', '2000-02-29', '5874897-12-31']],
  ['tm', 'time', ['00:00:00', '23:59:59.999999', '24:00:00']],
  ['tmtz', 'timetz', ['12:34:56.789+05:30']],
  ['iv', 'interval', ['1 year 2 mons 3 days 04:05:06.789012', '-178000000 years', '00:00:00.000001']],
  ['by', 'bytea', [`\\x${Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex')}`, '\\x']],
  ['js', 'jsonb', ['{"n": 123456789012345678901234567890.123456789, "s": "\\u00e9", "a": [1, null]}', '"x"']],
  ['jt', 'json', ['{"b":1,   "a":2}']],
  ['u', 'uuid', ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11']],
  ['arr', 'int4[]', ['{{1,NULL},{3,4}}', '{}', '[0:1]={5,6}']],
  ['tarr', 'text[]', ['{"a b",NULL,"NULL","\\"q\\""}']],
  ['m', 'money', ['-92233720368547758.08', '1234.56']],
  ['ip', 'inet', ['192.168.0.1/24', '::ffff:1.2.3.4']],
  ['cid', 'cidr', ['10.0.0.0/8']],
  ['mac', 'macaddr', ['08:00:2b:01:02:03']],
  ['vb', 'varbit', ['10101', '']],
  ['bt', 'bit(4)', ['1010']],
  ['x', 'xml', ['<a b="1">text &amp; more</a>']],
  ['tsv', 'tsvector', ["'fat':2 'rat':3"]],
  ['r', 'int4range', ['[1,5)', 'empty', '(,)']],
  ['tsr', 'tstzrange', ['["2024-01-01 00:00:00+00",infinity)']],
  ['pt', 'point', ['(1.5,-2.25)']],
  ['ch', 'char(3)', ['ab ']],
  ['vc', 'varchar(10)', ['héllo']],
  ['tx', 'text', ['', 'line\nbreak\ttab \\ backslash', '😀 emoji']],
];

/** numeric's ±Infinity came in PostgreSQL 14: left out when either side is older. */
async function columnsFor(blue: pg.Client, green: pg.Client): Promise<typeof TYPE_COLUMNS> {
  const major = async (c: pg.Client) =>
    Number((await c.query("SELECT current_setting('server_version_num') AS v")).rows[0].v) / 10000;
  const oldest = Math.min(await major(blue), await major(green));
  if (oldest >= 14) return TYPE_COLUMNS;
  return TYPE_COLUMNS.map(([col, type, values]) => [
    col,
    type,
    type.startsWith('numeric') ? values.filter((v) => !v.endsWith('Infinity')) : values,
  ]);
}

/** The whole check against `urls` (default: the shared blue and green); call it inside a test. */
export async function typeFidelityEndToEnd(
  urls: { blue: string; green: string } = { blue: blueUrl(), green: greenUrl() },
): Promise<void> {
  const name = uniqueName('types');
  const blue = await pgClient(urls.blue);
  const green = await pgClient(urls.green);
  const columns = await columnsFor(blue, green);
  const rows = Math.max(...columns.map(([, , values]) => values.length));
  const ddl = (db: string) => `
    CREATE TYPE ${name}_mood AS ENUM ('sad', 'ok', 'happy');
    CREATE DOMAIN ${name}_posint AS int4 CHECK (VALUE > 0);
    CREATE TYPE ${name}_pair AS (a int4, b text);
    CREATE TABLE ${name} (
      id int8 PRIMARY KEY,
      ${columns.map(([col, type]) => `${col} ${type}`).join(',\n')},
      mood ${name}_mood, posint ${name}_posint, pair ${name}_pair, big text
    )${db === 'blue' ? '' : ''};`;
  await blue.query(ddl('blue'));
  await green.query(ddl('green'));
  onTestFinished(async () => {
    await blue.query(
      `DROP TABLE IF EXISTS ${name}; DROP TYPE IF EXISTS ${name}_mood, ${name}_pair; DROP DOMAIN IF EXISTS ${name}_posint`,
    );
    await green.query(
      `DROP TABLE IF EXISTS ${name}; DROP TYPE IF EXISTS ${name}_mood, ${name}_pair; DROP DOMAIN IF EXISTS ${name}_posint`,
    );
  });

  const insertRows = async (firstId: number) => {
    for (let i = 0; i < rows; i++) {
      const values = columns.map(([, , v]) => v[i] ?? null);
      const extra = [['sad', 'ok', 'happy'][i % 3], String(i + 1), `(${i},"x ${i}")`, null];
      const all = [String(firstId + i), ...values, ...extra];
      const cols = ['id', ...columns.map(([c]) => c), 'mood', 'posint', 'pair', 'big'];
      await blue.query(
        `INSERT INTO ${name} (${cols.join(', ')}) VALUES (${all.map((_, j) => `$${j + 1}`).join(', ')})`,
        all,
      );
    }
    // A row of NULLs in every column.
    await blue.query(`INSERT INTO ${name} (id) VALUES ($1)`, [String(firstId + 100)]);
  };
  await insertRows(1); // before the slot exists: reaches green through the snapshot

  await startPipeline(name, [`public.${name}`], { kafka: { topicPrefix: name, partitions: 2 } }, urls);

  await insertRows(1000); // after: reaches green through the stream
  // A big value TOASTed out of line, then an update that leaves it unchanged.
  const big = Array.from({ length: 4000 }, (_, i) => (i * 7919).toString(36)).join('');
  await blue.query(`UPDATE ${name} SET big = $1 WHERE id IN (1, 1000)`, [big]);
  await blue.query(`UPDATE ${name} SET n_int4 = 7 WHERE id IN (1, 1000)`);

  const dump = async (c: typeof blue) =>
    (await c.query(`SELECT t::text AS row FROM ${name} t ORDER BY id`)).rows.map((r) => r.row as string);
  const expected = await dump(blue);
  expect(expected).toHaveLength(2 * (rows + 1));
  const got = await waitFor(
    async () => {
      const now = await dump(green);
      return now.length === expected.length &&
        now.some((r) => r.includes(big)) &&
        now.filter((r) => r.startsWith('(1,') || r.startsWith('(1000,')).every((r) => r.includes(',7,'))
        ? now
        : undefined;
    },
    { what: 'every row, the TOASTed value and the later update in green', timeoutMs: 90_000 },
  );
  expect(got).toEqual(expected);
}
