import { deadLetterTopic, formatLsn, formatPosition, type Position } from '@teal/change-event';
import type { ControlEntry, SlotState } from '@teal/postgres';
import type { TealMetrics } from '@teal/runtime';
import { formatBytes } from '@teal/runtime/format';
import type { AppliedRow, TopicEnds } from './status-reads.ts';
import {
  type BlockedPartition,
  type LagLevel,
  type PartitionStatus,
  PIPELINE_STATES,
  type PipelineState,
  type ProducerView,
  type SlotStatus,
  type SnapshotTableStatus,
  type StatusReport,
} from './types.ts';

// Pure: a StatusReport from what status-reads.ts (and readSlot, isFenced) answered, and the
// gauges it feeds. No server is asked anything here, so every rule is testable from values.

/** A producer that reported nothing for this long is considered stopped. */
export const PRODUCER_STALE_MS = 15_000;

/** Per partition: what Kafka has against what green applied. A partition with records and no row is behind by all of them. */
export function partitionStatuses(
  ends: TopicEnds['tables'],
  applied: readonly AppliedRow[],
  blocked: readonly BlockedPartition[] = [],
): PartitionStatus[] {
  const byKey = new Map(applied.map((a) => [`${a.topic}:${a.partition}`, a]));
  const blockedByKey = new Map(blocked.map((b) => [`${b.topic}:${b.partition}`, b.reason]));
  const out: PartitionStatus[] = [];
  for (const [topic, partitions] of ends) {
    for (const { partition, end } of partitions) {
      const row = byKey.get(`${topic}:${partition}`);
      const next = row ? row.kafkaOffset + 1 : 0;
      out.push({
        topic,
        partition,
        appliedOffset: row ? row.kafkaOffset : null,
        appliedPosition: row ? row.position : null,
        end,
        lag: Math.max(0, end - next),
        blocked: blockedByKey.get(`${topic}:${partition}`) ?? null,
      });
    }
  }
  return out;
}

export function lagLevel(
  bytes: number | null,
  thresholds: { warnBytes: number; criticalBytes: number },
): LagLevel {
  if (bytes === null) return 'ok';
  if (bytes >= thresholds.criticalBytes) return 'critical';
  if (bytes >= thresholds.warnBytes) return 'warn';
  return 'ok';
}

export function slotStatus(
  name: string,
  row: SlotState | undefined,
  producer: ProducerView | null,
  thresholds: { warnBytes: number; criticalBytes: number },
  nowMs = Date.now(),
): SlotStatus {
  if (!row) {
    return {
      name,
      exists: false,
      active: false,
      walStatus: null,
      currentLsn: null,
      confirmedLsn: null,
      restartLsn: null,
      lagBytes: null,
      retainedWalBytes: null,
      lagSeconds: null,
      level: 'ok',
    };
  }
  const lagBytes = row.lagBytes;
  const retained = row.retainedBytes;
  let lagSeconds: number | null = null;
  if (lagBytes !== null && lagBytes <= 0) lagSeconds = 0;
  else if (producer?.lastCommitTimeUs) {
    lagSeconds = Math.max(0, (nowMs - Number(BigInt(producer.lastCommitTimeUs) / 1000n)) / 1000);
  }
  return {
    name,
    exists: true,
    active: row.active,
    walStatus: row.walStatus,
    currentLsn: formatLsn(row.currentLsn),
    confirmedLsn: row.confirmedFlushLsn === null ? null : formatLsn(row.confirmedFlushLsn),
    restartLsn: row.restartLsn === null ? null : formatLsn(row.restartLsn),
    lagBytes,
    retainedWalBytes: retained,
    lagSeconds,
    // Retained WAL is what fills blue's disk, so it decides the warning level.
    level: lagLevel(retained ?? lagBytes, thresholds),
  };
}

