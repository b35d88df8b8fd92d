import pg from 'pg';
import { uniqueNameMadeAt } from './unique-name.ts';

// A test run that is interrupted (a killed vitest, a machine that stopped) leaves its
// replication slots on the shared local blue, and an inactive slot keeps every byte of WAL
// written after it: on 2026-12-01 three such slots held 110 GB and filled the disk. The
// test setup drops the ones a test made (uniqueName's timestamp in the name) long ago.

/** Older than any test's slot can be while its test runs (the whole suite takes ~20 min). */
export const LEFTOVER_SLOT_AGE_MS = 3 * 60 * 60_000;

/** Drops inactive slots on `blueUrl` named by uniqueName() more than `olderThanMs` ago; their names. */
export async function dropLeftoverTestSlots(
  blueUrl: string,
  olderThanMs = LEFTOVER_SLOT_AGE_MS,
  now = Date.now(),
): Promise<string[]> {
  const c = new pg.Client({ connectionString: blueUrl, application_name: 'teal-test-setup' });
  await c.connect();
  try {
    const { rows } = await c.query<{ slot_name: string }>(
      'SELECT slot_name FROM pg_replication_slots WHERE NOT active ORDER BY slot_name',
    );
    const dropped: string[] = [];
    for (const { slot_name } of rows) {
      const madeAt = uniqueNameMadeAt(slot_name);
      if (madeAt === undefined || now - madeAt < olderThanMs) continue;
      // Still inactive at the drop: a test that took it meanwhile keeps it.
      const r = await c.query(
        'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active',
        [slot_name],
      );
      if (r.rowCount === 1) dropped.push(slot_name);
    }
    return dropped;
  } finally {
    await c.end();
  }
}
