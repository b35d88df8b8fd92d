import type { ReverseTable } from '@teal/config';
import type { VerifyProgress, VerifyReport } from './verify-report.ts';

// The answers of the control plane, shared by the API (which serialises them against the
// JSON schemas in schemas.ts), the CLI (which prints them) and the backend (which builds them).

export type PipelineState =
  | 'starting'
  | 'snapshotting'
  | 'streaming'
  | 'paused'
  | 'draining'
  | 'drained'
  | 'failed'
  | 'stopped';

export const PIPELINE_STATES: readonly PipelineState[] = [
  'starting',
  'snapshotting',
  'streaming',
  'paused',
  'draining',
  'drained',
  'failed',
  'stopped',
];

export type LagLevel = 'ok' | 'warn' | 'critical';

export interface SlotStatus {
  name: string;
  exists: boolean;
  active: boolean;
  walStatus: string | null;
  currentLsn: string | null;
  confirmedLsn: string | null;
  restartLsn: string | null;
  /** pg_current_wal_lsn() - confirmed_flush_lsn. */
  lagBytes: number | null;
  /** pg_current_wal_lsn() - restart_lsn: what blue keeps on disk for the slot. */
  retainedWalBytes: number | null;
  lagSeconds: number | null;
  level: LagLevel;
}

export interface SnapshotTableStatus {
  table: string;
  state: string;
  rowsDone: number;
  rowsEstimated: number | null;
}

export interface ProducerView {
  source: 'in-process' | 'green';
  state: string;
  confirmedLsn: string | null;
  lastShippedPosition: string | null;
  lastCommitTimeUs: string | null;
  /** When the producer last reported (green teal.control updated_at), ISO. */
  updatedAt: string | null;
  snapshot: SnapshotTableStatus[];
  error: string | null;
}

export interface PartitionStatus {
  topic: string;
  partition: number;
  /** Last offset applied in green, null when green has no position row for the partition. */
  appliedOffset: number | null;
  appliedPosition: string | null;
  /** Log end offset in Kafka (the offset the next record gets). */
  end: number;
  lag: number;
  blocked: string | null;
}

export interface BlockedPartition {
  topic: string;
  partition: number;
  reason: string;
}

export interface ConsumerView {
  state: string | null;
  partitions: PartitionStatus[];
  lagRecords: number;
  deadLetters: number;
  blocked: BlockedPartition[];
  error: string | null;
}

export interface StatusReport {
  state: PipelineState;
  paused: boolean;
  fenced: boolean;
  slot: SlotStatus | null;
  producer: ProducerView | null;
  consumer: ConsumerView;
  warnings: string[];
  checkedAt: string;
  /** Online verify's progress (absent before its first pass). */
  onlineVerify?: OnlineVerifyStatus;
  /** 'reverse' in `teal reverse` (green -> blue, issue 17); statusReport always sets it. */
  direction?: 'forward' | 'reverse';
}

export interface OnlineVerifyStatus {
  /** A pass runs in this process now (the background of teal run, or teal verify --online). */
  running: boolean;
  /** Tables with a pass, and those with a complete one (what cutover's delta can rely on). */
  tables: number;
  tablesComplete: number;
  chunksVerified: number;
  chunksTotal: number;
  /** Blue's oldest WAL position among the newest pass's chunks. */
  asOfLsn: string | null;
  /** Chunks whose keys were still changing at their last check (cutover re-checks them). */
  recheckPending: number;
  /** Chunks with a stable difference. */
  mismatches: number;
}

export interface PartitionProgress {
  topic: string;
  partition: number;
  end: number;
  appliedOffset: number | null;
  behind: number;
}

export interface DrainOptions {
  timeoutMs: number;
  fence: boolean;
  signal?: AbortSignal;
}

export interface DeadLetterCount {
  /** "schema.table" of the record's source topic (header teal.source.topic). */
  table: string;
  count: number;
}

export interface DeadLetterCounts {
  /** Records ever written to `<prefix>._dlq` (its log end offsets). */
  total: number;
  /** Per source table, from the records the topic still holds; expired ones are not in it. */
  tables: DeadLetterCount[];
}

export interface SnapshotPending {
  table: string;
  /** snapshot_progress state; 'pending' when green has no row for the table yet. */
  state: string;
  rowsDone: number;
  rowsEstimated: number | null;
}

