import { parseLsn } from '@teal/change-event';
import type { ResolvedConfig } from '@teal/config';
import { Consumer } from '@teal/consumer';
import { build, TealControl } from '@teal/control';
import { TealError } from '@teal/errors';
import { Producer } from '@teal/producer';
import { createMetrics, waitFor } from '@teal/runtime';
import pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { controlConfig as configFor, expectCutoverDone } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, pgClient, uniqueName, withDatabase } from './support/env.ts';

// The control plane against real blue, green and Kafka, with the real producer and
// consumer in this process. Fence and cutover run in a blue database of their own, so that
// making it read-only and terminating its sessions never touches other tests' blue `app`.

/** A client that tolerates being terminated (fence, DROP DATABASE ... FORCE), closed when the test ends. */
async function client(url: string, applicationName?: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: applicationName });
  c.on('error', () => {});
  await c.connect();
  onTestFinished(() => c.end().catch(() => {}));
  return c;
}

async function dropSlot(config: ResolvedConfig) {
  const blue = await client(config.blue.url);
  await waitFor(
    async () => {
      const { rows } = await blue.query(
        `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`,
        [config.slot],
      );
      const left = await blue.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [config.slot]);
      return rows.length > 0 || left.rows.length === 0;
    },
    { what: `slot ${config.slot} released`, timeoutMs: 30_000 },
  );
}

/** Producer + consumer + control for one config, all stopped (and the slot dropped) when the test ends. */
async function pipeline(config: ResolvedConfig, opts: { consumer: boolean }) {
  const metrics = createMetrics();
  const producer = new Producer(config, { metrics });
  const consumer = opts.consumer ? new Consumer(config, { metrics }) : undefined;
  const control = new TealControl(config, { producer, consumer, metrics, pollMs: 100 });
  onTestFinished(async () => {
    await control.close();
    await consumer?.stop();
    await producer.stop();
    await dropSlot(config);
  });
  await producer.start();
  await consumer?.start();
  await waitFor(() => producer.status().state === 'streaming', {
    what: 'producer streaming',
    timeoutMs: 60_000,
  });
  return { producer, consumer, control, metrics };
}

async function currentLsn(client: pg.Client): Promise<bigint> {
  const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return parseLsn(rows[0].lsn);
}

