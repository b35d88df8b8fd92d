import { randomBytes } from 'node:crypto';
import { describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, pgClient, uniqueName, uniqueNameMadeAt } from './support/env.ts';
import { dropLeftoverTestSlots, LEFTOVER_SLOT_AGE_MS } from './support/leftover-slots.ts';

// The test setup's cleanup of slots left on the shared blue by interrupted runs (an inactive
// slot keeps all later WAL: three of them filled the disk on 2026-12-01). Real blue.
describe('leftover test slots', () => {
  test('an inactive slot a test named long ago is dropped; a recent one and other names are kept', async () => {
    const blue = await pgClient(blueUrl());
    // Named as uniqueName() would have named it four hours ago (an interrupted run's).
    const madeAt = Date.now() - LEFTOVER_SLOT_AGE_MS - 60 * 60_000;
    const old = `left_old_${madeAt.toString(36)}_${randomBytes(4).toString('hex')}_slot`;
    const recent = `${uniqueName('left_new')}_slot`;
    const foreign = `left_foreign_${randomBytes(4).toString('hex')}_slot`;
    expect(uniqueNameMadeAt(old)).toBe(madeAt);
    expect(uniqueNameMadeAt(foreign)).toBeUndefined();
    const all = [old, recent, foreign];
    onTestFinished(async () => {
      await blue.query(
        'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ANY($1) AND NOT active',
        [all],
      );
    });
    for (const s of all) await blue.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [s]);

    const dropped = await dropLeftoverTestSlots(blueUrl());
    expect(dropped).toContain(old);
    expect(dropped).not.toContain(recent);
    expect(dropped).not.toContain(foreign);
    const { rows } = await blue.query<{ slot_name: string }>(
      'SELECT slot_name FROM pg_replication_slots WHERE slot_name = ANY($1) ORDER BY slot_name',
      [all],
    );
    expect(rows.map((r) => r.slot_name)).toEqual([foreign, recent].sort());
  });
});
