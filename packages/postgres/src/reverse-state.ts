import type pg from 'pg';
import { readControlValue, writeControlValue } from './control-store.ts';

// What `teal cutover --with-rollback` prepared on green for the way back (issue 17), kept in
// GREEN's teal.control under `reverse:<forward topic prefix>`: the reverse pipeline's slot and
// publication on green, the slot's consistent point, and the tables it writes back. `teal
// reverse` starts from it and refuses without it; this module is the only place the key is
// spelled. The table shape is the config's ReverseTable (a type parameter: @teal/postgres sits
// below @teal/config).

type Queryable = Pick<pg.ClientBase, 'query'>;

export interface ReverseState<Table = unknown> {
  /** The reverse pipeline's logical slot on green (pgoutput). */
  slot: string;
  /** Its publication on green: the mapped green tables. */
  publication: string;
  /** The reverse pipeline's topic prefix (`<forward prefix>_reverse`). */
  topicPrefix: string;
  /** The slot's consistent point: every green change after it streams back. */
  lsn: string;
  /** ISO 8601 UTC. */
  createdAt: string;
  tables: Table[];
}

/** `reverse:<forward topic prefix>`. */
export function reverseStateKey(forwardTopicPrefix: string): string {
  return `reverse:${forwardTopicPrefix}`;
}

/** The recorded state; undefined when no cutover --with-rollback recorded one (or teal's schema is missing). */
export async function readReverseState<Table>(
  green: Queryable,
  forwardTopicPrefix: string,
): Promise<ReverseState<Table> | undefined> {
  const { rows } = await green.query<{ present: string | null }>(
    `SELECT to_regclass('teal.control')::text AS present`,
  );
  if (!rows[0]?.present) return undefined;
  return readControlValue<ReverseState<Table>>(green, reverseStateKey(forwardTopicPrefix));
}

export async function writeReverseState<Table>(
  green: Queryable,
  forwardTopicPrefix: string,
  state: ReverseState<Table>,
): Promise<void> {
  await writeControlValue(green, reverseStateKey(forwardTopicPrefix), state);
}

export async function deleteReverseState(green: Queryable, forwardTopicPrefix: string): Promise<void> {
  const { rows } = await green.query<{ present: string | null }>(
    `SELECT to_regclass('teal.control')::text AS present`,
  );
  if (rows[0]?.present)
    await green.query('DELETE FROM teal.control WHERE key = $1', [reverseStateKey(forwardTopicPrefix)]);
}
