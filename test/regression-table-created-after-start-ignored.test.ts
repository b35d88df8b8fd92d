import { resolveConfig } from '@teal/config';
import { TealError } from '@teal/errors';
import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { controlPipeline, ownBlueDatabase, sessionOn } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, kafkaBrokers, uniqueName } from './support/env.ts';

// Issue 12: with no `tables` in the config, a table created on blue after teal started was not
// in the FOR TABLE publication, so its rows never reached green, and drain said drained. Now
// the catalog watch adds it to the publication and snapshots it while the stream runs (no
// restart); a table that cannot be keyed is left out of the publication (blue would refuse its
// UPDATEs) until it has a key, and drain does not say drained meanwhile.

async function rows(db: pg.Client, table: string): Promise<string[]> {
  const r = await db.query<{ r: string }>(`SELECT (t.*)::text AS r FROM ${table} t ORDER BY 1`);
  return r.rows.map((x) => x.r);
}

describe("tables: 'all' follows blue", () => {
  test('a table created while streaming is added, snapshotted and streamed: green equals blue', async () => {
    const name = uniqueName('rg_created');
    // Databases of their own: `tables: 'all'` takes every table of blue.
    const blueDb = await ownBlueDatabase(blueUrl(), name);
    const greenDb = await ownBlueDatabase(greenUrl(), name);
    const blue = await sessionOn(blueDb);
    const green = await sessionOn(greenDb);
    for (const db of [blue, green]) await db.query('CREATE TABLE first (id int PRIMARY KEY, v text)');
    await blue.query("INSERT INTO first VALUES (1, 'one')");
    const config = resolveConfig(
      {
        slot: `${name}_slot`,
        publication: `${name}_pub`,
        kafka: { topicPrefix: `${name}_t`, partitions: 2 },
        heartbeatMs: 500,
        snapshot: { chunkRows: 10 },
      },
      {
        env: { TEAL_BLUE_URL: blueDb, TEAL_GREEN_URL: greenDb, TEAL_KAFKA_BROKERS: kafkaBrokers().join(',') },
      },
    );
    expect(config.tables).toBe('all');
    const logged: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(line) });
    const { control, producer } = await controlPipeline(config, {
      producerDeps: { catalogPollMs: 300, logger },
    });
    await control.drain({ timeoutMs: 60_000, fence: false });

    // Rows written before teal notices the table (in one transaction with its creation) and after.
    await green.query('CREATE TABLE later (id int PRIMARY KEY, v text, n numeric)');
    await blue.query('BEGIN');
    await blue.query('CREATE TABLE later (id int PRIMARY KEY, v text, n numeric)');
    await blue.query("INSERT INTO later SELECT g, 'before ' || g, g * 1.5 FROM generate_series(1, 95) g");
    await blue.query('COMMIT');
    await waitFor(
      () => producer.status().snapshot.find((s) => s.table === 'public.later')?.state === 'done',
      { what: 'the new table snapshotted', timeoutMs: 60_000 },
    );
    await blue.query("INSERT INTO later SELECT g, 'after ' || g, g FROM generate_series(96, 120) g");
    await blue.query("UPDATE later SET v = 'updated' WHERE id % 7 = 0");
    await blue.query('DELETE FROM later WHERE id % 11 = 0');
    await blue.query("UPDATE first SET v = 'still flowing' WHERE id = 1");
    const drained = await control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.drained).toBe(true);
    expect(await rows(green, 'later')).toEqual(await rows(blue, 'later'));
    expect(await rows(green, 'first')).toEqual(await rows(blue, 'first'));
    expect((await rows(green, 'later')).length).toBe(120 - 10);

    // A table without a key: not published (blue must keep accepting its UPDATEs), drain not drained.
    await green.query('CREATE TABLE keyless (id int NOT NULL, v text)');
    await blue.query('CREATE TABLE keyless (id int NOT NULL, v text)');
    await blue.query("INSERT INTO keyless VALUES (1, 'a'), (2, 'b')");
    await waitFor(() => logged.some((l) => l.includes('cannot be keyed') && l.includes('public.keyless')), {
      what: 'the keyless table refused in the log',
    });
    await blue.query("UPDATE keyless SET v = 'b2' WHERE id = 2");
    const published = await blue.query(
      'SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND tablename = $2',
      [config.publication, 'keyless'],
    );
    expect(published.rows).toHaveLength(0);
    const err = await control.drain({ timeoutMs: 2_000, fence: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TealError);
    expect((err as TealError).code).toBe('TEAL_DRAIN_TIMEOUT');
    expect((err as TealError).message).toContain('public.keyless');
    // Given a key, it is picked up without a restart.
    await blue.query('ALTER TABLE keyless ADD PRIMARY KEY (id)');
    await green.query('ALTER TABLE keyless ADD PRIMARY KEY (id)');
    await blue.query("INSERT INTO keyless VALUES (3, 'c')");
    await waitFor(
      () => producer.status().snapshot.find((s) => s.table === 'public.keyless')?.state === 'done',
      { what: 'the keyed table snapshotted', timeoutMs: 60_000 },
    );
    await blue.query("UPDATE keyless SET v = 'a2' WHERE id = 1");
    const again = await control.drain({ timeoutMs: 60_000, fence: false });
    expect(again.drained).toBe(true);
    expect(await rows(green, 'keyless')).toEqual(await rows(blue, 'keyless'));
  });
});
