import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLsn } from '@teal/change-event';
import { KafkaClient } from '@teal/kafka';
import { decodeAll, TopicReader } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// kill -9 of the producer process at random moments of a write loop: after each restart
// every committed change is in Kafka at least once, and the slot was never confirmed past
// a commit Kafka did not hold. The kills come after the initial snapshot is done: a new slot
// starts confirmed at its consistent point, before the snapshot's rows are in Kafka (a kill
// during the snapshot is resumed from green's snapshot progress; the last check covers it).
describe('producer crash safety', () => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-producer-crash-test' });
  afterAll(() => kafka.close());

  test('kill -9 at random points loses no committed change and never over-confirms the slot', async () => {
    const name = uniqueName('prod_crash');
    const prefix = `${name}_t`;
    const slot = `${name}_slot`;
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    const writer = await pgClient(blueUrl());
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    const dir = mkdtempSync(join(tmpdir(), 'teal-crash-'));
    const configPath = join(dir, 'teal.config.ts');
    writeFileSync(
      configPath,
      `export default ${JSON.stringify({
        tables: [`public.${name}`],
        slot,
        publication: `${name}_pub`,
        kafka: { topicPrefix: prefix, partitions: 2 },
        heartbeatMs: 300,
      })};\n`,
    );
    const env = {
      ...process.env,
      TEAL_BLUE_URL: blueUrl(),
      TEAL_GREEN_URL: greenUrl(),
      TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
      TEAL_LOG_LEVEL: 'warn',
    };
    let child: ChildProcess | undefined;
    const startChild = () => {
      child = spawn(
        process.execPath,
        ['--import', 'tsx', 'services/producer/src/main.ts', '--config', configPath],
        {
          env,
          stdio: ['ignore', 'ignore', 'inherit'],
        },
      );
    };
    onTestFinished(async () => {
      child?.kill('SIGKILL');
      await waitFor(async () => {
        const r = await blue.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [
          slot,
        ]);
        return r.rows.length === 0;
      });
      await blue.query('SELECT pg_drop_replication_slot($1)', [slot]);
      await blue.query(`DROP PUBLICATION IF EXISTS ${name}_pub`);
    });
    const slotActive = async () =>
      (await blue.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [slot])).rows
        .length > 0;

    const committed: Array<{ id: number; lsnAfter: bigint }> = [];
    let nextId = 1;
    let writing = true;
    const writes = (async () => {
      while (writing) {
        await writer.query(`INSERT INTO ${name} VALUES ($1, 'v')`, [nextId]);
        const r = await writer.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l');
        committed.push({ id: nextId, lsnAfter: parseLsn(r.rows[0].l) });
        nextId++;
      }
    })();

    const topic = `${prefix}.public.${name}`;
    startChild();
    await waitFor(slotActive, { what: 'producer streaming', timeoutMs: 60_000 });
    await waitFor(
      async () =>
        (
          await green
            .query(
              `SELECT 1 FROM teal.snapshot_progress WHERE schema = 'public' AND "table" = $1 AND state = 'done'`,
              [name],
            )
            .catch(() => ({ rowCount: 0 }))
        ).rowCount === 1,
      { what: 'initial snapshot done', timeoutMs: 60_000 },
    );
    const reader = new TopicReader(kafka, [topic]);
    await reader.start();
    onTestFinished(() => reader.stop());

    for (let round = 0; round < 3; round++) {
      const before = committed.length;
      await waitFor(() => committed.length >= before + 20 + Math.floor(Math.random() * 80), {
        what: 'writes',
      });
      child!.kill('SIGKILL');
      await waitFor(async () => !(await slotActive()), { what: 'slot released' });
      // The producer is dead: whatever the slot confirmed must already be in Kafka.
      const c = await blue.query<{ c: string }>(
        'SELECT confirmed_flush_lsn::text AS c FROM pg_replication_slots WHERE slot_name = $1',
        [slot],
      );
      const confirmed = parseLsn(c.rows[0].c);
      const mustHave = committed.filter((w) => w.lsnAfter <= confirmed).map((w) => String(w.id));
      const ends = await (async () => {
        const admin = kafka.admin();
        try {
          return await admin.logEndOffsets(topic);
        } finally {
          await admin.close();
        }
      })();
      await waitFor(
        () =>
          ends.every(
            (e) => reader.records.filter((r) => r.partition === e.partition).length >= Number(e.end),
          ),
        { what: 'reader caught up' },
      );
      const inKafka = new Set((await decodeAll(kafka, prefix, reader.records)).map((d) => d.event.key.id));
      expect(mustHave.filter((id) => !inKafka.has(id))).toEqual([]);
      startChild();
      await waitFor(slotActive, { what: 'producer restarted', timeoutMs: 60_000 });
    }
    writing = false;
    await writes;
    const all = committed.map((w) => String(w.id));
    await waitFor(
      async () => {
        const seen = new Set((await decodeAll(kafka, prefix, reader.records)).map((d) => d.event.key.id));
        return all.every((id) => seen.has(id));
      },
      { what: 'every committed row in Kafka', timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(committed.length).toBeGreaterThan(60);
  });
});
