import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { controlConfig, controlPipeline, tableOnBoth } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, pgClient, uniqueName } from './support/env.ts';

// Issue 12 (publications follow blue): a replicated table removed from teal's publication on
// blue (ALTER PUBLICATION ... DROP TABLE) had none of its changes streamed any more, and drain
// said drained. The catalog watch now adds it back, copies it again and says so as an error.

async function rows(db: pg.Client, table: string): Promise<string[]> {
  const r = await db.query<{ r: string }>(`SELECT (t.*)::text AS r FROM ${table} t ORDER BY 1`);
  return r.rows.map((x) => x.r);
}

describe('a replicated table dropped from the publication', () => {
  test('is added back and copied again; the gap is an error in the log', async () => {
    const name = uniqueName('rg_unpublished');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    await tableOnBoth(blue, green, name, 'id int PRIMARY KEY, v text');
    await blue.query(`INSERT INTO ${name} SELECT g, 'v' || g FROM generate_series(1, 10) g`);
    const logged: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(line) });
    const config = controlConfig(name, blueUrl(), [`public.${name}`]);
    const { control } = await controlPipeline(config, { producerDeps: { catalogPollMs: 200, logger } });
    await control.drain({ timeoutMs: 60_000, fence: false });
    await blue.query(`ALTER PUBLICATION ${config.publication} DROP TABLE ${name}`);
    await blue.query(`INSERT INTO ${name} VALUES (11, 'while unpublished')`);
    await blue.query(`UPDATE ${name} SET v = 'updated while unpublished' WHERE id = 1`);
    await waitFor(() => logged.some((l) => l.includes(`public.${name} was removed from publication`)), {
      what: 'the gap in the log',
    });
    await blue.query(`INSERT INTO ${name} VALUES (12, 'published again')`);
    const drained = await control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.drained).toBe(true);
    expect(await rows(green, name)).toEqual(await rows(blue, name));
  });
});