function text(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'bigint' || typeof value === 'number') return String(value);
  if (typeof value === 'object' && 'lsn' in value && 'seq' in value) {
    const p = value as { lsn: unknown; seq: unknown };
    if (typeof p.lsn === 'bigint') return formatPosition(value as Position);
    return `${String(p.lsn)}:${String(p.seq)}`;
  }
  if (value instanceof Error) return value.message;
  if (typeof value === 'object' && 'message' in value) return String((value as { message: unknown }).message);
  return JSON.stringify(value);
}

/** Normalises the producer's status (in-process object or the JSON it stored in green). */
export function producerView(
  raw: unknown,
  source: ProducerView['source'],
  updatedAt: string | null,
): ProducerView | null {
  if (!raw || typeof raw !== 'object') return null;
  const p = raw as Record<string, unknown>;
  const snapshot: SnapshotTableStatus[] = Array.isArray(p.snapshot)
    ? p.snapshot.map((s: Record<string, unknown>) => ({
        table: String(s.table),
        state: String(s.state),
        rowsDone: Number(s.rowsDone ?? 0),
        rowsEstimated:
          s.rowsEstimated === null || s.rowsEstimated === undefined ? null : Number(s.rowsEstimated),
      }))
    : [];
  return {
    source,
    state: typeof p.state === 'string' ? p.state : 'unknown',
    confirmedLsn: text(p.confirmedLsn),
    lastShippedPosition: text(p.lastShippedPosition),
    lastCommitTimeUs: text(p.lastCommitTimeUs),
    updatedAt,
    snapshot,
    error: text(p.error),
  };
}

/** Blocked partitions as the consumer reports them: in its status partitions, or in teal.control consumer_blocked. */
export function blockedPartitions(consumerRaw: unknown, blockedRaw: unknown): BlockedPartition[] {
  const out = new Map<string, BlockedPartition>();
  const add = (topic: unknown, partition: unknown, reason: unknown) => {
    if (typeof topic !== 'string' || reason === undefined || reason === null || reason === false) return;
    const r = typeof reason === 'string' ? reason : (text(reason) ?? 'blocked');
    out.set(`${topic}:${Number(partition)}`, { topic, partition: Number(partition), reason: r });
  };
  const parts = (consumerRaw as { partitions?: unknown } | null)?.partitions;
  if (Array.isArray(parts)) for (const p of parts) add(p?.topic, p?.partition, p?.blocked);
  if (Array.isArray(blockedRaw))
    for (const b of blockedRaw) add(b?.topic, b?.partition, b?.reason ?? b?.blocked);
  else if (blockedRaw && typeof blockedRaw === 'object') {
    // { "topic:partition": reason }
    for (const [key, reason] of Object.entries(blockedRaw)) {
      const colon = key.lastIndexOf(':');
      if (colon > 0) add(key.slice(0, colon), key.slice(colon + 1), reason);
    }
  }
  return [...out.values()];
}

export interface StateInputs {
  draining: boolean;
  paused: boolean;
  fenced: boolean;
  slot: SlotStatus | null;
  producer: ProducerView | null;
  consumerState: string | null;
  lagRecords: number;
  nowMs?: number;
}

export function deriveState(s: StateInputs): PipelineState {
  if (s.draining) return 'draining';
  if (s.slot?.walStatus === 'lost' || s.producer?.state === 'failed' || s.consumerState === 'failed')
    return 'failed';
  if (s.paused) return 'paused';
  if (s.fenced && s.lagRecords === 0 && s.slot?.exists && (s.slot.lagBytes ?? 1) <= 0) return 'drained';
  const producer = s.producer;
  if (!producer) return 'stopped';
  if (producer.source === 'green' && producer.updatedAt) {
    const age = (s.nowMs ?? Date.now()) - Date.parse(producer.updatedAt);
    if (age > PRODUCER_STALE_MS) return 'stopped';
  }
  if (producer.state === 'snapshotting') return 'snapshotting';
  if (producer.state === 'starting') return 'starting';
  if (producer.state === 'paused') return 'paused';
  if (s.fenced && s.lagRecords === 0) return 'drained';
  return 'streaming';
}

