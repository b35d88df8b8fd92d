import type { ReverseTable } from '@teal/config';
import { type CutoverReport, runCheck } from '@teal/control';
import type { TealError } from '@teal/errors';
import { KafkaClient } from '@teal/kafka';
import { readReverseState } from '@teal/postgres';
import { waitFor } from '@teal/runtime';
import { describe, expect, onTestFinished, test } from 'vitest';
import { createReverse } from '../services/cli/src/reverse.ts';
import { startScratchPostgres } from '../soak/scratch-postgres.ts';
import { controlConfig, controlPipeline, ownBlueDatabase, sessionOn } from './support/control-pipeline.ts';
import { blueUrl, kafkaBrokers, uniqueName } from './support/env.ts';

// Issue 17 from the control plane's side: `cutover --with-rollback` prepares the way back
// (the reverse publication and slot on green, recorded in green's teal.control) or refuses
// before the fence; `rollback` (in teal reverse's process, here in this one) switches back.
// Green is a database of its own on the blue cluster, which runs with wal_level = logical
// (the shared green does not until the environment restarts); the wal_level refusal uses a
// scratch cluster that runs with replica.

const BLUE_TABLE = `id bigserial PRIMARY KEY, name text NOT NULL, email text NOT NULL,
  legacy_code text NOT NULL DEFAULT 'legacy-default'`;
const GREEN_TABLE =
  'id bigserial PRIMARY KEY, full_name text NOT NULL, email text NOT NULL, email_domain text';

const transforms = {
  'public.users': {
    renameTo: 'public.members',
    renameColumns: { name: 'full_name' },
    dropColumns: ['legacy_code'],
    derive: {
      email_domain: (row: Readonly<Record<string, string | null>>) => row.email?.split('@')[1] ?? null,
    },
  },
};

/** Blue and green databases of the test's own, with the users table (blue) and members (green). */
async function databases(name: string, greenBase = blueUrl()) {
  const blue = await ownBlueDatabase(blueUrl(), `${name}_b`);
  const green = await ownBlueDatabase(greenBase, `${name}_g`);
  // Registered after the databases: runs before they are dropped (a slot keeps its database).
  onTestFinished(async () => {
    const c = await sessionOn(green);
    await c.query('SET default_transaction_read_only = off');
    await waitFor(
      async () => {
        await c.query(
          'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active',
        );
        return (
          (await c.query('SELECT 1 FROM pg_replication_slots WHERE database = current_database()')).rows
            .length === 0
        );
      },
      { what: 'the reverse slot dropped', timeoutMs: 30_000 },
    );
  });
  await (await sessionOn(blue)).query(`CREATE TABLE users (${BLUE_TABLE})`);
  await (await sessionOn(green)).query(`CREATE TABLE members (${GREEN_TABLE})`);
  return { blue, green };
}

async function readOnlyDefault(url: string): Promise<string> {
  const c = await sessionOn(url);
  return (await c.query<{ v: string }>('SELECT current_setting($1) AS v', ['default_transaction_read_only']))
    .rows[0].v;
}

/** Exactly these steps ran, in this order, and each passed (the report's details on failure). */
function expectStepsPassed(report: CutoverReport, names: CutoverReport['steps'][number]['name'][]): void {
  expect(
    report.steps.map((s) => [s.name, s.ok]),
    JSON.stringify(report.steps),
  ).toEqual(names.map((n) => [n, true]));
}

const cutoverWithRollback = {
  fence: true,
  verify: true,
  timeoutMs: 120_000,
  unfenceOnFailure: false,
  withRollback: true,
};

