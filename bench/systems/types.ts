import type { Endpoint } from '../lib/pg.ts';
import type { ProcRef } from '../lib/util.ts';

export interface BenchContext {
  blue: Endpoint;
  green: Endpoint;
  kafkaBrokers: string;
  /** Unique per run: slot, publication, topic and connector names derive from it. */
  runId: string;
  /** Folder for this run's files (configs, logs, offsets). */
  workDir: string;
  repoRoot: string;
}

/**
 * One replication system under test. The harness makes fresh data, then calls
 * start (with an initial snapshot), pause/resume around the catch-up backlog, and
 * teardown (which must stop every process it started and drop its slot).
 */
export interface BenchSystem {
  readonly name: string;
  /** Publishes through the Kafka broker: the broker's CPU and memory are part of its cost. */
  readonly usesKafka: boolean;
  /** One-time preparation (e.g. resolve jars); may throw a clear "not available" error. */
  prepare(ctx: BenchContext): Promise<void>;
  /** Creates the pipeline and starts it: it copies blue's current data, then streams. */
  start(ctx: BenchContext): Promise<void>;
  /** Stops consuming blue (slot kept, WAL retained). */
  pause(ctx: BenchContext): Promise<void>;
  resume(ctx: BenchContext): Promise<void>;
  /**
   * The system's own OS processes to sample for RSS and CPU, labelled (its sessions on blue
   * and green and the broker are found by the harness: bench/lib/procs.ts).
   */
  processes(ctx: BenchContext): Promise<ProcRef[]>;
  /** Proves the harness starts (smoke mode): returns a one-line description. */
  smoke(ctx: BenchContext): Promise<string>;
  teardown(ctx: BenchContext): Promise<void>;
  /** Throws when a pipeline process the harness started has died (checked while waiting). */
  check?(): void;
  /** One line for the report about how the run went (e.g. how pause was done). */
  note?(): string | undefined;
  /**
   * Its own latency histograms' running sums (seconds) and counts, by point of the stream
   * (teal: teal_stream_latency_seconds and teal_replication_lag_seconds as 'applied'); the
   * steady workload reports the mean of each over its window.
   */
  streamLatency?(): Promise<Record<string, { sum: number; count: number }>>;
}

/** Blue's walsender serving a slot: every system has one, so it is sampled for all. */
export const walsenderSql = `SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`;
