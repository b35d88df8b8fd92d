import type {
  KafkaClientName,
  OnMissingColumn,
  SessionReplicationRole,
  SnapshotVia,
} from './define-config.ts';

/** What a setting is when neither teal.config.ts nor the environment gives it: the local environment. */
export const DEFAULTS = Object.freeze({
  blueUrl: 'postgres://postgres@127.0.0.1:5433/app',
  greenUrl: 'postgres://postgres@127.0.0.1:5434/app',
  kafkaBrokers: ['127.0.0.1:9092'],
  topicPrefix: 'teal',
  partitions: 4,
  // The same as @teal/kafka's DEFAULT_KAFKA_CLIENT (for callers that pass no client).
  kafkaClient: 'platformatic' as KafkaClientName,
  maxMessageBytes: 16 * 1024 ** 2,
  slot: 'teal_slot',
  publication: 'teal_pub',
  apiHost: '127.0.0.1',
  apiPort: 8080,
  onMissingColumn: 'fail' as OnMissingColumn,
  createTables: false,
  sessionReplicationRole: 'replica' as SessionReplicationRole,
  batchSize: 5000,
  heartbeatMs: 10_000,
  chunkRows: 10_000,
  snapshotVia: 'direct' as SnapshotVia,
  // Two blue sessions on this 2-core machine; more where blue and green have the cores.
  snapshotParallel: 2,
  snapshotRangeRows: 100_000,
  lagWarnBytes: 1024 ** 3,
  lagCriticalBytes: 8 * 1024 ** 3,
});