export function statusWarnings(r: Omit<StatusReport, 'warnings' | 'checkedAt'>, prefix: string): string[] {
  const w: string[] = [];
  const slot = r.slot;
  if (slot && !slot.exists) {
    w.push(
      `replication slot ${slot.name} does not exist on blue: the producer creates it when it first starts`,
    );
  }
  if (slot?.exists && !slot.active && slot.walStatus !== 'lost') {
    w.push(
      `no producer is attached to slot ${slot.name}: blue retains WAL until one is (teal producer or teal run)`,
    );
  }
  if (slot?.walStatus === 'lost') {
    w.push(
      `replication slot ${slot.name} is invalidated (wal_status lost): blue removed WAL teal had not read; green has a gap — re-create the slot and re-snapshot`,
    );
  } else if (slot?.walStatus === 'unreserved') {
    w.push(
      `replication slot ${slot.name} is about to lose WAL (wal_status unreserved): catch up or raise max_slot_wal_keep_size`,
    );
  }
  if (slot && slot.level !== 'ok') {
    w.push(
      `blue retains ${formatBytes(slot.retainedWalBytes ?? slot.lagBytes ?? 0)} of WAL for slot ${slot.name} (${slot.level}): check that the producer runs and keeps up`,
    );
  }
  if (r.paused) {
    w.push(
      `teal is paused: blue keeps WAL for slot ${slot?.name ?? '?'} (${formatBytes(slot?.retainedWalBytes ?? 0)} now) until you resume`,
    );
  }
  if (r.fenced)
    w.push('blue is fenced (default_transaction_read_only = on): POST /unfence to allow writes again');
  for (const b of r.consumer.blocked) w.push(`partition ${b.topic}[${b.partition}] is blocked: ${b.reason}`);
  if (r.consumer.deadLetters > 0) {
    w.push(`${r.consumer.deadLetters} record(s) in the dead-letter topic ${deadLetterTopic(prefix)}`);
  }
  if (r.producer?.error) w.push(`producer: ${r.producer.error}`);
  if (r.consumer.error) w.push(`consumer: ${r.consumer.error}`);
  return w;
}

/** What the producer of this process says of green (its `green` status field), if anything. */
function producerRawGreen(
  raw: unknown,
): { reachable?: unknown; unreachableSince?: unknown; pendingWrites?: unknown } | null {
  const green = (raw as { green?: unknown } | null)?.green;
  return green && typeof green === 'object' ? green : null;
}

/** Green away: Kafka keeps filling (the broker is the buffer), state and apply wait for it. */
export function greenWarnings(
  unreachable: unknown,
  producerGreen: { reachable?: unknown; unreachableSince?: unknown; pendingWrites?: unknown } | null,
): string[] {
  const w: string[] = [];
  if (unreachable !== undefined && unreachable !== null) {
    w.push(
      `green does not answer (${text(unreachable) ?? 'unreachable'}): the producer keeps filling Kafka and the consumer applies when green is back; what status reads from green (applied positions, stored states) is missing`,
    );
  }
  if (producerGreen?.reachable === false) {
    const since =
      typeof producerGreen.unreachableSince === 'string' ? ` since ${producerGreen.unreachableSince}` : '';
    w.push(
      `green does not answer the producer${since}: streaming to Kafka goes on; ${Number(producerGreen.pendingWrites ?? 0)} state write(s) wait and are written when green is back`,
    );
  }
  return w;
}

