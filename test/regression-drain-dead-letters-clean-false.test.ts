import { describe, expect, onTestFinished, test } from 'vitest';
import { controlConfig, controlPipeline, ownBlueDatabase } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, pgClient, uniqueName } from './support/env.ts';

// Issue 13, item 5: drain said `drained: true` and cutover "safe to switch" although green
// had rejected changes for good (dead letters in <prefix>._dlq): green lacked them. Now the
// drain says `clean: false` with the count per table, and cutover is not safe unless the
// operator accepts them. Blue is a database of the test's own: cutover copies every sequence.

describe('drain and cutover with dead letters', () => {
  test('drain reports clean: false with counts per table; cutover needs acceptDeadLetters', async () => {
    const name = uniqueName('rg_dlq_clean');
    const rejected = `${name}_a`;
    const fine = `${name}_b`;
    const blueDb = await ownBlueDatabase(blueUrl(), name);
    const blue = await pgClient(blueDb);
    const green = await pgClient(greenUrl());
    for (const t of [rejected, fine]) await blue.query(`CREATE TABLE ${t} (id int PRIMARY KEY, v text)`);
    // Green rejects v = 'bad' for good (23514, a record error): those changes are dead-lettered.
    await green.query(`CREATE TABLE ${rejected} (id int PRIMARY KEY, v text CHECK (v <> 'bad'))`);
    await green.query(`CREATE TABLE ${fine} (id int PRIMARY KEY, v text)`);
    onTestFinished(async () => {
      await green.query(`DROP TABLE IF EXISTS ${rejected}, ${fine}`);
    });
    const config = controlConfig(name, blueDb, [`public.${rejected}`, `public.${fine}`]);
    const { control } = await controlPipeline(config);

    await blue.query(`INSERT INTO ${rejected} VALUES (1, 'ok'), (2, 'bad'), (3, 'bad')`);
    await blue.query(`INSERT INTO ${fine} SELECT g, 'v' FROM generate_series(1, 10) g`);

    const drained = await control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.drained).toBe(true);
    expect(drained.clean).toBe(false);
    expect(drained.deadLetters).toEqual({ total: 2, tables: [{ table: `public.${rejected}`, count: 2 }] });

    const opts = { fence: false, timeoutMs: 60_000, verify: false, unfenceOnFailure: false };
    const refused = await control.cutover(opts);
    expect(refused.safeToSwitch).toBe(false);
    expect(refused.deadLetters?.total).toBe(2);
    const drainStep = refused.steps.find((s) => s.name === 'drain');
    expect(drainStep?.ok).toBe(false);
    expect(drainStep?.details).toMatch(
      new RegExp(`2 dead letter\\(s\\).*public\\.${rejected}: 2.*--accept-dead-letters`),
    );

    const accepted = await control.cutover({ ...opts, acceptDeadLetters: true });
    expect(accepted.steps.map((s) => [s.name, s.ok])).toEqual([
      ['drain', true],
      ['sequences', true],
      ['release', true],
    ]);
    expect(accepted.safeToSwitch).toBe(true);
    expect(accepted.warnings.join('\n')).toMatch(/2 dead letter\(s\).*accepted by the operator/);
  });
});
