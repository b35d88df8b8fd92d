import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { controlConfig, controlPipeline, tableOnBoth } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, pgClient, uniqueName } from './support/env.ts';

// Issue 12 (DDL while streaming): a configured table dropped and created again on blue is a new
// relation, in no publication, so none of its rows or changes were streamed, and drain said
// drained. The catalog watch now adopts it like a new table (copied, then streamed) and says,
// as an error, that green keeps the old table's rows (the drop is not in the stream).

async function rows(db: pg.Client, table: string): Promise<string[]> {
  const r = await db.query<{ r: string }>(`SELECT (t.*)::text AS r FROM ${table} t ORDER BY 1`);
  return r.rows.map((x) => x.r);
}

describe('a replicated table dropped and created again on blue', () => {
  test('the new table is copied and streamed; the old rows left in green are an error in the log', async () => {
    const name = uniqueName('rg_recreated');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    await tableOnBoth(blue, green, name, 'id int PRIMARY KEY, v text');
    await blue.query(`INSERT INTO ${name} VALUES (1, 'old')`);
    const logged: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(line) });
    const { control } = await controlPipeline(controlConfig(name, blueUrl(), [`public.${name}`]), {
      producerDeps: { catalogPollMs: 200, logger },
    });
    await control.drain({ timeoutMs: 60_000, fence: false });
    await blue.query(`DROP TABLE ${name}`);
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    await blue.query(`INSERT INTO ${name} VALUES (2, 'new before noticed')`);
    await waitFor(() => logged.some((l) => l.includes(`public.${name} was dropped and created again`)), {
      what: 'the new table adopted',
    });
    await blue.query(`INSERT INTO ${name} VALUES (3, 'new after')`);
    await blue.query(`UPDATE ${name} SET v = 'new, updated' WHERE id = 2`);
    const drained = await control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.drained).toBe(true);
    // The new table's rows, and the old row the log names (the drop is not in the stream).
    expect(await rows(green, name)).toEqual(['(1,old)', '(2,"new, updated")', '(3,"new after")']);
  });
});
