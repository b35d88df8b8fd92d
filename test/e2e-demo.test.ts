import { tmpdir } from 'node:os';
import pg from 'pg';
import { beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers, withDatabase } from './support/env.ts';
import { spawnTeal } from './support/teal-child.ts';

// The README's main job, end to end on the real environment at a smaller volume:
// snapshot + stream under a write workload, then fence, drain, sequences, verify; and what
// `npm run demo` prints reads as a story (the README's), with no log noise in it.
// It runs in databases of its own, because the cutover fences blue's database.
const DB = 'teal_e2e_demo';

async function ensureDatabase(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DB]);
    if (rowCount === 0) await client.query(`CREATE DATABASE ${DB}`);
  } finally {
    await client.end();
  }
}

describe('npm run demo, smaller', () => {
  beforeAll(async () => {
    await ensureDatabase(blueUrl());
    await ensureDatabase(greenUrl());
  });

  test('moves every row with the new shape, proves it at cutover, and tells it as a story', async () => {
    // `teal demo` as an operator runs it (a child, stdout a pipe), on servers it is given.
    const demo = spawnTeal(['demo', '--users', '2000', '--orders', '6000', '--workload-seconds', '4'], {
      cwd: tmpdir(),
      dropEnv: ['TEAL_'],
      env: {
        TEAL_BLUE_URL: withDatabase(blueUrl(), DB),
        TEAL_GREEN_URL: withDatabase(greenUrl(), DB),
        TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
        TEAL_API_PORT: '18080',
        // Names of its own: the demo's reset drops its slot and its topics by these names.
        TEAL_SLOT: DB,
        TEAL_PUBLICATION: DB,
        TEAL_TOPIC_PREFIX: DB,
      },
    });
    onTestFinished(async () => {
      const blue = new pg.Client({ connectionString: withDatabase(blueUrl(), DB) });
      await blue.connect();
      await blue.query(
        'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active',
        [DB],
      );
      await blue.end();
    });
    const code = await demo.exited;
    const output = demo.output();
    const lines = output.split('\n');
    expect(code, output).toBe(0);

    // The story, in order: snapshot progress per table, snapshot, workload, cutover, summary.
    expect(output).toMatch(
      /teal is running[\s\S]*public\.users +\[#{20}\] 100% {2}2,000\/2,000 rows[\s\S]*public\.orders +\[#{20}\] 100% {2}6,000\/6,000 rows[\s\S]*snapshot: 8000 rows in green[\s\S]*workload: \d+ transactions[\s\S]*== teal demo summary ==/,
    );
    // Every step of the cutover reported success.
    expect(output).toMatch(/^ {2}safe to switch +yes$/m);
    expect(output).toMatch(/^ {2}verify +OK: green equals blue/m);
    expect(output).toMatch(/^ {2}drain +to LSN [0-9A-F]+\/[0-9A-F]+ in \d+ ms$/m);
    // The copied sequences as a table, not JSON.
    expect(output).toMatch(/^ {4}public\.orders_id_seq +public\.orders_id_seq +\d+ +yes$/m);
    expect(output).toMatch(/^ {4}public\.users_id_seq +public\.users_id_seq +\d+ +yes$/m);
    // Nothing but the story: no JSON log line, no warning, no deprecation (kafkajs's
    // TimeoutNegativeWarning on Node >= 24 is muted at its source, packages/kafka).
    expect(lines.filter((l) => l.trim().startsWith('{'))).toEqual([]);
    expect(lines.filter((l) => /warn|deprecat|FSTDEP|error|trace-warnings/i.test(l))).toEqual([]);
    expect(output).not.toMatch(/\b(WARN|ERROR|FATAL): /);

    // Green holds exactly blue's rows, counted independently of verify; the workload inserted more.
    const rows = /^ {2}rows moved +users (\d+) \(blue (\d+)\), orders (\d+) \(blue (\d+)\)$/m.exec(output);
    expect(rows).not.toBeNull();
    const count = async (url: string, table: string) => {
      const c = new pg.Client({ connectionString: withDatabase(url, DB) });
      await c.connect();
      try {
        return Number((await c.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
      } finally {
        await c.end();
      }
    };
    const blueUsers = await count(blueUrl(), 'users');
    expect(blueUsers).toBeGreaterThan(2_000);
    expect(await count(greenUrl(), 'users')).toBe(blueUsers);
    expect(await count(greenUrl(), 'orders')).toBe(await count(blueUrl(), 'orders'));
    expect(Number(rows![1])).toBe(blueUsers);
    // Nothing streams the demo's slot once it is over: it must not stay to hold blue's WAL.
    const slots = new pg.Client({ connectionString: withDatabase(blueUrl(), DB) });
    await slots.connect();
    try {
      const left = await slots.query('SELECT slot_name FROM pg_replication_slots WHERE slot_name = $1', [DB]);
      expect(left.rows).toEqual([]);
    } finally {
      await slots.end();
    }

    // email_domain was derived in flight, lower-cased (blue has "Mail.test"), on every row.
    // Counted in green itself, not read off the summary's top five: which domains lead
    // depends on how many rows the workload inserted, that is on the machine's speed.
    const green = new pg.Client({ connectionString: withDatabase(greenUrl(), DB) });
    await green.connect();
    try {
      const { rows } = await green.query<{ wrong: number; mail_test: number; upper: number }>(
        `SELECT count(*) FILTER (WHERE email_domain IS DISTINCT FROM lower(split_part(email, '@', 2)))::int AS wrong,
                count(*) FILTER (WHERE email_domain = 'mail.test')::int AS mail_test,
                count(*) FILTER (WHERE email_domain <> lower(email_domain))::int AS upper
           FROM users`,
      );
      expect(rows[0]).toEqual({ wrong: 0, mail_test: expect.any(Number), upper: 0 });
      // Blue's seed gives every fourth user "@Mail.test"; some of them the workload moved.
      expect(rows[0].mail_test).toBeGreaterThan(0);
    } finally {
      await green.end();
    }
    expect(output).toMatch(/^ {2}email_domain in green +\S+=\d+/m);
    expect(output).not.toContain('Mail.test=');
  }, 300_000);
});
