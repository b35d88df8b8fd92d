import { type Lsn, parseLsn } from '@teal/change-event';
import { TealError } from '@teal/errors';
import type pg from 'pg';
import { controlKey, slotKey } from './control-store.ts';
import { quoteLiteral } from './sql.ts';

// The logical replication slot on blue, read in one place: what the producer resumes
// from, what drain waits for, what status and /metrics report as lag. teal never drops
// or recreates a slot by itself; a slot that is gone or invalidated is one story with two
// codes (TEAL_SLOT_MISSING: no such slot; TEAL_SLOT_INVALIDATED: Postgres removed WAL it
// needed), both told by the functions below with the same start-over advice.

type Queryable = Pick<pg.ClientBase, 'query'>;

export interface SlotState {
  slot: string;
  plugin: string | null;
  active: boolean;
  /** pg_replication_slots.wal_status (PG 13+): reserved | extended | unreserved | lost. */
  walStatus: string | null;
  /** Null on a slot that Postgres invalidated. */
  confirmedFlushLsn: Lsn | null;
  restartLsn: Lsn | null;
  currentLsn: Lsn;
  /** pg_current_wal_lsn() - confirmed_flush_lsn: WAL written that the producer has not confirmed. */
  lagBytes: number | null;
  /** pg_current_wal_lsn() - restart_lsn: WAL blue keeps on disk for this slot. */
  retainedBytes: number | null;
}

/**
 * The slot in the current database; undefined when there is none. A simple query (no
 * parameters), so it also runs on a walsender connection, which refuses the extended protocol.
 */
export async function readSlot(db: Queryable, slot: string): Promise<SlotState | undefined> {
  const { rows } = await db.query<{
    plugin: string | null;
    active: string;
    wal_status: string | null;
    current_lsn: string;
    confirmed: string | null;
    restart: string | null;
    lag_bytes: string | null;
    retained_bytes: string | null;
  }>(
    `SELECT plugin, active::text AS active, wal_status, pg_current_wal_lsn()::text AS current_lsn,
            confirmed_flush_lsn::text AS confirmed, restart_lsn::text AS restart,
            (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint::text AS lag_bytes,
            (pg_current_wal_lsn() - restart_lsn)::bigint::text AS retained_bytes
       FROM pg_replication_slots WHERE slot_name = ${quoteLiteral(slot)} AND database = current_database()`,
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    slot,
    plugin: row.plugin,
    active: row.active === 'true',
    walStatus: row.wal_status,
    confirmedFlushLsn: row.confirmed === null ? null : parseLsn(row.confirmed),
    restartLsn: row.restart === null ? null : parseLsn(row.restart),
    currentLsn: parseLsn(row.current_lsn),
    lagBytes: row.lag_bytes === null ? null : Number(row.lag_bytes),
    retainedBytes: row.retained_bytes === null ? null : Number(row.retained_bytes),
  };
}

/** True when Postgres has invalidated the slot: WAL it still needed is gone. */
export function isSlotInvalidated(state: SlotState): boolean {
  return state.walStatus === 'lost' || state.confirmedFlushLsn === null;
}

/**
 * What to tell an operator who must start over on purpose (a full re-snapshot). The control
 * keys come from controlKey()/slotKey(), the ones the producer reads: an operator who follows
 * this advice is not refused again.
 */
export function startOverAdvice(slot: string, topicPrefix: string): string {
  const keys = [controlKey('producer', { kafka: { topicPrefix } }), slotKey(slot)];
  return (
    'To start over on purpose (a full re-snapshot): stop teal; on blue run ' +
    `SELECT pg_drop_replication_slot('${slot}') (if it still exists); on green run ` +
    `DELETE FROM teal.control WHERE key IN (${keys.map((k) => `'${k}'`).join(', ')}); ` +
    'TRUNCATE teal.snapshot_progress, teal.applied_position, teal.applied_truncate; ' +
    `empty the replicated green tables and delete the ${topicPrefix}.* Kafka topics; then start teal again.`
  );
}

export interface SlotGoneContext {
  slot: string;
  topicPrefix: string;
  /** Where it was noticed, for the message: "at start", "while streaming", "while draining". */
  when: string;
}

/**
 * The slot does not exist. `tealCreatedIt` decides the story: a slot teal had (green's
 * slotKey row, or one it was streaming from) that is gone means WAL may be lost; one it never
 * had means the producer has not started yet.
 */
export function slotMissingError(
  ctx: SlotGoneContext & { tealCreatedIt: boolean },
  cause?: unknown,
): TealError {
  const message = ctx.tealCreatedIt
    ? `replication slot "${ctx.slot}" that teal streams from on blue is gone (noticed ${ctx.when}; dropped by someone, or blue was restored or failed over): ` +
      `changes after teal's last confirmed position may be lost, so teal will not recreate it silently. ${startOverAdvice(ctx.slot, ctx.topicPrefix)}`
    : `replication slot "${ctx.slot}" does not exist on blue (noticed ${ctx.when}): start the producer (teal producer or teal run) first; it creates the slot`;
  return new TealError('TEAL_SLOT_MISSING', message, { cause, details: { slot: ctx.slot } });
}

/** The slot exists but Postgres invalidated it (max_slot_wal_keep_size reached, or similar). */
export function slotInvalidatedError(
  ctx: SlotGoneContext,
  walStatus: string | null,
  cause?: unknown,
): TealError {
  return new TealError(
    'TEAL_SLOT_INVALIDATED',
    `replication slot "${ctx.slot}" on blue was invalidated (noticed ${ctx.when}; wal_status = ${walStatus ?? 'unknown'}): ` +
      `blue removed WAL teal had not shipped yet (max_slot_wal_keep_size reached?), so changes are missing and teal will not continue silently. ${startOverAdvice(ctx.slot, ctx.topicPrefix)}`,
    { cause, details: { slot: ctx.slot, walStatus } },
  );
}
