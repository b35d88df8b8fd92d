import { formatLsn, type Lsn, parseLsn } from '@teal/change-event';
import { normalizeTableName, qualifiedName } from '@teal/config';
import { isUndefinedObject, TealError } from '@teal/errors';
import type { TopicAdmin } from '@teal/kafka';
import {
  DEFAULT_TABLES_SQL,
  emitHeartbeat,
  isSlotInvalidated,
  readControlValue,
  readSlot,
  readSnapshotProgress,
  slotInvalidatedError,
  slotKey,
  slotMissingError,
} from '@teal/postgres';
import { abortableDelay } from '@teal/runtime';
import type pg from 'pg';
import { fence } from './fence.ts';
import { readAppliedPositions, readTopicEnds, type TopicEnds } from './status-reads.ts';
import type {
  DeadLetterCounts,
  DrainOptions,
  DrainResult,
  PartitionProgress,
  SnapshotPending,
} from './types.ts';

// Drain proves "everything committed on blue up to LSN X is applied in green" in steps:
//  1. Every configured table has its snapshot done (teal.snapshot_progress in
//     green): a table still being copied by chunks has rows that are in no topic yet.
//  2. The slot's confirmed_flush_lsn reaches X. The producer confirms an LSN only after
//     Kafka acknowledged (acks=all) every event committed at or before it, so from then on
//     every such event sits in Kafka, below the log end offsets read in step 3.
//  3. Green's teal.applied_position reaches those log end offsets on every partition.
//     The position row is written in the same transaction as the rows it covers.
// A heartbeat message emitted after X gives an idle slot something past X to confirm.
// Then the dead-letter topic is counted: records green rejected are changes it lacks, so
// the result says `clean: false` with counts per table (dead-letters.ts).

export interface DrainDeps {
  blue: pg.Client;
  green: pg.Client;
  admin: TopicAdmin;
  slot: string;
  /**
   * The configured tables (config.tables), whose snapshot must be done; without them no
   * snapshot is waited for (green's teal.snapshot_progress may hold other pipelines' rows).
   */
  tables?: readonly string[] | 'all';
  topicPrefix: string;
  /**
   * Counts the dead-letter topic per source table (called only when it holds records);
   * without it the total is reported under NOT_COUNTED.
   */
  countDeadLetters?(): Promise<DeadLetterCounts>;
  /** Poll interval, ms. */
  pollMs?: number;
}

const HEARTBEAT_EVERY_MS = 2_000;
/** The "table" of dead letters when the caller gave no way to read them. */
export const NOT_COUNTED = '(not counted per table)';

/**
 * An LSN at or past the commit record of every transaction already acknowledged to a client.
 *
 * Not pg_current_wal_lsn(): that is the WAL *write* location (xlogfuncs.c: GetXLogWriteRecPtr),
 * and under synchronous_commit = off a commit returns to the client as soon as its record is
 * inserted into the WAL buffers, before it is written or flushed (xact.c RecordTransactionCommit:
 * XLogSetAsyncXactLSN instead of XLogFlush; the WAL writer writes it up to 3 x wal_writer_delay
 * later; docs: "Asynchronous Commit", wal.sgml). pg_current_wal_insert_lsn() is the *insert*
 * location (GetXLogInsertRecPtr), past every record inserted so far, so past every such commit
 * ("pg_current_wal_insert_lsn displays the current write-ahead log insertion location";
 * docs: System Administration Functions, Backup Control Functions). The slot confirms it once
 * the WAL writer flushed it and the producer shipped it: drain waits that little longer.
 */
export async function currentWalLsn(blue: pg.Client): Promise<Lsn> {
  const { rows } = await blue.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  return parseLsn(rows[0].lsn);
}

/**
 * The configured tables whose snapshot is not done in green (no row yet: 'pending'). The
 * configured ones, as the producer snapshots them, not the publication's: an operator may
 * have added tables to the publication that teal does not copy.
 */
