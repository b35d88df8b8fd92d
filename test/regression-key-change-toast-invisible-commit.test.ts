import { parseLsn } from '@teal/change-event';
import { resolveConfig } from '@teal/config';
import { KafkaClient } from '@teal/kafka';
import { decodeAll, Producer, TopicReader } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { type ScratchPostgres, startScratchPostgres } from '../soak/scratch-postgres.ts';
import { greenUrl, kafkaBrokers, uniqueName } from './support/env.ts';

// Regression (found by the soak: 12 of 434 key changes lost under load): the producer
// completes a key change whose TOASTed value blue left unchanged by reading blue's current
// row (461f186). A logical walsender sends a commit as soon as its WAL is flushed, which is
// *before* the committing backend makes the transaction visible; reading blue in that window
// finds no row, and the producer drops the insert of the new key for good.
//
// The window is held open deterministically on a scratch cluster (never the shared blue):
// synchronous_standby_names names a standby that does not exist, so the commit is flushed
// (and decoded) but stays invisible until the test cancels the wait.
describe('regression: key change with unchanged TOAST, read while the commit is not yet visible', () => {
  test('the new key reaches Kafka with its TOASTed value', async () => {
    let scratch: ScratchPostgres | undefined;
    onTestFinished(() => scratch?.destroy());
    scratch = await startScratchPostgres();
    const name = uniqueName('keytoast_vis');
    const blue = new pg.Client({ connectionString: scratch.url });
    const writer = new pg.Client({ connectionString: scratch.url });
    await blue.connect();
    await writer.connect();
    writer.on('error', () => {});
    onTestFinished(async () => {
      await writer.end().catch(() => {});
      await blue.end().catch(() => {});
    });
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY, big text NOT NULL, v int)`);
    await blue.query(`ALTER TABLE ${name} ALTER COLUMN big SET STORAGE EXTERNAL`);
    const big = 'x'.repeat(20_000);
    await blue.query(`INSERT INTO ${name} VALUES (1, $1, 0)`, [big]);

    const config = resolveConfig(
      {
        tables: [`public.${name}`],
        slot: name,
        publication: name,
        kafka: { topicPrefix: name, partitions: 1 },
        heartbeatMs: 300,
      },
      {
        env: {
          TEAL_BLUE_URL: scratch.url,
          TEAL_GREEN_URL: greenUrl(),
          TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
        },
      },
    );
    const producer = new Producer(config);
    const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: name });
    onTestFinished(async () => {
      await producer.stop();
      const admin = kafka.admin();
      await admin.deleteTopics(await admin.listTopics(`${name}.`)).catch(() => {});
      await admin.close();
      await kafka.close();
      const green = new pg.Client({ connectionString: greenUrl() });
      await green.connect();
      await green.query('DELETE FROM teal.control WHERE key = $1', [`slot:${name}`]);
      await green.query('DELETE FROM teal.snapshot_progress WHERE "table" = $1', [name]);
      await green.end();
    });
    await producer.start();
    await waitFor(() => producer.status().state === 'streaming', { what: 'streaming', timeoutMs: 60_000 });

    // From now on every commit is flushed but waits (invisible) for a standby that never answers.
    await blue.query(`ALTER SYSTEM SET synchronous_standby_names = 'nobody'`);
    await blue.query('SELECT pg_reload_conf()');
    // The reload reaches each backend asynchronously, and one idle in a read applies it only
    // after the command it is reading: wait until the writer's own session has it, or its
    // UPDATE may commit without waiting (this raced: 3 failures in 4 runs on a busy machine).
    await waitFor(
      async () =>
        (await writer.query<{ s: string }>('SELECT current_setting($1) AS s', ['synchronous_standby_names']))
          .rows[0].s === 'nobody',
      { what: "the writer's session to apply synchronous_standby_names" },
    );
    const writerPid = (await writer.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    const update = writer.query(`UPDATE ${name} SET id = 2, v = 1 WHERE id = 1`).catch(() => undefined);
    await waitFor(
      async () =>
        (
          await blue.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep'`, [
            writerPid,
          ])
        ).rowCount === 1,
      { what: 'the key change committed locally and waiting for the standby' },
    );
    const commitLsn = parseLsn(
      (await blue.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l,
    );
    // The bug: the producer decodes the commit, reads no row, drops the insert and confirms
    // past it. A fixed producer waits for the commit to become visible, so the slot stays
    // behind until the observation window ends; either way the commit is then released.
    await waitFor(
      async () => {
        const r = await blue.query<{ c: string | null }>(
          'SELECT confirmed_flush_lsn::text AS c FROM pg_replication_slots WHERE slot_name = $1',
          [name],
        );
        return r.rows[0]?.c != null && parseLsn(r.rows[0].c) >= commitLsn;
      },
      { what: 'slot confirmed past the invisible commit', timeoutMs: 10_000 },
    ).catch(() => undefined);
    await blue.query(`ALTER SYSTEM RESET synchronous_standby_names`);
    await blue.query('SELECT pg_reload_conf()');
    await blue.query('SELECT pg_cancel_backend($1)', [writerPid]);
    await update;
    expect((await blue.query(`SELECT id, length(big) AS n FROM ${name}`)).rows).toEqual([
      { id: 2, n: 20_000 },
    ]);

    const topic = `${name}.public.${name}`;
    const reader = new TopicReader(kafka, [topic]);
    await reader.start();
    onTestFinished(() => reader.stop());
    const inserted = await waitFor(
      async () => {
        const events = await decodeAll(kafka, name, reader.records);
        return events.find((e) => e.event.op === 'c' && e.event.key.id === '2');
      },
      { what: 'insert of the new key 2 in Kafka', timeoutMs: 30_000 },
    ).catch(() => undefined);
    expect(inserted, 'the insert of key 2 never reached Kafka: the key change lost its row').toBeDefined();
    expect(inserted?.event.after?.big?.length).toBe(20_000);
  });
});
