import { formatLsn, type Lsn, parseLsn } from '@teal/change-event';
import { isUndefinedObject, TealError } from '@teal/errors';
import type { TopicAdmin } from '@teal/kafka';
import {
  emitHeartbeat,
  isSlotInvalidated,
  readControlValue,
  readSlot,
  slotInvalidatedError,
  slotKey,
  slotMissingError,
} from '@teal/postgres';
import { abortableDelay } from '@teal/runtime';
import type pg from 'pg';
import { fence } from './fence.ts';
import { readAppliedPositions, readTopicEnds, type TopicEnds } from './status-reads.ts';
import type { DrainOptions, DrainResult, PartitionProgress } from './types.ts';

// Drain proves "everything committed on blue up to LSN X is applied in green" in two steps:
//  1. The slot's confirmed_flush_lsn reaches X. The producer confirms an LSN only after
//     Kafka acknowledged (acks=all) every event committed at or before it, so from then on
//     every such event sits in Kafka, below the log end offsets read next.
//  2. Green's teal.applied_position reaches those log end offsets on every partition.
//     The position row is written in the same transaction as the rows it covers.
// A heartbeat message emitted after X gives an idle slot something past X to confirm.

export interface DrainDeps {
  blue: pg.Client;
  green: pg.Client;
  admin: TopicAdmin;
  slot: string;
  topicPrefix: string;
  /** Poll interval, ms. */
  pollMs?: number;
}

const HEARTBEAT_EVERY_MS = 2_000;

export async function currentWalLsn(blue: pg.Client): Promise<Lsn> {
  const { rows } = await blue.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return parseLsn(rows[0].lsn);
}

/** Partitions holding records that green has not applied yet (end = log end offset at the time of reading). */
export function partitionsBehind(
  ends: TopicEnds['tables'],
  applied: ReadonlyArray<{ topic: string; partition: number; kafkaOffset: number }>,
): PartitionProgress[] {
  const byKey = new Map(applied.map((a) => [`${a.topic}:${a.partition}`, a.kafkaOffset]));
  const out: PartitionProgress[] = [];
  for (const [topic, partitions] of ends) {
    for (const { partition, end } of partitions) {
      const appliedOffset = byKey.get(`${topic}:${partition}`) ?? null;
      const next = appliedOffset === null ? 0 : appliedOffset + 1;
      out.push({ topic, partition, end, appliedOffset, behind: Math.max(0, end - next) });
    }
  }
  return out;
}

export async function drain(deps: DrainDeps, opts: DrainOptions): Promise<DrainResult> {
  const started = Date.now();
  const deadline = started + opts.timeoutMs;
  const pollMs = deps.pollMs ?? 200;
  const checkAbort = () => {
    if (opts.signal?.aborted)
      throw new TealError('TEAL_ABORTED', 'drain was aborted (the server is shutting down)', { status: 503 });
  };

  let fenced = false;
  if (opts.fence) {
    await fence(deps.blue);
    fenced = true;
  }

  const target = await currentWalLsn(deps.blue);
  await emitHeartbeat(deps.blue);
  let lastHeartbeat = Date.now();

  // Step 1: the producer has confirmed the target.
  let confirmed = 0n;
  for (;;) {
    checkAbort();
    const slot = await readSlot(deps.blue, deps.slot);
    const gone = { slot: deps.slot, topicPrefix: deps.topicPrefix, when: 'while draining' };
    if (!slot)
      throw slotMissingError({ ...gone, tealCreatedIt: await tealCreatedSlot(deps.green, deps.slot) });
    if (isSlotInvalidated(slot)) throw slotInvalidatedError(gone, slot.walStatus);
    confirmed = slot.confirmedFlushLsn ?? 0n;
    if (confirmed >= target) break;
    if (Date.now() >= deadline) {
      throw timeout(opts.timeoutMs, started, target, confirmed, [], fenced, slot.active);
    }
    if (Date.now() - lastHeartbeat >= HEARTBEAT_EVERY_MS) {
      await emitHeartbeat(deps.blue);
      lastHeartbeat = Date.now();
    }
    await abortableDelay(Math.min(pollMs, Math.max(1, deadline - Date.now())), opts.signal);
  }

  // Step 2: green has applied everything Kafka holds now (a superset of what is <= target).
  const { tables } = await readTopicEnds(deps.admin, deps.topicPrefix);
  let partitions: PartitionProgress[];
  for (;;) {
    checkAbort();
    partitions = partitionsBehind(tables, await readAppliedPositions(deps.green));
    if (partitions.every((p) => p.behind === 0)) break;
    if (Date.now() >= deadline) {
      throw timeout(
        opts.timeoutMs,
        started,
        target,
        confirmed,
        partitions.filter((p) => p.behind > 0),
        fenced,
        true,
      );
    }
    await abortableDelay(Math.min(pollMs, Math.max(1, deadline - Date.now())), opts.signal);
  }

  return {
    drained: true,
    lsn: formatLsn(target),
    targetLsn: formatLsn(target),
    confirmedLsn: formatLsn(confirmed),
    partitions,
    waitedMs: Date.now() - started,
    fenced,
  };
}

function timeout(
  timeoutMs: number,
  started: number,
  target: Lsn,
  confirmed: Lsn,
  behind: PartitionProgress[],
  fenced: boolean,
  slotActive: boolean,
): TealError {
  const slotBehindBytes = target > confirmed ? Number(target - confirmed) : 0;
  let what: string;
  if (slotBehindBytes > 0) {
    what =
      `the slot confirmed ${formatLsn(confirmed)}, ${slotBehindBytes} bytes short of the target ${formatLsn(target)}` +
      (slotActive
        ? ': the producer is behind'
        : ': no producer is attached to the slot — start it (teal producer or teal run)');
  } else {
    const total = behind.reduce((sum, p) => sum + p.behind, 0);
    const list = behind
      .slice(0, 5)
      .map((p) => `${p.topic}[${p.partition}] ${p.behind} behind`)
      .join(', ');
    what =
      `${behind.length} partition(s) not applied in green (${total} records: ${list}${behind.length > 5 ? ', ...' : ''})` +
      ': is the consumer running, paused or blocked? see teal status';
  }
  return new TealError('TEAL_DRAIN_TIMEOUT', `drain did not finish within ${timeoutMs} ms: ${what}`, {
    status: 504,
    retriable: true,
    details: {
      targetLsn: formatLsn(target),
      confirmedLsn: formatLsn(confirmed),
      slotBehindBytes,
      partitionsBehind: behind,
      waitedMs: Date.now() - started,
      fenced,
    },
  });
}

/** True when green remembers that teal created this slot (so its absence means lost WAL). */
async function tealCreatedSlot(green: pg.Client, slot: string): Promise<boolean> {
  try {
    return (await readControlValue(green, slotKey(slot))) !== undefined;
  } catch (err) {
    if (isUndefinedObject(err)) return false;
    throw err;
  }
}