describe('drain', () => {
  test('returns only after the rows written on blue are in green, with an LSN past them', async () => {
    const name = uniqueName('ctl_drain');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    await green.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    onTestFinished(async () => {
      await blue.query(`DROP TABLE IF EXISTS ${name}`);
      await blue.query(`DROP PUBLICATION IF EXISTS ${name}_pub`);
      await green.query(`DROP TABLE IF EXISTS ${name}`);
    });
    const config = configFor(name, blueUrl(), [`public.${name}`]);
    const { control, metrics } = await pipeline(config, { consumer: true });

    for (let i = 0; i < 20; i++) {
      await blue.query(
        `INSERT INTO ${name} SELECT g, 'v' || g FROM generate_series($1::int, $1::int + 9) g`,
        [i * 10 + 1],
      );
    }
    await blue.query(`UPDATE ${name} SET v = 'changed' WHERE id <= 5`);
    const endOfWrites = await currentLsn(blue);

    const app = build({ backend: control, host: '127.0.0.1', metrics });
    onTestFinished(() => app.close());
    const res = await app.inject({ method: 'POST', url: '/drain', payload: { timeoutMs: 60_000 } });
    expect(res.statusCode, res.body).toBe(200);
    const drained = res.json();
    expect(drained.drained).toBe(true);
    expect(drained.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(parseLsn(drained.lsn)).toBeGreaterThanOrEqual(endOfWrites);
    expect(parseLsn(drained.confirmedLsn)).toBeGreaterThanOrEqual(parseLsn(drained.lsn));

    // Read right after the drain returned, with no waiting: everything is already there.
    const count = await green.query<{ n: string; changed: string }>(
      `SELECT count(*)::text AS n, count(*) FILTER (WHERE v = 'changed')::text AS changed FROM ${name}`,
    );
    expect(count.rows[0]).toEqual({ n: '200', changed: '5' });

    const status = await control.status();
    expect(status.consumer.lagRecords).toBe(0);
    expect(status.consumer.partitions.every((p) => p.topic === `${name}_t.public.${name}`)).toBe(true);
    expect(status.slot?.exists).toBe(true);
    expect(status.state).toBe('streaming');
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^teal_state\{state="streaming"\} 1$/m);
  });

  test('times out with a 504 naming the partitions behind when no consumer runs', async () => {
    const name = uniqueName('ctl_behind');
    const blue = await pgClient(blueUrl());
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    onTestFinished(async () => {
      await blue.query(`DROP TABLE IF EXISTS ${name}`);
      await blue.query(`DROP PUBLICATION IF EXISTS ${name}_pub`);
    });
    const config = configFor(name, blueUrl(), [`public.${name}`]);
    const { control } = await pipeline(config, { consumer: false });
    await blue.query(`INSERT INTO ${name} SELECT g, 'x' FROM generate_series(1, 30) g`);

    const err = await control.drain({ timeoutMs: 4_000, fence: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TealError);
    const e = err as TealError;
    expect(e.code).toBe('TEAL_DRAIN_TIMEOUT');
    expect(e.status).toBe(504);
    expect(e.message).toMatch(/partition\(s\) not applied in green \(30 records/);
    const behind = e.details?.partitionsBehind as Array<{ topic: string; behind: number }>;
    expect(behind.every((p) => p.topic === `${name}_t.public.${name}`)).toBe(true);
    expect(behind.reduce((s, p) => s + p.behind, 0)).toBe(30);
  });

  test('times out naming the slot when no producer confirms it', async () => {
    const name = uniqueName('ctl_noprod');
    const blue = await pgClient(blueUrl());
    await blue.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [`${name}_slot`]);
    const config = configFor(name, blueUrl(), []);
    onTestFinished(() => dropSlot(config));
    const control = new TealControl(config, { pollMs: 100 });
    onTestFinished(() => control.close());
    await blue.query('SELECT pg_logical_emit_message(true, $1, $2)', ['app.test', 'move WAL']);
    const err = (await control
      .drain({ timeoutMs: 1_500, fence: false })
      .catch((e: unknown) => e)) as TealError;
    expect(err.code).toBe('TEAL_DRAIN_TIMEOUT');
    expect(err.message).toMatch(/bytes short of the target .*no producer is attached/);
    expect(err.details?.slotBehindBytes).toBeGreaterThan(0);
  });
});

describe('fence and cutover (in a blue database of their own)', () => {
  async function ownDatabase(name: string): Promise<string> {
    const admin = await pgClient(blueUrl());
    await admin.query(`CREATE DATABASE ${name}`);
    onTestFinished(async () => {
      const a = await client(blueUrl());
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    });
    return withDatabase(blueUrl(), name);
  }

  test('fence makes a blue write fail with 25006 and terminates open sessions; unfence undoes it', async () => {
    const name = uniqueName('ctl_fence');
    const url = await ownDatabase(name);
    const setup = await client(url);
    await setup.query('CREATE TABLE t (id int PRIMARY KEY)');
    const app = await client(url, 'shop');

    const control = new TealControl(configFor(name, url, []));
    onTestFinished(() => control.close());
    const fenced = await control.fence();
    // Both open sessions (setup, app) were terminated; teal's own are kept.
    expect(fenced).toMatchObject({ fenced: true, database: name, terminatedSessions: 2 });
    await expect(app.query('SELECT 1')).rejects.toThrow();

    const after = await client(url);
    const write = await after.query('INSERT INTO t VALUES (1)').catch((e: unknown) => e);
    expect((write as { code?: string }).code).toBe('25006');
    expect((await control.status()).fenced).toBe(true);

    await control.unfence();
    const again = await client(url);
    await again.query('INSERT INTO t VALUES (2)');
    expect((await control.status()).fenced).toBe(false);
  });

  test('cutover fences, drains, copies sequences (also through a table rename) and verifies', async () => {
    const name = uniqueName('ctl_cut');
    const url = await ownDatabase(name);
    const blue = await client(url, 'teal-test');
    const green = await pgClient(greenUrl());
    const plain = `${name}_plain`;
    const renamed = `${name}_old`;
    await blue.query(`CREATE TABLE ${plain} (id serial PRIMARY KEY, v text)`);
    await blue.query(
      `CREATE TABLE ${renamed} (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text)`,
    );
    await green.query(`CREATE TABLE ${plain} (id serial PRIMARY KEY, v text)`);
    await green.query(
      `CREATE TABLE ${name}_new (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text)`,
    );
    onTestFinished(async () => {
      await green.query(`DROP TABLE IF EXISTS ${plain}, ${name}_new`);
    });
    const config = configFor(name, url, [`public.${plain}`, `public.${renamed}`], {
      transforms: { [`public.${renamed}`]: { renameTo: `public.${name}_new` } },
    });
    const { control } = await pipeline(config, { consumer: true });

    await blue.query(`INSERT INTO ${plain} (v) SELECT 'p' || g FROM generate_series(1, 42) g`);
    await blue.query(`INSERT INTO ${renamed} (v) SELECT 'r' || g FROM generate_series(1, 7) g`);
    await blue.query(`SELECT setval(pg_get_serial_sequence('${renamed}', 'id'), 1000)`);
    onTestFinished(async () => {
      await control.unfence();
    });

    const report = await expectCutoverDone(control);
    expect(report.drainLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(report.sequences).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          blue: `public.${plain}_id_seq`,
          green: `public.${plain}_id_seq`,
          value: '42',
          ok: true,
        }),
        expect.objectContaining({
          blue: `public.${renamed}_id_seq`,
          green: `public.${name}_new_id_seq`,
          value: '1000',
        }),
      ]),
    );
    const seqs = await green.query<{ plain: string; renamed: string }>(
      `SELECT (SELECT last_value::text FROM ${plain}_id_seq) AS plain, (SELECT last_value::text FROM ${name}_new_id_seq) AS renamed`,
    );
    expect(seqs.rows[0]).toEqual({ plain: '42', renamed: '1000' });
    expect(await green.query(`SELECT count(*)::int AS n FROM ${name}_new`).then((r) => r.rows[0].n)).toBe(
      '7',
    );

    // Blue stays fenced after a successful cutover: a write from an application fails.
    const app = await client(url, 'shop');
    expect(
      await app.query(`INSERT INTO ${plain} (v) VALUES ('late')`).catch((e: { code?: string }) => e.code),
    ).toBe('25006');
    expect((await control.status()).state).toBe('drained');
  });
});
