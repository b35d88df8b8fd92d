import { waitFor } from '@teal/runtime';
import { describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, greenUrl, pgClient, uniqueName } from './support/env.ts';
import { startPipeline } from './support/pipeline.ts';

// Regression: an UPDATE that changed the primary key and left a TOASTed value unchanged
// became delete(old) + insert(new) with the big value marked "unchanged" — blue does not
// send it — so green got no row for the new key (the partial insert had nothing to update).
describe('regression: key change with an unchanged TOAST value', () => {
  test('the new key gets the old TOASTed value; a later move or delete still wins', async () => {
    const name = uniqueName('keytoast');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    for (const c of [blue, green])
      await c.query(`CREATE TABLE ${name} (id int PRIMARY KEY, big text NOT NULL, v int)`);
    onTestFinished(async () => {
      await blue.query(`DROP TABLE IF EXISTS ${name}`);
      await green.query(`DROP TABLE IF EXISTS ${name}`);
    });
    // Random text does not compress, so it is stored out of line (TOAST).
    const big = Array.from({ length: 3000 }, (_, i) => ((i * 2654435761) % 4294967296).toString(36)).join('');
    await startPipeline(name, [`public.${name}`]);

    await blue.query(`INSERT INTO ${name} VALUES (1, $1, 0), (10, $1, 0), (20, $1, 0)`, [big]);
    await blue.query(`UPDATE ${name} SET id = 2, v = 1 WHERE id = 1`); // big unchanged
    await blue.query(`UPDATE ${name} SET id = 11 WHERE id = 10`);
    await blue.query(`UPDATE ${name} SET id = 12 WHERE id = 11`); // moved again before teal reads blue
    await blue.query(`UPDATE ${name} SET id = 21 WHERE id = 20`);
    await blue.query(`DELETE FROM ${name} WHERE id = 21`); // gone again

    const dump = async (c: typeof blue) =>
      (await c.query(`SELECT id, md5(big) AS big, v FROM ${name} ORDER BY id`)).rows;
    const expected = await dump(blue);
    expect(expected.map((r) => r.id)).toEqual(['2', '12']);
    const got = await waitFor(
      async () => {
        const rows = await dump(green);
        return JSON.stringify(rows) === JSON.stringify(expected) ? rows : undefined;
      },
      { what: 'green equal to blue after key changes', timeoutMs: 60_000 },
    ).catch(async (err) => {
      throw new Error(
        `${err.message}: green has ${JSON.stringify(await dump(green))}, blue ${JSON.stringify(expected)}`,
      );
    });
    expect(got).toEqual(expected);
  });
});
