import type pg from 'pg';

// teal's own logical decoding messages on blue (pg_logical_emit_message), non-transactional
// so that they reach the stream at once: a position between transactions that the flush
// tracker may confirm (heartbeat), or a bracket around a snapshot chunk (watermark). Every
// prefix teal writes starts with "teal."; the stream keeps the others for `<prefix>._messages`.

type Queryable = Pick<pg.ClientBase, 'query'>;

export const TEAL_MESSAGE_PREFIX = 'teal.';
export const HEARTBEAT_PREFIX = 'teal.heartbeat';
export const WATERMARK_PREFIX = 'teal.watermark';

export function isTealMessage(prefix: string): boolean {
  return prefix.startsWith(TEAL_MESSAGE_PREFIX);
}

/** A heartbeat: keeps the slot moving on an idle database. */
export async function emitHeartbeat(db: Queryable): Promise<void> {
  await db.query('SELECT pg_logical_emit_message(false, $1, now()::text)', [HEARTBEAT_PREFIX]);
}

/** A watermark with `content` ("<id>:low" / "<id>:high"). */
export async function emitWatermark(db: Queryable, content: string): Promise<void> {
  await db.query('SELECT pg_logical_emit_message(false, $1, $2)', [WATERMARK_PREFIX, content]);
}
