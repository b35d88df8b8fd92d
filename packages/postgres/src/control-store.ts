import type pg from 'pg';

// teal.control in green: one row per fact that separate processes (producer, consumer,
// API, the next run) must agree on. Keys are per pipeline, because several pipelines may
// share one green, each with its own topic prefix. These two functions are the only place
// a key is spelled; everything that reads or writes a key, or tells an operator about one,
// builds it here.

type Queryable = Pick<pg.ClientBase, 'query'>;

/** `topic_layout`: per table topic, the partition count and ordered flag the producer writes it with. */
export type ControlKind = 'paused' | 'producer' | 'consumer' | 'consumer_blocked' | 'topic_layout';

/** `<kind>:<topic prefix>`. */
export function controlKey(
  kind: ControlKind,
  config: { readonly kafka: { readonly topicPrefix: string } },
): string {
  return `${kind}:${config.kafka.topicPrefix}`;
}

/** `slot:<slot>`: the producer created this slot, so its absence later is an error, never a new snapshot. */
export function slotKey(slot: string): string {
  return `slot:${slot}`;
}

export interface ControlEntry {
  value: unknown;
  /** ISO 8601 UTC with milliseconds. */
  updatedAt: string | null;
}

export async function readControlValue<T = unknown>(db: Queryable, key: string): Promise<T | undefined> {
  const { rows } = await db.query<{ value: string | null }>(
    'SELECT value::text AS value FROM teal.control WHERE key = $1',
    [key],
  );
  const text = rows[0]?.value;
  return text === undefined || text === null ? undefined : (JSON.parse(text) as T);
}

export async function writeControlValue(db: Queryable, key: string, value: unknown): Promise<void> {
  await db.query(
    `INSERT INTO teal.control (key, value, updated_at) VALUES ($1, $2::jsonb, now())
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
    [key, JSON.stringify(value)],
  );
}

/** Every row of teal.control (the caller decides what a missing schema means). */
export async function readAllControl(db: Queryable): Promise<Map<string, ControlEntry>> {
  const { rows } = await db.query<{ key: string; value: string | null; updated_at: string | null }>(
    `SELECT key, value::text AS value, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS updated_at
       FROM teal.control`,
  );
  return new Map(
    rows.map((r) => [
      r.key,
      { value: r.value === null ? null : JSON.parse(r.value), updatedAt: r.updated_at },
    ]),
  );
}