export interface DrainResult {
  drained: true;
  /** False when the dead-letter topic holds records: green lacks those changes. */
  clean: boolean;
  deadLetters: DeadLetterCounts;
  /** Everything committed on blue up to this LSN is applied in green. */
  lsn: string;
  targetLsn: string;
  confirmedLsn: string;
  partitions: PartitionProgress[];
  waitedMs: number;
  fenced: boolean;
}

export interface PreparedTransaction {
  gid: string;
  owner: string;
  /** ISO time it was prepared. */
  prepared: string;
}

export interface UnfencedSession {
  pid: number;
  usename: string | null;
  applicationName: string;
  backendType: string;
  /** ISO time the backend started, before the fence. */
  backendStart: string;
}

/** What can still change blue after the fence: each would be lost by a switch to green. */
export interface FenceHoles {
  preparedTransactions: PreparedTransaction[];
  sessions: UnfencedSession[];
}

export interface FenceResult extends FenceHoles {
  fenced: boolean;
  database: string;
  terminatedSessions: number;
  /** ISO time the fence took effect; null for unfence. */
  fencedAt: string | null;
}

export interface SequenceCopy {
  blue: string;
  green: string | null;
  value: string | null;
  ok: boolean;
  note: string | null;
}

export interface CutoverOptions {
  fence: boolean;
  timeoutMs: number;
  verify: boolean;
  unfenceOnFailure: boolean;
  /** Switch although the dead-letter topic holds records (the operator accepts losing them). */
  acceptDeadLetters?: boolean;
  /** Verify every row inside the window, as before online verify (default: only the delta). */
  fullVerify?: boolean;
  /** Everything but the fence: blue stays writable, the report says how long the window would be. */
  dryRun?: boolean;
  /** Prepare the way back (issue 17): the reverse publication and slot on green, recorded for `teal reverse`. */
  withRollback?: boolean;
}

/** The reverse pipeline's slot and publication on green, made by `cutover --with-rollback`. */
export interface RollbackPrepared {
  slot: string;
  publication: string;
  /** The slot's consistent point on green. */
  lsn: string;
  topicPrefix: string;
  tables: ReverseTable[];
}

/** The write window: from the fence (a dry run: from the drain) to the report, and each step in it. */
export interface CutoverWindow {
  /** False for a dry run: nothing was fenced, `ms` is what the window would have been. */
  fenced: boolean;
  ms: number;
  steps: { name: CutoverStep['name']; ms: number }[];
}

/** What part of the data was verified before the fence (online) and what inside the window. */
export interface CutoverVerification {
  kind: 'delta' | 'full' | 'none';
  beforeFence: { tables: string[]; rows: number; asOfLsn: string | null };
  afterFence: { deltaTables: string[]; deltaKeys: number; fullTables: { table: string; reason: string }[] };
}

export interface CutoverStep {
  name: 'fence' | 'drain' | 'sequences' | 'reverse-slot' | 'verify' | 'rollback' | 'release' | 'unfence';
  ok: boolean;
  ms: number;
  details: string;
}

export type { VerifyReport as VerifyReportView, VerifyTableReport } from './verify-report.ts';

export interface CutoverReport {
  safeToSwitch: boolean;
  fenced: boolean;
  drainLsn: string | null;
  /** From the drain; null when it did not finish. */
  deadLetters: DeadLetterCounts | null;
  /** What the fence could not stop; null without a fence. */
  fenceHoles: FenceHoles | null;
  steps: CutoverStep[];
  sequences: SequenceCopy[];
  verify: VerifyReport | null;
  warnings: string[];
  /** Set by runCutover (optional for fakes of the backend). */
  dryRun?: boolean;
  window?: CutoverWindow;
  verification?: CutoverVerification;
  /** `withRollback`: what was prepared on green for `teal reverse`; null when not asked or not safe. */
  rollback?: RollbackPrepared | null;
  /** 'rollback' for `teal rollback`'s report (the reverse cutover: source green, target blue). */
  direction?: 'forward' | 'rollback';
}

export interface VerifyRequest {
  tables?: string[];
  /** Chunk by chunk while the pipeline runs, kept for cutover's delta (online-verify.ts). */
  online?: boolean;
  onProgress?: (progress: VerifyProgress) => void;
  signal?: AbortSignal;
}

export interface ReadyCheck {
  ok: boolean;
  error: string | null;
}

export interface ReadyReport {
  ready: boolean;
  checks: { blue: ReadyCheck; green: ReadyCheck; kafka: ReadyCheck };
}
