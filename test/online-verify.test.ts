import { compileTransforms } from '@teal/config';
import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { verifyDelta, verifyOnline } from '../services/control/src/online-verify.ts';
import { controlConfig, controlPipeline, ownBlueDatabase, sessionOn } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, pgClient, uniqueName } from './support/env.ts';

// Issue 18: verify before the fence, only the delta after. Online verify finds a row changed
// in green behind teal's back long before the cutover (by key); the cutover's delta finds
// one changed after the last online pass, just before the fence; under load the cutover
// reports its fenced window step by step, and a dry run leaves blue writable. Blue is a
// database of each test's own (the fence acts on a whole database).

const ROWS = 3_000;

async function setUp(prefix: string, extra: Record<string, unknown> = {}) {
  const name = uniqueName(prefix);
  const url = await ownBlueDatabase(blueUrl(), name);
  const blue = await sessionOn(url);
  const green = await pgClient(greenUrl());
  // Blue's copy goes with its database; this session ends at the fence.
  for (const db of [blue, green])
    await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text NOT NULL)`);
  onTestFinished(async () => {
    await green.query(`DROP TABLE IF EXISTS ${name}`);
    await green.query('DELETE FROM teal.verify_changed WHERE green_table = $1', [`public.${name}`]);
  });
  await blue.query(`INSERT INTO ${name} SELECT g, 'v' || g FROM generate_series(1, ${ROWS}) g`);
  const config = controlConfig(name, url, [`public.${name}`], extra);
  const { control } = await controlPipeline(config);
  onTestFinished(async () => {
    await control.unfence().catch(() => {});
  });
  await waitFor(async () => (await green.query(`SELECT 1 FROM ${name}`)).rowCount === ROWS, {
    what: 'the snapshot in green',
    timeoutMs: 60_000,
  });
  return { name, url, blue, green, control };
}

const keysOf = (list: { key: Record<string, string | null> }[] | Record<string, string | null>[]) =>
  list.map((x) => ('key' in x ? (x.key as Record<string, string | null>) : x).id);

describe('online verify and the cutover delta', () => {
  test('a row changed in green long before cutover is found online by key; one changed after the last pass is found by the delta', async () => {
    const { name, green, control } = await setUp('ov_delta');

    // Long before the cutover: green's row 7 changed behind teal's back.
    await green.query(`UPDATE ${name} SET v = 'changed in green' WHERE id = 7`);
    const online = await control.verify({ online: true });
    expect(online.kind).toBe('online');
    const table = online.tables[0];
    expect(table, JSON.stringify(table)).toMatchObject({ ok: false, checked: 'online' });
    expect(keysOf(table.different)).toEqual(['7']);
    expect((await control.status()).onlineVerify).toMatchObject({ mismatches: 1, tablesComplete: 1 });

    // Repaired; the next pass is clean.
    await green.query(`UPDATE ${name} SET v = 'v7' WHERE id = 7`);
    const clean = await control.verify({ online: true });
    expect(clean.ok, JSON.stringify(clean.tables[0])).toBe(true);
    // A round: only the repaired key (changed since the first pass, and left different by it).
    expect(clean.tables[0]).toMatchObject({ deltaKeys: 1, reason: expect.stringMatching(/^a round/) });
    expect((await control.status()).onlineVerify).toMatchObject({
      mismatches: 0,
      recheckPending: 0,
      chunksVerified: expect.any(Number),
    });

    // After the last online pass, just before the fence: one row changed, one deleted in green,
    // with the consumer's trigger-free replica role (the capture triggers fire ALWAYS).
    await green.query('BEGIN');
    await green.query('SET LOCAL session_replication_role = replica');
    await green.query(`UPDATE ${name} SET v = 'late change' WHERE id = 42`);
    await green.query(`DELETE FROM ${name} WHERE id = 43`);
    await green.query('COMMIT');
    const report = await control.cutover({
      fence: true,
      timeoutMs: 60_000,
      verify: true,
      unfenceOnFailure: true,
    });
    expect(report.safeToSwitch).toBe(false);
    expect(report.verification, JSON.stringify(report.verify?.tables)).toMatchObject({
      kind: 'delta',
      beforeFence: { tables: [`public.${name}`] },
      afterFence: { deltaTables: [`public.${name}`], fullTables: [] },
    });
    const delta = report.verify?.tables[0];
    expect(delta, JSON.stringify(delta)).toMatchObject({ checked: 'delta', deltaKeys: 2 });
    expect(keysOf(delta?.different ?? [])).toEqual(['42']);
    expect(keysOf(delta?.missingInGreen ?? [])).toEqual(['43']);

    // --full-verify checks every row inside the window and finds the same two.
    const full = await control.cutover({
      fence: true,
      timeoutMs: 60_000,
      verify: true,
      unfenceOnFailure: true,
      fullVerify: true,
    });
    expect(full.verification?.kind).toBe('full');
    expect(full.verify?.tables[0]).toMatchObject({ blueRows: ROWS, mismatchedChunks: 1 });
    expect(keysOf(full.verify?.tables[0].different ?? [])).toEqual(['42']);
  });

  test('under load: a dry run leaves blue writable; the cutover reports its fenced window step by step', async () => {
    const { name, url, blue, green, control } = await setUp('ov_window');
    // The application: updates and inserts on blue until the fence stops it.
    const app = await sessionOn(url, 'shop');
    let written = 0;
    let stopped = false;
    const load = (async () => {
      for (let i = 1; !stopped; i++) {
        try {
          await app.query(`UPDATE ${name} SET v = v || '.' WHERE id = $1`, [(i % ROWS) + 1]);
          await app.query(`INSERT INTO ${name} VALUES ($1, 'new')`, [ROWS + i]);
          written++;
        } catch {
          return; // fenced: the session was terminated
        }
      }
    })();
    onTestFinished(async () => {
      stopped = true;
      await load;
    });
    await waitFor(() => written > 50, { what: 'the application writing', timeoutMs: 30_000 });

    const online = await control.verify({ online: true });
    expect(online.tables[0].checked).toBe('online');
    expect((await control.status()).onlineVerify).toMatchObject({ tablesComplete: 1 });

    const dry = await control.cutover({
      fence: true,
      dryRun: true,
      timeoutMs: 60_000,
      verify: true,
      unfenceOnFailure: false,
    });
    expect(dry.dryRun).toBe(true);
    expect(dry.safeToSwitch).toBe(false);
    expect(dry.fenced).toBe(false);
    expect(dry.window?.fenced).toBe(false);
    expect(dry.window?.steps.map((s) => s.name)).toEqual(['drain', 'sequences', 'verify']);
    const before = written;
    await waitFor(() => written > before + 20, {
      what: 'blue still writable after the dry run',
      timeoutMs: 30_000,
    });
    expect((await blue.query('SHOW default_transaction_read_only')).rows[0]).toBeDefined();

    const report = await control.cutover({
      fence: true,
      timeoutMs: 60_000,
      verify: true,
      unfenceOnFailure: false,
    });
    expect(report.safeToSwitch, JSON.stringify(report.steps)).toBe(true);
    expect(report.window?.fenced).toBe(true);
    expect(report.window?.steps.map((s) => s.name)).toEqual(['fence', 'drain', 'sequences', 'verify']);
    const stepsMs = (report.window?.steps ?? []).reduce((sum, s) => sum + s.ms, 0);
    expect(report.window?.ms).toBeGreaterThanOrEqual(stepsMs);
    expect(report.verification, JSON.stringify(report.verify?.tables)).toMatchObject({
      kind: 'delta',
      beforeFence: { tables: [`public.${name}`] },
    });
    // The writes after the online pass are what the delta re-checked, not the whole table.
    const delta = report.verify?.tables[0];
    expect(delta?.checked).toBe('delta');
    expect(delta?.deltaKeys).toBeGreaterThan(0);
    expect(delta?.deltaKeys).toBeLessThan(ROWS + written);
    await load;
    const fresh: pg.Client = await sessionOn(url);
    const write = await fresh.query(`INSERT INTO ${name} VALUES (0, 'after')`).catch((e: unknown) => e);
    expect((write as { code?: string }).code).toBe('25006');
    // Green takes the application's writes now: nothing of online verify is left on it.
    expect(report.steps.at(-1)).toMatchObject({ name: 'release', ok: true });
    const triggers = await green.query(
      `SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname LIKE 'teal\\_changed\\_%'`,
      [`public.${name}`],
    );
    expect(triggers.rows).toEqual([]);
    const keys = await green.query('SELECT keys FROM teal.verify_changed WHERE green_table = $1', [
      `public.${name}`,
    ]);
    expect(keys.rows).toEqual([]);
  });

  test("teal run's background at verify.onlineRowsPerSecond: status shows the pass, and a round finds a row changed in green since", async () => {
    const { name, green, control } = await setUp('ov_bg', { verify: { onlineRowsPerSecond: 100_000 } });
    await waitFor(async () => ((await control.status()).onlineVerify?.tablesComplete ?? 0) >= 1, {
      what: 'a background pass complete',
      timeoutMs: 60_000,
    });
    expect((await control.status()).onlineVerify).toMatchObject({ tables: 1, mismatches: 0 });
    await green.query(`UPDATE ${name} SET v = 'behind teal' WHERE id = 99`);
    await waitFor(async () => ((await control.status()).onlineVerify?.mismatches ?? 0) === 1, {
      what: 'a background round finds the change',
      timeoutMs: 60_000,
    });
  });

  test('a key changed during a round, after its snapshot, is kept for the next round and the delta; what the round saw is pruned', async () => {
    // No pipeline: blue is not written, so green has always applied it (waitApplied has nothing to wait for).
    const name = uniqueName('ov_prune');
    const [blue, green, state, writer] = await Promise.all([
      pgClient(blueUrl()),
      pgClient(greenUrl()),
      pgClient(greenUrl()),
      pgClient(greenUrl()),
    ]);
    const config = controlConfig(name, blueUrl(), [`public.${name}`]);
    onTestFinished(async () => {
      await writer.query('ROLLBACK').catch(() => {});
      for (const db of [blue, green]) await db.query(`DROP TABLE IF EXISTS ${name}`);
      await green.query('DELETE FROM teal.verify_changed WHERE green_table = $1', [`public.${name}`]);
      for (const t of ['verify_chunk', 'verify_pass'])
        await green.query(`DELETE FROM teal.${t} WHERE pipeline = $1`, [config.kafka.topicPrefix]);
    });
    for (const db of [blue, green]) {
      await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text NOT NULL)`);
      await db.query(`INSERT INTO ${name} SELECT g, 'v' || g FROM generate_series(1, 500) g`);
    }
    const opts = {
      blueUrl: blueUrl(),
      greenUrl: greenUrl(),
      config,
      transforms: compileTransforms(config),
      rounds: true,
    };
    const deps = { state, waitApplied: async () => {} };
    const first = await verifyOnline(deps, opts);
    expect(first.ok, JSON.stringify(first.tables[0])).toBe(true);

    // Before the round: key 5 changed in green (the round re-checks it). Key 9's change is in
    // flight when the round takes its snapshot and commits while the round runs: below that
    // snapshot's xmax, yet not visible in it.
    await green.query(`UPDATE ${name} SET v = 'before the round' WHERE id = 5`);
    await writer.query('BEGIN');
    await writer.query(`UPDATE ${name} SET v = 'during the round' WHERE id = 9`);
    // A later xid that completes: the round's snapshot then has xmax above key 9's xid.
    await green.query('SELECT pg_current_xact_id()');
    let inFlight = true;
    const round = await verifyOnline(deps, {
      ...opts,
      onChunk: async () => {
        if (!inFlight) return;
        inFlight = false;
        await writer.query('COMMIT');
      },
    });
    expect(inFlight).toBe(false);
    expect(round.tables[0]).toMatchObject({ deltaKeys: 1, reason: expect.stringMatching(/^a round/) });
    expect(keysOf(round.tables[0].different)).toEqual(['5']);
    // Pruned: of the two statements recorded, only key 9's (not visible in the round's snapshot) is left.
    const left = await green.query(
      'SELECT DISTINCT k ->> 0 AS id FROM teal.verify_changed c, unnest(c.keys) k WHERE c.green_table = $1',
      [`public.${name}`],
    );
    expect(left.rows).toEqual([{ id: '9' }]);

    // A statement that touched no row records nothing (NULL keys would read as a TRUNCATE).
    await green.query(`UPDATE ${name} SET v = 'none' WHERE id < 0`);
    // Cutover's delta re-checks key 9 (and key 5, which the round left different) ...
    const delta = await verifyDelta(state, opts);
    expect(delta.tables[0]).toMatchObject({ checked: 'delta', deltaKeys: 2 });
    expect(keysOf(delta.tables[0].different).sort()).toEqual(['5', '9']);
    // ... and so does the next round.
    const next = await verifyOnline(deps, opts);
    expect(next.tables[0]).toMatchObject({ deltaKeys: 2, reason: expect.stringMatching(/^a round/) });
    expect(keysOf(next.tables[0].different).sort()).toEqual(['5', '9']);

    // A TRUNCATE in green since: the delta cannot vouch for the table, it is verified whole.
    await green.query(`TRUNCATE ${name}`);
    const whole = await verifyDelta(state, opts);
    expect(whole.tables[0]).toMatchObject({
      checked: 'full',
      reason: 'green table was truncated since the online pass',
      missingInGreen: expect.any(Array),
    });
  });
});
