import {
  AggregatorRegistry,
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type MetricObjectWithValues,
  type MetricValue,
  Registry,
} from 'prom-client';

const GAUGES_NAMED_LIKE_COUNTERS = [
  'teal_nodejs_active_handles_total',
  'teal_nodejs_active_requests_total',
  'teal_nodejs_active_resources_total',
];

// Every teal_* metric, in one place so producer, consumer and API share one registry when
// they run in one process (`teal run`) and the names stay consistent when they do not.
// Naming follows Prometheus conventions: base units (seconds, bytes), _total for counters.
export function createMetrics(
  registry = new Registry(),
  options: {
    /** teal_process_* and teal_nodejs_* (CPU, memory, event loop, GC); false in a worker thread, whose process the main thread reports. */
    defaultMetrics?: boolean;
    /** 'reverse': `teal reverse` (issue 17); every series then carries direction="reverse", forward's none. */
    direction?: 'reverse';
  } = {},
) {
  if (options.direction) registry.setDefaultLabels({ direction: options.direction });
  if (options.defaultMetrics !== false) {
    // prom-client's names already start with process_ / nodejs_: one teal_ in front of them.
    collectDefaultMetrics({ register: registry, prefix: 'teal_' });
    // Gauges named like counters (_total is for counters only); each is the sum over the
    // `type` label of the gauge beside it (teal_nodejs_active_handles, ...).
    for (const name of GAUGES_NAMED_LIKE_COUNTERS) registry.removeSingleMetric(name);
  }
  const r = [registry];
  return {
    registry,
    eventsProduced: new Counter({
      name: 'teal_events_produced_total',
      help: 'Change events acknowledged by Kafka (acks=all), by source table and op.',
      labelNames: ['table', 'op'] as const,
      registers: r,
    }),
    eventsApplied: new Counter({
      name: 'teal_events_applied_total',
      help: 'Change events applied to green, by source table and op.',
      labelNames: ['table', 'op'] as const,
      registers: r,
    }),
    eventsSkipped: new Counter({
      name: 'teal_events_skipped_total',
      help: 'Replayed events skipped because green already holds their position.',
      labelNames: ['table'] as const,
      registers: r,
    }),
    deadLetters: new Counter({
      name: 'teal_dead_letters_total',
      help: 'Records sent to the dead-letter topic, by source table and error code.',
      labelNames: ['table', 'code'] as const,
      registers: r,
    }),
    applyBatchSeconds: new Histogram({
      name: 'teal_apply_batch_duration_seconds',
      help: 'Time to apply one batch to green, including its position row.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: r,
    }),
    applyBatchRows: new Histogram({
      name: 'teal_apply_batch_rows',
      help: 'Events per applied batch.',
      buckets: [1, 10, 100, 500, 1000, 5000, 10000, 50000],
      registers: r,
    }),
    slotLagBytes: new Gauge({
      name: 'teal_slot_lag_bytes',
      help: "Bytes of WAL between blue's current LSN and the slot's confirmed flush LSN.",
      registers: r,
    }),
    slotLagSeconds: new Gauge({
      name: 'teal_slot_lag_seconds',
      help: 'Age of the oldest change blue has that green does not (commit time of the last confirmed event).',
      registers: r,
    }),
    slotRetainedWalBytes: new Gauge({
      name: 'teal_slot_retained_wal_bytes',
      help: 'Bytes of WAL blue keeps for the slot (current LSN - restart_lsn).',
      registers: r,
    }),
    consumerLagRecords: new Gauge({
      name: 'teal_consumer_lag_records',
      help: 'Records in Kafka not yet applied to green, by topic and partition.',
      labelNames: ['topic', 'partition'] as const,
      registers: r,
    }),
    snapshotRows: new Counter({
      name: 'teal_snapshot_rows_total',
      help: 'Rows read by the snapshot and acknowledged by Kafka, by table.',
      labelNames: ['table'] as const,
      registers: r,
    }),
    replicationLagSeconds: new Histogram({
      name: 'teal_replication_lag_seconds',
      help: 'From commit on blue to applied in green, per applied batch (newest event).',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: r,
    }),
    // Where teal_replication_lag_seconds goes: the same clock difference taken at each hop, so
    // the difference of two points is the time spent between them (issue 15's lag by hop).
    streamLatencySeconds: new Histogram({
      name: 'teal_stream_latency_seconds',
      help:
        'From commit on blue to a point of the stream, per transaction (decoded) or per batch (newest event): ' +
        'decoded = the producer read the commit, sent = its batch handed to the Kafka client, ' +
        'acknowledged = Kafka acknowledged that batch, fetched = the consumer fetched it. ' +
        'Applied in green is teal_replication_lag_seconds.',
      labelNames: ['point'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: r,
    }),
    state: new Gauge({
      name: 'teal_state',
      help: 'Pipeline state: 1 for the current state label, 0 for the others.',
      labelNames: ['state'] as const,
      registers: r,
    }),
    blockedPartitions: new Gauge({
      name: 'teal_blocked_partitions',
      help: 'Partitions stopped by a schema policy or a persistent error.',
      registers: r,
    }),
  };
}

export type TealMetrics = ReturnType<typeof createMetrics>;

/** A point of teal_stream_latency_seconds, in the order a change passes them. */
export type StreamPoint = 'decoded' | 'sent' | 'acknowledged' | 'fetched';

/** Seconds from a blue commit time (µs since the epoch, blue's clock) to now (this host's clock), never negative. */
export function secondsSinceCommit(commitTimeUs: bigint, nowMs = Date.now()): number {
  return Math.max(0, nowMs / 1000 - Number(commitTimeUs) / 1e6);
}

/** One registry's metrics as `registry.getMetricsAsJSON()` gives them: plain data, safe to post between threads. */
export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/**
 * Prometheus text of several registries of teal_* metrics as one (`teal run`: the main
 * thread's and the producer thread's). Counters and histograms add up: each is counted in
 * one thread. A gauge series set in `primary` wins: the control API sets slot lag and
 * state there just before a scrape, over the copies the producer keeps, as one registry did.
 */
export async function mergeMetrics(primary: MetricsJson, ...others: MetricsJson[]): Promise<string> {
  // prom-client's typings say `type` is an enum; getMetricsAsJSON() gives its name.
  const withAggregator = (list: MetricsJson) =>
    list.map((m) => ({
      ...m,
      aggregator: String(m.type) === 'gauge' ? ('first' as const) : ('sum' as const),
    }));
  return AggregatorRegistry.aggregate([primary, ...others].map(withAggregator)).metrics();
}
