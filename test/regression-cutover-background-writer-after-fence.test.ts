import { waitFor } from '@teal/runtime';
import pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { startScratchPostgres } from '../soak/scratch-postgres.ts';
import { controlConfig, controlPipeline, sessionOn, withDatabase } from './support/control-pipeline.ts';
import { greenUrl, pgClient, uniqueName } from './support/env.ts';

// Issue 13, item 6: the fence terminates client backends only; a long-lived backend of
// another kind keeps the setting it started with and goes on writing to blue. Here it is a
// subscription's apply worker that feeds a replicated table of blue: cutover said "safe to
// switch" while every row it applied afterwards was lost to green. Now the fence lists it
// (pid, user, application, backend type, start) and cutover is not safe until it is stopped.
// Blue is a scratch cluster (the fence acts on a whole database; the feed is a second one).

describe('cutover with a non-client backend older than the fence', () => {
  test('is not safe to switch while a subscription worker can still write to blue; safe once it is stopped', async () => {
    const scratch = await startScratchPostgres();
    onTestFinished(() => scratch.destroy());
    const name = uniqueName('rg_cut_bgw');
    const admin = await sessionOn(scratch.url);
    await admin.query('CREATE DATABASE feed');
    const feed = await sessionOn(withDatabase(scratch.url, 'feed'));
    await feed.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    await feed.query(`CREATE PUBLICATION ${name}_feed FOR TABLE ${name}`);
    // A subscription to the same cluster cannot create its slot itself.
    await feed.query(`SELECT pg_create_logical_replication_slot('${name}_feed', 'pgoutput')`);
    const green = await pgClient(greenUrl());
    await admin.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    await green.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    onTestFinished(async () => {
      await green.query(`DROP TABLE IF EXISTS ${name}`);
    });
    const { control } = await controlPipeline(controlConfig(name, scratch.url, [`public.${name}`]));
    await admin.query(
      `CREATE SUBSCRIPTION ${name}_sub CONNECTION 'host=127.0.0.1 port=${scratch.port} dbname=feed user=postgres'
         PUBLICATION ${name}_feed WITH (create_slot = false, slot_name = '${name}_feed', copy_data = false)`,
    );
    await feed.query(`INSERT INTO ${name} VALUES (1, 'fed before the fence')`);
    await waitFor(async () => (await admin.query(`SELECT 1 FROM ${name} WHERE id = 1`)).rowCount === 1, {
      what: 'the subscription applies into blue',
      timeoutMs: 60_000,
    });

    const opts = { fence: true, timeoutMs: 60_000, verify: true, unfenceOnFailure: false };
    const refused = await control.cutover(opts);
    expect(refused.safeToSwitch, JSON.stringify(refused.steps)).toBe(false);
    const holes = refused.fenceHoles?.sessions ?? [];
    expect(holes).toEqual([
      expect.objectContaining({
        backendType: expect.stringMatching(/^logical replication/),
        usename: 'postgres',
      }),
    ]);
    const fenceStep = refused.steps.find((s) => s.name === 'fence');
    expect(fenceStep?.details).toMatch(
      new RegExp(
        `pid ${holes[0]?.pid} \\(user postgres, application ".*", logical replication.*pg_terminate_backend`,
      ),
    );
    // What the fence could not stop: the worker still writes to the fenced blue (the fence
    // terminated `admin`, a client session; this one starts read-only).
    const reader = await sessionOn(scratch.url);
    await feed.query(`INSERT INTO ${name} VALUES (2, 'fed after the fence')`);
    await waitFor(async () => (await reader.query(`SELECT 1 FROM ${name} WHERE id = 2`)).rowCount === 1, {
      what: 'the worker writes after the fence',
      timeoutMs: 60_000,
    });

    // What the report says to do: stop what runs it. Then the cutover carries everything over.
    const owner = new pg.Client({
      connectionString: scratch.url,
      options: '-c default_transaction_read_only=off',
    });
    owner.on('error', () => {}); // the next fence terminates it
    await owner.connect();
    onTestFinished(() => owner.end().catch(() => {}));
    await owner.query(`ALTER SUBSCRIPTION ${name}_sub DISABLE`);
    await waitFor(
      async () =>
        (
          await owner.query(
            `SELECT 1 FROM pg_stat_activity WHERE backend_type LIKE 'logical replication%' AND datname = current_database()`,
          )
        ).rowCount === 0,
      { what: 'the apply worker gone', timeoutMs: 60_000 },
    );
    const done = await control.cutover(opts);
    expect(done.safeToSwitch, JSON.stringify(done.steps)).toBe(true);
    const { rows } = await green.query<{ id: string }>(`SELECT id::text FROM ${name} ORDER BY id`);
    expect(rows).toEqual([{ id: '1' }, { id: '2' }]);
  });
});