describe('cutover --with-rollback', () => {
  test('makes the reverse publication and slot on green, records them, and teal rollback switches back (blue sequence never moved backwards)', {
    timeout: 300_000,
  }, async () => {
    const name = uniqueName('rb_cut');
    const { blue, green } = await databases(name);
    const config = controlConfig(name, blue, ['public.users'], { transforms }, green);
    const { control, producer, consumer } = await controlPipeline(config);
    const b = await sessionOn(blue);
    await b.query(
      `INSERT INTO users (name, email, legacy_code) SELECT 'user ' || g, 'u' || g || '@x' || (g % 2) || '.org', 'L' || g FROM generate_series(1, 20) g`,
    );

    const report = await control.cutover(cutoverWithRollback);
    expectStepsPassed(report, [
      'fence',
      'drain',
      'sequences',
      'reverse-slot',
      'verify',
      'rollback',
      'release',
    ]);
    expect(report.safeToSwitch).toBe(true);
    const table: ReverseTable = {
      greenTable: 'public.members',
      blueTable: 'public.users',
      columns: { id: 'id', full_name: 'name', email: 'email' },
      notWrittenBack: ['email_domain'],
      blueOnly: ['legacy_code'],
      derivedBack: [],
    };
    expect(report.rollback).toEqual({
      slot: `${name}_slot_reverse`,
      publication: `${name}_pub_reverse`,
      lsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/),
      topicPrefix: `${name}_t_reverse`,
      tables: [table],
    });
    const lsn = report.rollback?.lsn;

    // On green: the slot (pgoutput, at the reported point), its publication, and the record.
    const g = await sessionOn(green);
    const slot = await g.query<{ plugin: string; confirmed: string }>(
      'SELECT plugin, confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()',
      [`${name}_slot_reverse`],
    );
    expect(slot.rows).toEqual([{ plugin: 'pgoutput', confirmed: lsn }]);
    const published = await g.query(
      'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1',
      [`${name}_pub_reverse`],
    );
    expect(published.rows).toEqual([{ schemaname: 'public', tablename: 'members' }]);
    const state = await readReverseState<ReverseTable>(g, config.kafka.topicPrefix);
    expect(state).toEqual({ ...report.rollback, createdAt: expect.any(String) });
    // From here on teal run (forward) must not start: it would stream the reverse apply's writes back.
    const check = await runCheck({ config, preflight: true });
    expect(check.findings.filter((f) => f.severity === 'block').map((f) => f.check)).toEqual([
      'reverse-recorded',
    ]);

    // teal run stops after the cutover (its producer would stream the reverse apply's writes
    // on blue back to green); the application writes on green; the way back streams them.
    await consumer.stop();
    await producer.stop();
    const reverse = await createReverse(config);
    onTestFinished(async () => {
      await reverse.control.close();
      await reverse.consumer.stop();
      await reverse.producer.stop();
      const kafka = new KafkaClient({ brokers: kafkaBrokers() });
      const admin = kafka.admin();
      await admin.deleteTopics(await admin.listTopics(`${name}_t_reverse.`)).catch(() => undefined);
      await kafka.close();
    });
    await reverse.producer.start();
    await reverse.consumer.start();
    const app = await sessionOn(green, 'shop');
    await app.query(
      `INSERT INTO members (full_name, email) VALUES ('new one', 'n@y.org'), ('new two', 'm@y.org')`,
    );
    await app.query(`UPDATE members SET full_name = 'renamed on green' WHERE id = 3`);
    await app.query('DELETE FROM members WHERE id = 4');
    // Blue's sequence ahead of green's (ids taken on blue after the forward copy): rollback keeps it.
    const admin = await sessionOn(blue);
    await admin.query('SET default_transaction_read_only = off');
    await admin.query(`SELECT setval('users_id_seq', 1000)`);

    const back = await reverse.control.rollback({ timeoutMs: 120_000 });
    expectStepsPassed(back, ['fence', 'drain', 'sequences', 'verify', 'unfence']);
    expect(back).toMatchObject({ direction: 'rollback', safeToSwitch: true, fenced: true });
    expect(back.sequences).toEqual([
      expect.objectContaining({
        green: 'public.users_id_seq',
        ok: true,
        note: expect.stringMatching(/^left at 1000/),
      }),
    ]);

    const rows = await (await sessionOn(blue)).query<{ id: string; name: string; legacy_code: string }>(
      'SELECT id::text, name, legacy_code FROM users WHERE id IN (3, 4, 21, 22) ORDER BY users.id',
    );
    expect(rows.rows).toEqual([
      { id: '3', name: 'renamed on green', legacy_code: 'L3' },
      { id: '21', name: 'new one', legacy_code: 'legacy-default' },
      { id: '22', name: 'new two', legacy_code: 'legacy-default' },
    ]);
    const seq = await (await sessionOn(blue)).query<{ v: string }>(
      'SELECT last_value::text AS v FROM users_id_seq',
    );
    expect(seq.rows).toEqual([{ v: '1000' }]);
    // Blue takes writes again, green is fenced.
    expect(await readOnlyDefault(blue)).toBe('off');
    expect(await readOnlyDefault(green)).toBe('on');
  });

  test('refuses before the fence a derive that replaced a blue column, naming the reverse entry to declare', {
    timeout: 300_000,
  }, async () => {
    const name = uniqueName('rb_inv');
    const { blue, green } = await databases(name);
    const replaced = {
      'public.users': {
        ...transforms['public.users'],
        derive: { email: (r: Readonly<Record<string, string | null>>) => r.email?.toLowerCase() ?? null },
      },
    };
    const config = controlConfig(name, blue, ['public.users'], { transforms: replaced }, green);
    const { control } = await controlPipeline(config);
    const err = (await control.cutover(cutoverWithRollback).catch((e: unknown) => e)) as TealError;
    expect(err.code).toBe('TEAL_ROLLBACK_NOT_POSSIBLE');
    expect(err.message).toContain('refused before fencing blue (nothing was changed)');
    expect(err.message).toMatch(
      /public\.users: column "email": green's "email" of public\.members is computed by derive "email"/,
    );
    expect(err.message).toContain('transforms["public.users"].reverse = { derive: { "email"');
    expect(await readOnlyDefault(blue)).toBe('off');
    const slots = await (await sessionOn(green)).query(
      'SELECT 1 FROM pg_replication_slots WHERE database = current_database()',
    );
    expect(slots.rows).toEqual([]);
  });

  test("refuses before the fence when green's wal_level is not logical; teal check warns, and blocks with --with-rollback", {
    timeout: 300_000,
  }, async () => {
    const scratch = await startScratchPostgres({ wal_level: 'replica' });
    onTestFinished(() => scratch.destroy());
    const name = uniqueName('rb_wal');
    const { blue, green } = await databases(name, scratch.url);
    const config = controlConfig(name, blue, ['public.users'], { transforms }, green);
    const { control } = await controlPipeline(config);
    const err = (await control.cutover(cutoverWithRollback).catch((e: unknown) => e)) as TealError;
    expect(err.code).toBe('TEAL_ROLLBACK_NOT_POSSIBLE');
    expect(err.message).toMatch(
      /green has wal_level = replica: the reverse slot needs logical; ALTER SYSTEM SET wal_level = logical/,
    );
    expect(await readOnlyDefault(blue)).toBe('off');

    const rollbackFindings = (r: Awaited<ReturnType<typeof runCheck>>) =>
      r.findings.filter((f) => f.check === 'rollback').map((f) => [f.severity, f.what]);
    const warned = await runCheck({ config });
    expect(rollbackFindings(warned)).toEqual([
      ['warn', 'green has wal_level = replica: the reverse slot needs logical'],
    ]);
    const blocked = await runCheck({ config, withRollback: true });
    expect(rollbackFindings(blocked)).toEqual([
      ['block', 'green has wal_level = replica: the reverse slot needs logical'],
    ]);
    expect(blocked.ok).toBe(false);
  });
});
