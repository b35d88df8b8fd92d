import { describe, expect, onTestFinished, test } from 'vitest';
import { startScratchPostgres } from '../soak/scratch-postgres.ts';
import { controlConfig, controlPipeline, expectCutoverDone, sessionOn } from './support/control-pipeline.ts';
import { greenUrl, pgClient, uniqueName } from './support/env.ts';

// Issue 13, item 6: a prepared transaction survives the fence (COMMIT PREPARED is allowed in a
// read-only session), yet cutover said "safe to switch"; a later COMMIT PREPARED on blue
// would have been lost. Now the fence lists blue's prepared transactions and cutover is not
// safe while there is one. Blue is a scratch cluster: the shared one runs with
// max_prepared_transactions = 0, and the fence acts on a whole database.

describe('cutover with a prepared transaction on blue', () => {
  test('is not safe to switch, names the transaction and what to do; after COMMIT PREPARED it is, with the row in green', async () => {
    const scratch = await startScratchPostgres({ max_prepared_transactions: '5' });
    onTestFinished(() => scratch.destroy());
    const name = uniqueName('rg_cut_2pc');
    const gid = `${name}_gid`;
    const setup = await sessionOn(scratch.url);
    const green = await pgClient(greenUrl());
    await setup.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    await green.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    onTestFinished(async () => {
      await green.query(`DROP TABLE IF EXISTS ${name}`);
    });
    const config = controlConfig(name, scratch.url, [`public.${name}`]);
    const { control } = await controlPipeline(config);
    await setup.query(`INSERT INTO ${name} SELECT g, 'v' || g FROM generate_series(1, 5) g`);

    const shop = await sessionOn(scratch.url, 'shop');
    await shop.query('BEGIN');
    await shop.query(`INSERT INTO ${name} VALUES (99, 'prepared before the fence')`);
    await shop.query(`PREPARE TRANSACTION '${gid}'`);
    onTestFinished(async () => {
      const c = await sessionOn(scratch.url);
      await c.query(`ROLLBACK PREPARED '${gid}'`).catch(() => {});
    });

    const opts = { fence: true, timeoutMs: 60_000, verify: true, unfenceOnFailure: false };
    const refused = await control.cutover(opts);
    expect(refused.safeToSwitch, JSON.stringify(refused.steps)).toBe(false);
    expect(refused.fenced).toBe(true);
    expect(refused.fenceHoles?.preparedTransactions).toEqual([
      { gid, owner: 'postgres', prepared: expect.any(String) },
    ]);
    const fenceStep = refused.steps.find((s) => s.name === 'fence');
    expect(fenceStep?.ok).toBe(false);
    expect(fenceStep?.details).toMatch(new RegExp(`'${gid}' \\(owner postgres, prepared `));
    expect(fenceStep?.details).toMatch(
      /COMMIT PREPARED 'gid' \(its changes then reach green\) or ROLLBACK PREPARED 'gid', then run the cutover again/,
    );

    // What the report says to do: the fence lets it commit; the next cutover carries it over.
    const admin = await sessionOn(scratch.url);
    await admin.query(`COMMIT PREPARED '${gid}'`);
    // Every step ok and safe to switch (the helper asserts both).
    const done = await expectCutoverDone(control);
    expect(done.fenceHoles).toEqual({ preparedTransactions: [], sessions: [] });
    const { rows } = await green.query<{ v: string }>(`SELECT v FROM ${name} WHERE id = 99`);
    expect(rows).toEqual([{ v: 'prepared before the fence' }]);
  });
});
