import { waitFor } from '@teal/runtime';
import pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { type ScratchPostgres, startScratchPostgres } from '../soak/scratch-postgres.ts';
import { uniqueName } from './support/env.ts';
import { slotConfirmedToNow, tableAddedLater } from './support/table-added-later.ts';

// Regression (issue 13): a chunk read while streaming used a fresh snapshot after its low
// watermark. A commit is flushed (and decoded) before it becomes visible, and with synchronous
// replication it stays invisible until the standby answers: its update preceded the low
// watermark in the stream, so the chunk did not drop the key, and the chunk's older copy of the
// row was published after the update. Held open deterministically on a scratch cluster:
// synchronous_standby_names names a standby that does not exist, and only the writer's session
// waits for it (synchronous_commit = on there, 'local' for every other session).

interface Blue {
  url: string;
  blue: pg.Client;
  name: string;
  first: string;
  later: string;
  /** Starts `UPDATE later SET v = 1 WHERE id = 2`, committed locally and invisible until released. */
  holdUpdate(): Promise<{ release(): Promise<void> }>;
}

async function scratchBlue(): Promise<Blue> {
  let scratch: ScratchPostgres | undefined;
  onTestFinished(() => scratch?.destroy());
  scratch = await startScratchPostgres({
    synchronous_standby_names: "'nobody'",
    synchronous_commit: 'local',
  });
  const url = scratch.url;
  const name = uniqueName('chunk_vis');
  const [first, later] = [`${name}_a`, `${name}_b`];
  const blue = new pg.Client({ connectionString: url });
  const writer = new pg.Client({ connectionString: url });
  await blue.connect();
  await writer.connect();
  writer.on('error', () => {});
  onTestFinished(async () => {
    await writer.end().catch(() => {});
    await blue.end().catch(() => {});
  });
  await blue.query(`CREATE TABLE ${first} (id int PRIMARY KEY)`);
  await blue.query(`CREATE TABLE ${later} (id int PRIMARY KEY, v int NOT NULL)`);
  await blue.query(`INSERT INTO ${later} SELECT g, 0 FROM generate_series(1, 3) g`);
  await writer.query('SET synchronous_commit = on');
  return {
    url,
    blue,
    name,
    first,
    later,
    async holdUpdate() {
      const pid = (await writer.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      const update = writer.query(`UPDATE ${later} SET v = 1 WHERE id = 2`).catch(() => undefined);
      await waitFor(
        async () =>
          (
            await blue.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep'`, [
              pid,
            ])
          ).rowCount === 1,
        { what: 'the update committed locally and waiting, invisible, for the standby' },
      );
      return {
        async release() {
          // Cancelling the wait makes the local commit visible.
          await blue.query('SELECT pg_cancel_backend($1)', [pid]);
          await update;
        },
      };
    },
  };
}

const EXPECTED = [
  { id: '1', v: '0' },
  { id: '2', v: '1' },
  { id: '3', v: '0' },
];

describe('regression: a chunk read while a commit before it is still invisible', () => {
  test('the chunk does not publish its older copy of the row after the update', async () => {
    const b = await scratchBlue();
    const setup = await tableAddedLater(b.url, b.name, b.first, b.later);
    // The table is published before the held update, so the stream sends the update.
    await b.blue.query(`ALTER PUBLICATION ${b.name}_pub ADD TABLE ${b.later}`);
    const held = await b.holdUpdate();
    let readWhileInvisible: string | undefined;
    const producer = setup.addLater({
      afterChunkRead: async (table, rows) => {
        if (table !== `public.${b.later}` || readWhileInvisible !== undefined) return;
        readWhileInvisible = rows.find((r) => r.id === '2')?.v ?? 'missing';
        // The read is done: release the commit before the chunk's high watermark.
        await held.release();
      },
    });
    await producer.start();
    await waitFor(
      () => producer.status().snapshot.find((s) => s.table === `public.${b.later}`)?.state === 'done',
      {
        what: 'chunk snapshot of the table added later done',
        timeoutMs: 60_000,
      },
    );
    expect(readWhileInvisible, 'the chunk read did not miss the commit: the race was not held').toBe('0');
    await setup.confirmedToNow();
    const replayed = await setup.replay();
    expect(
      [...replayed.values()].map((r) => ({ id: r.id, v: r.v })).sort((x, y) => Number(x.id) - Number(y.id)),
    ).toEqual(EXPECTED);
  });

  test('a commit a previous run already streamed past, still invisible, is read again rather than lost', async () => {
    const b = await scratchBlue();
    let held: { release(): Promise<void> } | undefined;
    // The first run streams past the commit (its table is not configured yet) and stops.
    const setup = await tableAddedLater(b.url, b.name, b.first, b.later, async () => {
      held = await b.holdUpdate();
      await slotConfirmedToNow(b.url, `${b.name}_slot`);
    });
    const reads: string[] = [];
    const producer = setup.addLater({
      afterChunkRead: async (table, rows) => {
        if (table !== `public.${b.later}`) return;
        reads.push(rows.find((r) => r.id === '2')?.v ?? 'missing');
        if (reads.length === 1) await held?.release();
      },
    });
    await producer.start();
    await waitFor(
      () => producer.status().snapshot.find((s) => s.table === `public.${b.later}`)?.state === 'done',
      {
        what: 'chunk snapshot of the table added later done',
        timeoutMs: 60_000,
      },
    );
    // The first read missed the commit; the chunk waited for it to become visible and read again.
    expect(reads).toEqual(['0', '1']);
    await setup.confirmedToNow();
    const replayed = await setup.replay();
    expect(
      [...replayed.values()].map((r) => ({ id: r.id, v: r.v })).sort((x, y) => Number(x.id) - Number(y.id)),
    ).toEqual(EXPECTED);
  });
});
