import { Kafka, logLevel } from 'kafkajs';
import { describe, expect, test } from 'vitest';
import { checkDatabases } from './support/check-databases.ts';
import { kafkaBrokers } from './support/env.ts';

// teal run used to start on any shape: a table without a key (or a leaf partition named in
// tables) was found out only later, after the slot existed, as a failing producer or a
// blocked partition. It now runs `teal check`'s checks first and refuses with
// TEAL_CHECK_BLOCKED, naming each table and its fix, before it creates a slot, a
// publication or a topic.

describe('teal run refuses a blocking shape before it creates anything', () => {
  test('a table without a key: exit 1, TEAL_CHECK_BLOCKED with the fix, no slot, no publication, no topic', async () => {
    const s = await checkDatabases(
      'run_preflight',
      `CREATE TABLE nokey (x int);
       CREATE TABLE events (id int, k int, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
       CREATE TABLE events_a PARTITION OF events FOR VALUES FROM (0) TO (100)`,
      'CREATE TABLE nokey (x int); CREATE TABLE events (id int, k int, PRIMARY KEY (id, k))',
    );
    // Old code started and ran until stopped: the stop after a deadline turns that into a failed assertion.
    const deadline = new Promise<string>((resolve) => setTimeout(() => resolve('SIGTERM'), 60_000).unref());
    const run = await s.teal(
      ['run'],
      `{ tables: ['public.nokey', 'public.events_a'], kafka: { partitions: 1 } }`,
      { TEAL_RUN_THREADS: '1' },
      deadline,
    );
    expect(run.code, run.err).toBe(1);
    expect(run.err).toMatch(/^teal run: TEAL_CHECK_BLOCKED: teal check found 2 problems/);
    expect(run.err).toContain('- public.nokey: public.nokey has no primary key');
    expect(run.err).toContain('fix: ALTER TABLE public.nokey ADD PRIMARY KEY');
    expect(run.err).toContain(
      '- public.events_a: public.events_a is a partition of public.events; fix: list public.events',
    );

    const slots = await s.blue.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [s.name]);
    expect(slots.rowCount).toBe(0);
    const publications = await s.blue.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [s.name]);
    expect(publications.rowCount).toBe(0);
    const admin = new Kafka({
      brokers: kafkaBrokers(),
      clientId: s.name,
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();
    try {
      expect((await admin.listTopics()).filter((t) => t.startsWith(`${s.name}.`))).toEqual([]);
    } finally {
      await admin.disconnect();
    }
  });

  test('--skip-check starts past the preflight: the producer itself still refuses the table without a key', async () => {
    const s = await checkDatabases(
      'run_skip_check',
      'CREATE TABLE nokey (x int)',
      'CREATE TABLE nokey (x int)',
    );
    const deadline = new Promise<string>((resolve) => setTimeout(() => resolve('SIGTERM'), 60_000).unref());
    const run = await s.teal(
      ['producer', '--skip-check'],
      `{ tables: ['public.nokey'], kafka: { partitions: 1 } }`,
      { TEAL_RUN_THREADS: '1' },
      deadline,
    );
    expect(run.code, run.err).toBe(1);
    expect(run.err).not.toContain('TEAL_CHECK_BLOCKED');
    expect(run.err).toContain('teal cannot key the rows of 1 table(s) on blue: public.nokey');
  });
});
