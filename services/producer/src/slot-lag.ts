import type { Lsn } from '@teal/change-event';
import { readSlot } from '@teal/postgres';
import type { Logger, TealMetrics } from '@teal/runtime';
import type pg from 'pg';

// "WAL is watched" (contract item 7): the slot's lag as status fields and metrics, and a
// warning before the WAL blue retains for it becomes a disk problem. What the lag is (the
// query) belongs to readSlot in @teal/postgres; this turns it into the producer's signals.

export interface SlotLagOptions {
  blue: Pick<pg.ClientBase, 'query'>;
  slot: string;
  thresholds: { readonly warnBytes: number; readonly criticalBytes: number };
  metrics?: TealMetrics;
  log: Logger;
}

export class SlotLagWatch {
  /** Last measured, for status(); undefined until the first measurement. */
  lagBytes: number | undefined;
  retainedWalBytes: number | undefined;

  constructor(private readonly opts: SlotLagOptions) {}

  /** `confirmed`: what this producer confirmed; lag in seconds is only known once the slot has it. */
  async measure(confirmed: Lsn | undefined, lastCommitTimeUs: bigint | undefined): Promise<void> {
    const { metrics, thresholds, log } = this.opts;
    const slot = await readSlot(this.opts.blue, this.opts.slot);
    if (!slot) return;
    const lag = slot.lagBytes ?? 0;
    const retained = slot.retainedBytes ?? 0;
    this.lagBytes = lag;
    this.retainedWalBytes = retained;
    metrics?.slotLagBytes.set(lag);
    metrics?.slotRetainedWalBytes.set(retained);
    if (
      lastCommitTimeUs !== undefined &&
      slot.confirmedFlushLsn !== null &&
      confirmed !== undefined &&
      slot.confirmedFlushLsn >= confirmed
    ) {
      metrics?.slotLagSeconds.set(Math.max(0, (Date.now() * 1000 - Number(lastCommitTimeUs)) / 1e6));
    }
    if (retained >= thresholds.criticalBytes)
      log.error({ retained }, 'slot retains critical amount of WAL on blue');
    else if (retained >= thresholds.warnBytes) log.warn({ retained }, 'slot retains much WAL on blue');
  }
}