export async function unfinishedSnapshots(
  blue: pg.Client,
  green: pg.Client,
  tables: readonly string[] | 'all' | undefined,
): Promise<SnapshotPending[]> {
  if (tables === undefined) return [];
  let progress: Awaited<ReturnType<typeof readSnapshotProgress>>;
  try {
    progress = await readSnapshotProgress(green);
  } catch (err) {
    if (!isUndefinedObject(err)) throw err;
    progress = new Map();
  }
  let names: string[];
  if (tables === 'all')
    names = (await blue.query<{ schema: string; table: string }>(DEFAULT_TABLES_SQL)).rows.map((r) =>
      qualifiedName(r.schema, r.table),
    );
  else names = tables.map(normalizeTableName);
  const out: SnapshotPending[] = [];
  for (const name of names) {
    const p = progress.get(name);
    if (p?.state === 'done') continue;
    out.push({
      table: name,
      state: p?.state ?? 'pending',
      rowsDone: p?.rowsDone ?? 0,
      rowsEstimated: p ? p.rowsEstimated : null,
    });
  }
  return out;
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
  // Step 1: every snapshot is done, so its rows are in Kafka before the ends are read.
  for (;;) {
    checkAbort();
    const pending = await unfinishedSnapshots(deps.blue, deps.green, deps.tables);
    if (pending.length === 0) break;
    if (Date.now() >= deadline) throw snapshotTimeout(opts.timeoutMs, started, target, 0n, pending, fenced);
    await abortableDelay(Math.min(pollMs, Math.max(1, deadline - Date.now())), opts.signal);
  }
  const { confirmed, partitions } = await waitApplied(deps, target, { ...opts, started, fenced });

  // Read after green applied them: a record is dead-lettered (acks=all) before its position commits.
  const deadLetterTotal = (await readTopicEnds(deps.admin, deps.topicPrefix)).deadLetters;
  const deadLetters =
    deadLetterTotal === 0
      ? { total: 0, tables: [] }
      : ((await deps.countDeadLetters?.()) ?? {
          total: deadLetterTotal,
          tables: [{ table: NOT_COUNTED, count: deadLetterTotal }],
        });
  return {
    drained: true,
    clean: deadLetters.total === 0,
    deadLetters,
    lsn: formatLsn(target),
    targetLsn: formatLsn(target),
    confirmedLsn: formatLsn(confirmed),
    partitions,
    waitedMs: Date.now() - started,
    fenced,
  };
}

/**
 * Steps 2 and 3 of a drain: the slot confirmed `target`, then green applied everything Kafka
 * held at that moment. Online verify waits on it too, before it re-checks a chunk that
 * differed while the blue changes of its snapshot were in flight.
 */
export async function waitApplied(
  deps: DrainDeps,
  target: Lsn,
  opts: DrainOptions & { started?: number; fenced?: boolean },
): Promise<{ confirmed: Lsn; partitions: PartitionProgress[] }> {
  const started = opts.started ?? Date.now();
  const deadline = started + opts.timeoutMs;
  const pollMs = deps.pollMs ?? 200;
  const fenced = opts.fenced ?? false;
  const checkAbort = () => {
    if (opts.signal?.aborted)
      throw new TealError('TEAL_ABORTED', 'drain was aborted (the server is shutting down)', { status: 503 });
  };
  await emitHeartbeat(deps.blue);
  let lastHeartbeat = Date.now();
  let confirmed = 0n;
  // Step 2: the producer has confirmed the target.
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

  // Step 3: green has applied everything Kafka holds now (a superset of what is <= target).
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
  return { confirmed, partitions };
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

function snapshotTimeout(
  timeoutMs: number,
  started: number,
  target: Lsn,
  confirmed: Lsn,
  pending: SnapshotPending[],
  fenced: boolean,
): TealError {
  const list = pending
    .slice(0, 5)
    .map(
      (p) =>
        `${p.table} (${p.state}, ${p.rowsDone}${p.rowsEstimated === null ? '' : ` of ~${p.rowsEstimated}`} rows)`,
    )
    .join(', ');
  return new TealError(
    'TEAL_DRAIN_TIMEOUT',
    `drain did not finish within ${timeoutMs} ms: the snapshot of ${pending.length} table(s) is not done, so green lacks rows of ${list}${pending.length > 5 ? ', ...' : ''}` +
      ': the producer is still copying them (teal status shows its progress; a table created after the producer started is copied once it notices it, within seconds, unless it has no primary key or replica identity: the producer log says so: give it one); drain again with a longer timeout once they are done',
    {
      status: 504,
      retriable: true,
      details: {
        targetLsn: formatLsn(target),
        confirmedLsn: formatLsn(confirmed),
        slotBehindBytes: 0,
        partitionsBehind: [],
        snapshotsPending: pending,
        waitedMs: Date.now() - started,
        fenced,
      },
    },
  );
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
