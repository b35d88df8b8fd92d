import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { portOf, terminateSessions } from '../soak/faults.ts';
import { TealChild } from '../soak/processes.ts';
import { ROOT } from '../soak/soak.ts';
import { compareTable } from '../soak/tables.ts';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// Regression (found by the 600 s soak: 2 of 4 green-only terminates): the consumer's green
// client is checked out of the pool for a whole apply transaction; a session ended by green
// (57P01, a restart, a failover) *between* two statements of it was emitted as an 'error'
// event with no listener, and Node ended the consumer process ("Unhandled 'error' event").
// The supervisor restarted it, but the group then waited for the dead member's session
// timeout: ~31 s without applying. Two tables, multi-statement batches, and green sessions
// ended every few ms make the window likely.
describe('regression: consumer survives green sessions ended mid-transaction', () => {
  test('no exit of the consumer, green catches up', { timeout: 240_000 }, async () => {
    const name = uniqueName('green_term');
    const tables = [`${name}_a`, `${name}_b`];
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    for (const db of [blue, green])
      for (const t of tables)
        await db.query(`CREATE TABLE ${t} (id int PRIMARY KEY, n int NOT NULL, v text)`);
    for (const t of tables)
      await blue.query(`INSERT INTO ${t} SELECT g, 0, 'x' FROM generate_series(1, 200) g`);
    const dir = mkdtempSync(path.join(tmpdir(), `teal-${name}-`));
    const configPath = path.join(dir, 'teal.config.ts');
    writeFileSync(
      configPath,
      `export default ${JSON.stringify({
        tables: tables.map((t) => `public.${t}`),
        slot: name,
        publication: name,
        kafka: { topicPrefix: name, partitions: 2 },
        heartbeatMs: 300,
        apply: { batchSize: 50 },
      })};\n`,
    );
    const env = {
      ...process.env,
      TEAL_BLUE_URL: blueUrl(),
      TEAL_GREEN_URL: greenUrl(),
      TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
      TEAL_LOG_LEVEL: 'warn',
    };
    const child = (role: string) =>
      new TealChild(
        role,
        [`services/${role}/src/main.ts`, '--config', configPath],
        env,
        path.join(dir, `${role}.log`),
        ROOT,
        undefined,
      );
    const producer = child('producer');
    const consumer = child('consumer');
    onTestFinished(async () => {
      await Promise.all([producer.stop(), consumer.stop()]);
      await blue.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [
        name,
      ]);
      await blue.query(`DROP PUBLICATION IF EXISTS ${name}`);
      for (const db of [blue, green]) await db.query(`DROP TABLE IF EXISTS ${tables.join(', ')}`);
      await green.query('DELETE FROM teal.control WHERE key = $1', [`slot:${name}`]);
      await green.query('DELETE FROM teal.snapshot_progress WHERE starts_with("table", $1)', [name]);
      await green.query('DELETE FROM teal.applied_position WHERE starts_with(topic, $1)', [`${name}.`]);
      const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: name });
      const admin = kafka.admin();
      await admin.deleteTopics(await admin.listTopics(`${name}.`)).catch(() => {});
      await admin.close();
      await kafka.close();
    });
    producer.start();
    consumer.start();
    await waitFor(
      async () => (await green.query(`SELECT 1 FROM ${tables[1]} WHERE id = 200`)).rowCount === 1,
      {
        what: 'snapshot applied',
        timeoutMs: 90_000,
      },
    );

    const writer = new pg.Client({ connectionString: blueUrl() });
    await writer.connect();
    onTestFinished(() => writer.end());
    const greenAdmin = await pgClient(greenUrl());
    let writing = true;
    const writes = (async () => {
      while (writing) {
        await writer.query(
          `BEGIN; UPDATE ${tables[0]} SET n = n + 1 WHERE id % 7 = ${Math.floor(Math.random() * 7)};
           UPDATE ${tables[1]} SET n = n + 1 WHERE id % 7 = ${Math.floor(Math.random() * 7)}; COMMIT`,
        );
      }
    })();
    let ended = 0;
    const until = Date.now() + 20_000;
    while (Date.now() < until && consumer.running)
      ended += await terminateSessions(greenAdmin, portOf(greenUrl()), [consumer]);
    writing = false;
    await writes;
    expect(ended).toBeGreaterThan(0);
    expect(
      consumer.unexpectedExits.map((e) => e.logTail),
      'the consumer process ended itself',
    ).toEqual([]);
    for (const t of tables)
      await waitFor(
        async () => {
          const c = await compareTable(blue, green, t, ['id']);
          return c.blue.md5 === c.green.md5;
        },
        { what: `${t}: green equal to blue`, timeoutMs: 90_000 },
      );
  });
});
