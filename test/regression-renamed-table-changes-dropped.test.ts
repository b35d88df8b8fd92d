import { TealError } from '@teal/errors';
import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { controlConfig, controlPipeline } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, pgClient, uniqueName } from './support/env.ts';

// Issue 12: after `ALTER TABLE ... RENAME` on blue while teal streamed, pgoutput named the
// table's changes after its new name, which teal did not replicate, so every change of it was
// dropped, and drain said drained. Now the producer stops before the first change under the
// new name with TEAL_TABLE_RENAMED (old and new name, what to do); after the operator's fix
// (green renamed, `tables` changed) a restart loses nothing.

async function rows(db: pg.Client, table: string): Promise<string[]> {
  const r = await db.query<{ r: string }>(`SELECT (t.*)::text AS r FROM ${table} t ORDER BY 1`);
  return r.rows.map((x) => x.r);
}

describe('a table renamed on blue while streaming', () => {
  test('stops the producer loudly at the first change under the new name; a restart after the fix loses nothing', async () => {
    const name = uniqueName('rg_renamed');
    const renamed = `${name}_new`;
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    for (const db of [blue, green]) {
      await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
      onTestFinished(async () => {
        await db.query(`DROP TABLE IF EXISTS ${name}, ${renamed}`);
      });
    }
    await blue.query(`INSERT INTO ${name} SELECT g, 'v' || g FROM generate_series(1, 20) g`);
    // The catalog watch polls rarely here: the stream itself meets the rename first.
    const config = controlConfig(name, blueUrl(), [`public.${name}`]);
    const first = await controlPipeline(config, { producerDeps: { catalogPollMs: 600_000 } });
    await blue.query(`UPDATE ${name} SET v = 'before the rename' WHERE id = 1`);
    await first.control.drain({ timeoutMs: 60_000, fence: false });

    await blue.query('BEGIN');
    await blue.query(`ALTER TABLE ${name} RENAME TO ${renamed}`);
    await blue.query(`INSERT INTO ${renamed} VALUES (21, 'in the renaming transaction')`);
    await blue.query('COMMIT');
    await blue.query(`UPDATE ${renamed} SET v = 'after the rename' WHERE id = 2`);
    await blue.query(`DELETE FROM ${renamed} WHERE id = 3`);
    await waitFor(() => first.producer.status().state === 'failed', { what: 'the producer stopped' });
    const error = first.producer.status().error;
    expect(error?.code).toBe('TEAL_TABLE_RENAMED');
    expect(error?.message).toContain(`table public.${name} was renamed to public.${renamed}`);
    expect(error?.message).toContain('`tables`');
    const drain = await first.control.drain({ timeoutMs: 2_000, fence: false }).catch((e: unknown) => e);
    expect(drain, 'drain must not say drained while the renamed table is not copied').toBeInstanceOf(
      TealError,
    );
    expect((drain as TealError).code).toBe('TEAL_DRAIN_TIMEOUT');

    // The operator's fix, as the message says: green applied what Kafka has, the table is renamed
    // in green too, `tables` names the new name, teal restarts.
    await waitFor(async () => (await rows(green, name)).includes('(1,"before the rename")'), {
      what: 'the changes before the rename applied',
    });
    await first.control.close();
    await first.consumer.stop();
    await first.producer.stop();
    await green.query(`ALTER TABLE ${name} RENAME TO ${renamed}`);
    const second = await controlPipeline(controlConfig(name, blueUrl(), [`public.${renamed}`]));
    await blue.query(`INSERT INTO ${renamed} VALUES (22, 'after the restart')`);
    const drained = await second.control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.drained).toBe(true);
    expect(await rows(green, renamed)).toEqual(await rows(blue, renamed));
    expect(await rows(green, renamed)).toContain('(21,"in the renaming transaction")');
  });

  test('a rename with no change after it is found by the catalog watch', async () => {
    const name = uniqueName('rg_renamed_idle');
    const blue = await pgClient(blueUrl());
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY)`);
    onTestFinished(async () => {
      await blue.query(`DROP TABLE IF EXISTS ${name}, ${name}_new`);
    });
    const { producer } = await controlPipeline(controlConfig(name, blueUrl(), [`public.${name}`]), {
      producerDeps: { catalogPollMs: 200 },
    });
    await blue.query(`ALTER TABLE ${name} RENAME TO ${name}_new`);
    await waitFor(() => producer.status().state === 'failed', { what: 'the producer stopped' });
    expect(producer.status().error?.code).toBe('TEAL_TABLE_RENAMED');
    expect(producer.status().error?.message).toContain(`public.${name} was renamed to public.${name}_new`);
  });
});
