import pg from 'pg';
import { beforeAll, describe, expect, test } from 'vitest';
import { runDemo } from '../demo/run.ts';
import { blueUrl, greenUrl, withDatabase } from './support/env.ts';

// The README's main job, end to end on the real environment at a smaller volume:
// snapshot + stream under a write workload, then fence, drain, sequences, verify.
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

  test('moves every row with the new shape and proves it at cutover', async () => {
    const summary = await runDemo({
      users: 2_000,
      orders: 6_000,
      workloadMs: 4_000,
      apiPort: 18_080,
      blueUrl: withDatabase(blueUrl(), DB),
      greenUrl: withDatabase(greenUrl(), DB),
    });

    // Every step of the cutover reported success.
    expect(summary.cutover.safeToSwitch).toBe(true);
    expect(summary.cutover.verifyOk).toBe(true);
    expect(summary.cutover.drainLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);

    // Green holds exactly blue's rows (counted independently of verify).
    expect(summary.rows.green).toEqual(summary.rows.blue);
    expect(summary.rows.blue.users).toBeGreaterThan(2_000); // the workload inserted more

    // The workload ran and its changes flowed while teal streamed.
    expect(summary.workload.transactions).toBeGreaterThan(0);
    expect(summary.lagMs.samples).toBeGreaterThan(0);

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
    expect(summary.domains.map((d) => d.email_domain)).not.toContain('Mail.test');
  }, 300_000);
});
