import { waitFor } from '@teal/runtime';
import { describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, pgClient, uniqueName } from './support/env.ts';
import { tableAddedLater } from './support/table-added-later.ts';

// Regression (issue 13): an UPDATE that leaves a TOASTed value unchanged, committed between a
// chunk's read and its high watermark, made the chunk drop its copy of the row; the only event
// left was a partial update (no TOASTed value) of a row green never received, so the row was
// missing until its next full write. The update runs in the test hook between read and mark.
describe('regression: a TOAST-unchanged update inside a chunk window', () => {
  test('the row reaches the topic whole, with the update and its unchanged TOASTed value', async () => {
    const name = uniqueName('chunk_toast');
    const [first, later] = [`${name}_a`, `${name}_b`];
    const blue = await pgClient(blueUrl());
    await blue.query(`CREATE TABLE ${first} (id int PRIMARY KEY)`);
    await blue.query(`CREATE TABLE ${later} (id int PRIMARY KEY, big text NOT NULL, v int NOT NULL)`);
    onTestFinished(async () => {
      await blue.query(`DROP TABLE IF EXISTS ${first}, ${later}`);
    });
    await blue.query(`ALTER TABLE ${later} ALTER COLUMN big SET STORAGE EXTERNAL`);
    await blue.query(`INSERT INTO ${later} SELECT g, repeat('x', 20000), 0 FROM generate_series(1, 3) g`);
    const setup = await tableAddedLater(blueUrl(), name, first, later);

    let updated = false;
    const producer = setup.addLater({
      afterChunkRead: async (table) => {
        if (table !== `public.${later}` || updated) return;
        updated = true;
        await blue.query(`UPDATE ${later} SET v = 1 WHERE id = 2`);
      },
    });
    await producer.start();
    await waitFor(
      () => producer.status().snapshot.find((s) => s.table === `public.${later}`)?.state === 'done',
      {
        what: 'chunk snapshot of the table added later done',
        timeoutMs: 60_000,
      },
    );
    expect(updated).toBe(true);
    await setup.confirmedToNow();
    const replayed = await setup.replay();
    const summary = [...replayed.values()]
      .map((r) => ({ id: r.id, v: r.v, big: r.big?.length }))
      .sort((a, b) => Number(a.id) - Number(b.id));
    expect(summary).toEqual([
      { id: '1', v: '0', big: 20000 },
      { id: '2', v: '1', big: 20000 },
      { id: '3', v: '0', big: 20000 },
    ]);
  });
});
