import { type Lsn, parseLsn } from '@teal/change-event';
import { TealError } from '@teal/errors';
import {
  connectClient,
  isSlotInvalidated,
  quoteIdent,
  readSlot,
  slotInvalidatedError,
  slotMissingError,
} from '@teal/postgres';
import type pg from 'pg';

// The logical replication slot on blue. teal creates it when it has never had one, reuses
// it on every restart (resuming from confirmed_flush_lsn), and never drops or recreates it
// by itself: a slot teal had that is now gone or invalidated means WAL teal needed is gone,
// and only the operator may decide to start over.

type Queryable = Pick<pg.ClientBase, 'query'>;

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
  /** The pipeline's topic prefix, for the start-over advice (its control keys). */
  topicPrefix: string;
}

export async function ensureSlot(blue: Queryable, opts: EnsureSlotOptions): Promise<SlotPlan> {
  const { slot } = opts;
  const row = await readSlot(blue, slot);
  const gone = { slot, topicPrefix: opts.topicPrefix, when: 'at start' };
  if (row) {
    if (row.plugin !== 'pgoutput') {
      throw new TealError(
        'TEAL_SLOT_INVALID',
        `replication slot "${slot}" on blue uses plugin ${row.plugin ?? '(physical)'}, not pgoutput: configure another \`slot\` name for teal`,
      );
    }
    if (isSlotInvalidated(row) || row.confirmedFlushLsn === null)
      throw slotInvalidatedError(gone, row.walStatus);
    return { kind: 'existing', startLsn: row.confirmedFlushLsn };
  }
  if (opts.hadSlot) throw slotMissingError({ ...gone, tealCreatedIt: true });
  const holder = await connectClient(opts.blueUrl, {
    replication: 'database',
    applicationName: 'teal-producer-slot',
  });
  try {
    // The unparenthesised form (10+), which 13-18 all accept; the `(SNAPSHOT 'export')` option
    // list is 15+ only. The exported snapshot lives while this connection stays idle.
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
