import { tmpdir } from 'node:os';
import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { startScratchPostgres } from '../soak/scratch-postgres.ts';
import { blueUrl, freePort, kafkaBrokers, uniqueName, withDatabase } from './support/env.ts';
import {
  expectBlueHasGreensRows,
  forwardAndCutover,
  greenWorkload,
  rollbackSetup,
  status,
  streaming,
  teal,
  tealCommand,
} from './support/rollback.ts';
import { spawnTeal, type TealChild } from './support/teal-child.ts';

// Issue 17, "Done when": forward with a table rename, a column rename, a dropped column and a
// derived column; cutover with rollback; the application writes on green; teal reverse
// streams it back; teal rollback fences green, drains, copies sequences, verifies, unfences
// blue. An independent digest in SQL on both sides shows blue holds every row green had.

describe('rollback end to end', () => {
  test('forward, cutover --with-rollback, writes on green, teal reverse, teal rollback: blue has every write', async () => {
    const children: TealChild[] = [];
    const s = await rollbackSetup('rv_e2e', children);
    const { report, legacy } = await forwardAndCutover(s, children);
    const rollback = report.rollback as { slot: string; publication: string };
    expect(rollback.slot).toBe(`${s.name}_reverse`);

    // Without the reverse pipeline prepared for this prefix, teal reverse refuses (another prefix).
    const other = await tealCommand(
      { ...s, env: { ...s.env, TEAL_TOPIC_PREFIX: `${s.name}_other`, TEAL_API_PORT: '1' } },
      ['reverse'],
      children,
      60_000,
    );
    expect(other.code).toBe(1);
    expect(other.output).toContain('run teal cutover --with-rollback first');

    const reverse = teal(s, ['reverse'], children);
    const first = await streaming(s, reverse, 'teal reverse');
    expect(first.direction).toBe('reverse');
    const green = await s.connect('green');
    for (let round = 1; round <= 5; round++) await greenWorkload(green, round);

    // Once green's writes are applied to blue, the reverse process's counters say so, labelled.
    await waitFor(
      async () =>
        /teal_events_applied_total\{[^}]*direction="reverse"/.test(
          await (await fetch(`${s.apiUrl}/metrics`)).text(),
        ) || undefined,
      { what: 'reverse metrics with direction="reverse"', timeoutMs: 60_000 },
    );

    const back = await tealCommand(s, ['rollback', '--json'], children);
    expect(back.code, back.output).toBe(0);
    const rolled = JSON.parse(back.output.slice(back.output.indexOf('{'))) as { safeToSwitch?: boolean };
    expect(rolled.safeToSwitch, back.output).toBe(true);
    expect((await status(s))?.direction).toBe('reverse');
    await reverse.stop();
    expect(reverse.proc.exitCode, reverse.output()).toBe(0);
    // Blue is the application's again: a second teal reverse refuses to write into it.
    const again = await tealCommand(s, ['reverse'], children, 60_000);
    expect(again.code, again.output).toBe(1);
    expect(again.output).toContain('blue is not fenced');

    await expectBlueHasGreensRows(s, legacy);
  }, 300_000);

  test('npm run demo -- --rollback, smaller: the summary says blue has every write green took', async () => {
    // Databases of its own (the demo fences both); green a scratch cluster with wal_level = logical.
    const green = await startScratchPostgres();
    const name = uniqueName('rv_demo');
    const admin = new pg.Client({ connectionString: blueUrl() });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    const greenAdmin = new pg.Client({ connectionString: green.url });
    await greenAdmin.connect();
    await greenAdmin.query(`CREATE DATABASE ${name}`);
    await greenAdmin.end();
    onTestFinished(async () => {
      await admin.query(
        'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active',
        [name],
      );
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
      green.destroy();
      const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: name });
      const topics = kafka.admin();
      await topics.deleteTopics(await topics.listTopics(name)).catch(() => {});
      await topics.close();
      await kafka.close();
    });
    const args = ['demo', '--rollback', '--users', '2000', '--orders', '6000', '--workload-seconds', '3'];
    const demo = spawnTeal([...args, '--green-writes-seconds', '3'], {
      cwd: tmpdir(),
      dropEnv: ['TEAL_'],
      env: {
        TEAL_BLUE_URL: withDatabase(blueUrl(), name),
        TEAL_GREEN_URL: withDatabase(green.url, name),
        TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
        TEAL_API_PORT: String(await freePort()),
        TEAL_SLOT: name,
        TEAL_PUBLICATION: name,
        TEAL_TOPIC_PREFIX: name,
      },
    });
    const code = await demo.exited;
    const output = demo.output();
    expect(code, output).toBe(0);
    expect(output).toMatch(
      /teal reverse is running[\s\S]*writes: \d+ transactions on green[\s\S]*== the way back/,
    );
    expect(output).toMatch(/^ {2}verify +OK: blue equals green \(inverse mapping\)$/m);
    expect(output).toMatch(/^ {2}digest users +blue (\d+) rows, green \1 rows: identical/m);
    expect(output).toMatch(/^ {2}digest orders +blue (\d+) rows, green \1 rows: identical/m);
    expect(output).toMatch(/^ {2}blue has every write +yes/m);
    // Counted here too, independently of the demo's own digest: blue has green's rows.
    const count = async (url: string) => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        return (
          await c.query(
            'SELECT (SELECT count(*) FROM users)::int AS u, (SELECT count(*) FROM orders)::int AS o',
          )
        ).rows[0];
      } finally {
        await c.end();
      }
    };
    const inGreen = await count(withDatabase(green.url, name));
    expect(await count(withDatabase(blueUrl(), name))).toEqual(inGreen);
    expect(inGreen.u).toBeGreaterThan(2000);
  }, 300_000);
});
