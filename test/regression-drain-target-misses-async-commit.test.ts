import { parseLsn } from '@teal/change-event';
import { describe, expect, onTestFinished, test } from 'vitest';
import { startScratchPostgres } from '../soak/scratch-postgres.ts';
import { controlConfig, controlPipeline, sessionOn, tableOnBoth } from './support/control-pipeline.ts';
import { greenUrl, pgClient, uniqueName } from './support/env.ts';

// Issue 13, item 5: drain's target was pg_current_wal_lsn(), the WAL *write* position. Under
// synchronous_commit = off a commit is acknowledged once its record is in the WAL buffers,
// before it is written, so the target could lie before a commit the client already had, and
// drain returned with that row not in green. The target is now pg_current_wal_insert_lsn().
// Blue is a scratch cluster whose WAL writer waits 10 s between rounds, so that an
// asynchronous commit stays unwritten for a while (on the shared blue it is written within
// 200 ms, and other tests' commits flush it sooner).

describe('drain after an asynchronous commit', () => {
  test('the target covers a commit acknowledged under synchronous_commit = off, and its row is in green', async () => {
    const scratch = await startScratchPostgres({ wal_writer_delay: "'10s'" });
    onTestFinished(() => scratch.destroy());
    const name = uniqueName('rg_drain_async');
    const setup = await sessionOn(scratch.url);
    const green = await pgClient(greenUrl());
    await tableOnBoth(setup, green, name, 'id int PRIMARY KEY, v text');
    const config = controlConfig(name, scratch.url, [`public.${name}`]);
    const { control } = await controlPipeline(config);

    const app = await sessionOn(scratch.url, 'shop');
    await app.query('SET synchronous_commit = off');
    await app.query(`INSERT INTO ${name} VALUES (1, 'acknowledged before it was written')`);
    // Past the commit record the client just had acknowledged.
    const { rows: ack } = await app.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');

    const drained = await control.drain({ timeoutMs: 60_000, fence: false });
    expect(parseLsn(drained.lsn)).toBeGreaterThanOrEqual(parseLsn(ack[0].lsn));
    const { rows } = await green.query<{ v: string }>(`SELECT v FROM ${name} WHERE id = 1`);
    expect(rows).toEqual([{ v: 'acknowledged before it was written' }]);
  });
});
