import { resolveConfig } from '@teal/config';
import { TealError } from '@teal/errors';
import { Producer } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import { describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// Start-up refusals: tables that cannot be keyed, and a slot teal had that is gone.
describe('producer start-up checks', () => {
  const config = (name: string, extra: Record<string, unknown>) =>
    resolveConfig(
      {
        slot: `${name}_slot`,
        publication: `${name}_pub`,
        kafka: { topicPrefix: `${name}_t`, partitions: 1 },
        ...extra,
      },
      {
        env: {
          TEAL_BLUE_URL: blueUrl(),
          TEAL_GREEN_URL: greenUrl(),
          TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
        },
      },
    );

  test('tables without a key are refused, every one named, with the three ways out; keyColumns with a unique index fix it', async () => {
    const name = uniqueName('prod_noid');
    const blue = await pgClient(blueUrl());
    await blue.query(`CREATE TABLE ${name}_a (x int NOT NULL, y text)`);
    await blue.query(`CREATE TABLE ${name}_b (x int)`);
    await blue.query(`CREATE UNIQUE INDEX ${name}_a_x ON ${name}_a (x)`);
    onTestFinished(async () => {
      await blue.query(`DROP PUBLICATION IF EXISTS ${name}_pub`);
    });
    const refused = new Producer(config(name, { tables: [`${name}_a`, `${name}_b`] }));
    const err = await refused.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    await refused.stop();
    expect(err).toBeInstanceOf(TealError);
    expect((err as TealError).code).toBe('TEAL_NO_REPLICA_IDENTITY');
    const message = (err as TealError).message;
    expect(message).toContain(`public.${name}_a`);
    expect(message).toContain(`public.${name}_b`);
    expect(message).toMatch(/primary key/);
    expect(message).toMatch(/REPLICA IDENTITY FULL/);
    expect(message).toMatch(/keyColumns/);

    // keyColumns over a unique NOT NULL index: teal sets REPLICA IDENTITY USING INDEX.
    await blue.query(`ALTER TABLE ${name}_b REPLICA IDENTITY FULL`);
    const ok = new Producer(
      config(name, { tables: [`${name}_a`, `${name}_b`], keyColumns: { [`${name}_a`]: ['x'] } }),
    );
    onTestFinished(async () => {
      await ok.stop();
      await blue.query('SELECT pg_drop_replication_slot($1)', [`${name}_slot`]);
    });
    await ok.start();
    const ident = await blue.query<{ r: string }>(
      `SELECT relreplident AS r FROM pg_class WHERE relname = $1`,
      [`${name}_a`],
    );
    expect(ident.rows[0].r).toBe('i');
  });

  test('a slot teal created that is now missing is a loud TEAL_SLOT_MISSING, never silently recreated', async () => {
    const name = uniqueName('prod_lost');
    const blue = await pgClient(blueUrl());
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY)`);
    onTestFinished(() => blue.query(`DROP PUBLICATION IF EXISTS ${name}_pub`).then(() => undefined));
    const first = new Producer(config(name, { tables: [name] }));
    await first.start();
    await waitFor(() => first.status().state === 'streaming', { what: 'streaming' });
    await first.stop();
    await blue.query('SELECT pg_drop_replication_slot($1)', [`${name}_slot`]);

    const second = new Producer(config(name, { tables: [name] }));
    const err = await second.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    await second.stop();
    expect((err as TealError).code).toBe('TEAL_SLOT_MISSING');
    expect((err as TealError).message).toContain(`${name}_slot`);
    expect((err as TealError).message).toMatch(/pg_drop_replication_slot|start over/);
    const slots = await blue.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [
      `${name}_slot`,
    ]);
    expect(slots.rows).toHaveLength(0);
  });
});
