import { type Lsn, parseLsn } from '@teal/change-event';
import { TealError } from '@teal/config';
import type pg from 'pg';
import { connectClient, quoteIdent } from './pg-session.ts';

// The logical replication slot on blue. teal creates it when it has never had one, reuses
// it on every restart (resuming from confirmed_flush_lsn), and never drops or recreates it
// by itself: a slot teal had that is now gone or invalidated means WAL teal needed is gone,
// and only the operator may decide to start over.

type Queryable = Pick<pg.ClientBase, 'query'>;

export interface SlotRow {
  plugin: string | null;
  confirmedFlushLsn: Lsn | null;
  walStatus: string | null;
  active: boolean;
}

export async function readSlot(db: Queryable, slot: string): Promise<SlotRow | undefined> {
  const result = await db.query<{
    plugin: string | null;
    confirmed: string | null;
    wal_status: string | null;
    active: string;
  }>(
    `SELECT plugin, confirmed_flush_lsn::text AS confirmed, wal_status, active::text AS active
       FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`,
    [slot],
  );
  const row = result.rows[0];
  if (!row) return undefined;
  return {
    plugin: row.plugin,
    confirmedFlushLsn: row.confirmed === null ? null : parseLsn(row.confirmed),
    walStatus: row.wal_status,
    active: row.active === 'true',
  };
}

/** What to tell an operator who must start over on purpose. */
export function startOverAdvice(slot: string): string {
  return (
    'To start over on purpose (a full re-snapshot): stop teal; on blue run ' +
    `SELECT pg_drop_replication_slot('${slot}') (if it still exists); on green run ` +
    `DELETE FROM teal.control WHERE key IN ('producer', 'slot:${slot}'); TRUNCATE teal.snapshot_progress, teal.applied_position; ` +
    'empty the replicated green tables and delete the teal Kafka topics; then start teal again.'
  );
}

export type SlotPlan =
  /** Slot exists: stream from its confirmed flush LSN. */
  | { kind: 'existing'; startLsn: Lsn }
  /**
   * Slot just created: `holder` is the replication connection that exported `snapshotName`;
   * it must stay open and idle until the initial snapshot has imported the snapshot.
   */
  | { kind: 'created'; consistentPoint: Lsn; snapshotName: string; holder: pg.Client };

export interface EnsureSlotOptions {
  blueUrl: string;
  slot: string;
  /** True when teal's state in green says this slot existed before. */
  hadSlot: boolean;
}

export async function ensureSlot(blue: Queryable, opts: EnsureSlotOptions): Promise<SlotPlan> {
  const { slot } = opts;
  const row = await readSlot(blue, slot);
  if (row) {
    if (row.plugin !== 'pgoutput') {
      throw new TealError(
        'TEAL_SLOT_INVALID',
        `replication slot "${slot}" on blue uses plugin ${row.plugin ?? '(physical)'}, not pgoutput: configure another \`slot\` name for teal`,
      );
    }
    if (row.walStatus === 'lost' || row.confirmedFlushLsn === null) {
      throw new TealError(
        'TEAL_SLOT_INVALIDATED',
        `replication slot "${slot}" on blue was invalidated (wal_status = ${row.walStatus ?? 'unknown'}): blue removed WAL teal had not ` +
          `shipped yet (max_slot_wal_keep_size reached?), so changes are missing and teal will not continue silently. ${startOverAdvice(slot)}`,
        { details: { slot, walStatus: row.walStatus } },
      );
    }
    return { kind: 'existing', startLsn: row.confirmedFlushLsn };
  }
  if (opts.hadSlot) {
    throw new TealError(
      'TEAL_SLOT_MISSING',
      `replication slot "${slot}" that teal created on blue is gone (dropped by someone, or blue was restored/failed over): ` +
        `changes since teal's last confirmed position may be lost, so teal will not recreate it silently. ${startOverAdvice(slot)}`,
      { details: { slot } },
    );
  }
  const holder = await connectClient(opts.blueUrl, {
    replication: 'database',
    applicationName: 'teal-producer-slot',
  });
  try {
    // PG >= 10 grammar; the exported snapshot lives while this connection stays idle.
    const result = await holder.query<{ consistent_point: string; snapshot_name: string }>(
      `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput EXPORT_SNAPSHOT`,
    );
    const created = result.rows[0];
    return {
      kind: 'created',
      consistentPoint: parseLsn(created.consistent_point),
      snapshotName: created.snapshot_name,
      holder,
    };
  } catch (err) {
    await holder.end().catch(() => {});
    if ((err as { code?: string }).code === '42710') {
      throw new TealError(
        'TEAL_SLOT_IN_USE',
        `replication slot "${slot}" was created concurrently by another process`,
        {
          retriable: true,
          cause: err,
        },
      );
    }
    throw err;
  }
}