/** What the reads answered, with this pipeline's teal.control rows already picked by key. */
export interface StatusInputs {
  config: {
    readonly slot: string;
    readonly lag: { warnBytes: number; criticalBytes: number };
    readonly kafka: { readonly topicPrefix: string };
  };
  slot: SlotState | undefined;
  fenced: boolean;
  stored: {
    producer?: ControlEntry;
    consumer?: ControlEntry;
    consumerBlocked?: ControlEntry;
    paused?: ControlEntry;
  };
  applied: readonly AppliedRow[];
  topics: TopicEnds;
  /** The Producer and Consumer of this process, when the API runs inside the pipeline. */
  live: { producer?: { status(): unknown }; consumer?: { status(): unknown } };
  /** A drain or cutover runs now. */
  draining: boolean;
  /** Green did not answer this status's reads (readGreenSide). */
  greenUnreachable?: unknown;
  /** 'reverse': the pipeline of `teal reverse` (green -> blue, issue 17); default 'forward'. */
  direction?: Direction;
}

/** Which way a pipeline streams: blue -> green, or back after a cutover with rollback. */
export type Direction = 'forward' | 'reverse';

export function statusReport(s: StatusInputs): StatusReport & { direction: Direction } {
  const { config, stored } = s;
  // The row in green is another producer's when it names another slot (several pipelines, one green).
  const storedSlot = (stored.producer?.value as { slot?: unknown } | null | undefined)?.slot;
  const producer = s.live.producer
    ? producerView(s.live.producer.status(), 'in-process', new Date().toISOString())
    : storedSlot === undefined || storedSlot === config.slot
      ? producerView(stored.producer?.value, 'green', stored.producer?.updatedAt ?? null)
      : null;
  const consumerRaw = (s.live.consumer?.status() ?? stored.consumer?.value ?? null) as {
    state?: unknown;
    error?: unknown;
  } | null;
  const blocked = blockedPartitions(consumerRaw, stored.consumerBlocked?.value);
  const partitions = partitionStatuses(s.topics.tables, s.applied, blocked);
  const lagRecords = partitions.reduce((sum, p) => sum + p.lag, 0);
  const paused = stored.paused?.value === true;
  const slot = slotStatus(config.slot, s.slot, producer, config.lag);
  const consumerError = consumerRaw?.error;
  const partial = {
    state: deriveState({
      draining: s.draining,
      paused,
      fenced: s.fenced,
      slot,
      producer,
      consumerState: typeof consumerRaw?.state === 'string' ? consumerRaw.state : null,
      lagRecords,
    }),
    paused,
    fenced: s.fenced,
    slot,
    producer,
    consumer: {
      state: typeof consumerRaw?.state === 'string' ? consumerRaw.state : null,
      partitions,
      lagRecords,
      deadLetters: s.topics.deadLetters,
      blocked,
      error:
        consumerError === undefined || consumerError === null
          ? null
          : typeof consumerError === 'string'
            ? consumerError
            : String((consumerError as { message?: unknown }).message ?? consumerError),
    },
  };
  return {
    direction: s.direction ?? 'forward',
    ...partial,
    warnings: [
      ...greenWarnings(
        s.greenUnreachable,
        s.live.producer ? producerRawGreen(s.live.producer.status()) : null,
      ),
      ...statusWarnings(partial, config.kafka.topicPrefix),
    ],
    checkedAt: new Date().toISOString(),
  };
}

export function updateGauges(metrics: TealMetrics, report: StatusReport): void {
  if (report.slot?.exists) {
    if (report.slot.lagBytes !== null) metrics.slotLagBytes.set(report.slot.lagBytes);
    if (report.slot.lagSeconds !== null) metrics.slotLagSeconds.set(report.slot.lagSeconds);
    if (report.slot.retainedWalBytes !== null) metrics.slotRetainedWalBytes.set(report.slot.retainedWalBytes);
  }
  for (const p of report.consumer.partitions) {
    metrics.consumerLagRecords.set({ topic: p.topic, partition: String(p.partition) }, p.lag);
  }
  metrics.blockedPartitions.set(report.consumer.blocked.length);
  for (const s of PIPELINE_STATES) metrics.state.set({ state: s }, s === report.state ? 1 : 0);
}
