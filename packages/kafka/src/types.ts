// teal's own small interface over the Kafka client. Everything outside this package talks
// to Kafka through these types only, so the client library can be judged by the fault tests
// and replaced (two clients sit behind them today, client.ts) without touching producer,
// consumer or control code.

export type KafkaClientKind = 'kafkajs' | 'platformatic';

/** An OAUTHBEARER token as a hook returns it (@teal/config's kafka.sasl.oauthBearer). */
export interface OAuthBearerToken {
  token: string;
  /** Epoch milliseconds or a Date; left out: the token is asked for again after 5 minutes. */
  expiresAt?: number | Date;
  extensions?: Record<string, string>;
}

/** TLS to the brokers: PEM texts; the key and its passphrase behind functions (kept out of JSON and logs). */
export interface KafkaTls {
  readonly ca?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: (() => string) | undefined;
  readonly passphrase?: (() => string) | undefined;
  /** Check the certificate names the broker's host (default true). */
  readonly verifyHostname?: boolean;
}

export type KafkaSasl =
  | {
      readonly mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';
      readonly username: string;
      readonly password: () => string;
    }
  | {
      readonly mechanism: 'OAUTHBEARER';
      readonly oauthBearer: () => Promise<OAuthBearerToken> | OAuthBearerToken;
    };

export interface KafkaOptions {
  brokers: string[];
  clientId?: string;
  /**
   * The library behind the admin, the publisher and the consumer group (the topic readers
   * are kafkajs either way). Default: DEFAULT_KAFKA_CLIENT; teal's services pass @teal/config's `kafka.client`.
   */
  client?: KafkaClientKind;
  /**
   * The largest record batch teal writes (kafka.maxMessageBytes): topics this client creates
   * get it as `max.message.bytes` (an existing topic with less is raised), and the consumer
   * group and topic readers fetch records that large. Left out: the broker's defaults.
   */
  maxMessageBytes?: number;
  /** TLS to the brokers (every client of every role); undefined: plaintext. */
  tls?: KafkaTls | undefined;
  /** SASL login (every client of every role); undefined: none. */
  sasl?: KafkaSasl | undefined;
}

export interface TopicSpec {
  partitions: number;
  /** cleanup.policy=compact (for teal._schemas). */
  compacted?: boolean;
  /**
   * `max.message.bytes` of the topic; default KafkaOptions.maxMessageBytes. null: the broker's
   * own limit (teal._schemas, whose records are small).
   */
  maxMessageBytes?: number | null;
}

/** A topic as ensureTopic left it. */
export interface TopicState {
  partitions: number;
  /**
   * The largest record batch the topic accepts now (its `max.message.bytes`), null when
   * teal asked for no limit of its own. Less than asked when the topic existed with less and
   * could not be raised (ensureTopic logged why).
   */
  maxMessageBytes: number | null;
}

export interface TopicAdmin {
  /**
   * Creates the topic when missing; an existing topic keeps its partitions, and its
   * `max.message.bytes` is raised to the one asked for when lower.
   */
  ensureTopic(topic: string, spec: TopicSpec): Promise<TopicState>;
  partitionCount(topic: string): Promise<number>;
  /** Partition counts of several topics in one metadata request (0 for a topic that is gone). */
  partitionCounts(topics: readonly string[]): Promise<Map<string, number>>;
  /** Topic names starting with `prefix` (all when omitted). */
  listTopics(prefix?: string): Promise<string[]>;
  /** Per partition, the log end offset (the offset the next record will get). */
  logEndOffsets(topic: string): Promise<Array<{ partition: number; end: bigint }>>;
  /** Per partition, the log start offset (the earliest offset retention left). */
  logStartOffsets(topic: string): Promise<Array<{ partition: number; start: bigint }>>;
  deleteTopics(topics: string[]): Promise<void>;
  close(): Promise<void>;
}

export interface OutgoingRecord {
  topic: string;
  /** Explicit partition; when omitted the key decides (murmur2, the Java client's default). */
  partition?: number;
  key: Buffer | null;
  value: Buffer | null;
  headers?: Record<string, string>;
}

export interface Publisher {
  /**
   * Resolves once every record is acknowledged by all in-sync replicas (acks = -1).
   * Records of one partition keep the order of the array, and the order of successive
   * awaited calls. Rejects (with `retriable` set) when the broker could not take them:
   * the caller must then treat none of them as durable.
   */
  send(records: OutgoingRecord[]): Promise<void>;
  /** The partition a key lands in for a topic with `partitionCount` partitions. */
  partitionFor(key: Buffer, partitionCount: number): number;
  close(): Promise<void>;
}

export interface IncomingRecord {
  topic: string;
  partition: number;
  offset: bigint;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
  timestampMs: number;
}

export interface IncomingBatch {
  topic: string;
  partition: number;
  records: IncomingRecord[];
  /** The partition's log end offset as the broker reported it with this batch. */
  highWatermark: bigint;
  /** When the client received these records (Date.now()); absent in batches made by hand. */
  fetchedAtMs?: number;
}

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface GroupHandlers {
  /**
   * Called after each (re)assignment, before batches of those partitions are handed out.
   * Return the offsets to start from ("topic:partition" -> next offset to read); partitions
   * not in the map start from the group's committed offset, or the beginning.
   */
  onAssign?(assigned: TopicPartition[]): Promise<Map<string, bigint>>;
  /**
   * Handles one batch of one partition. Batches of one partition are handed out one at a
   * time in offset order; different partitions run concurrently (up to `concurrency`).
   * Throwing makes the same records come again (after backoff), so a failed batch is
   * never skipped.
   */
  eachBatch(batch: IncomingBatch): Promise<void>;
}

export interface GroupConsumerOptions {
  groupId: string;
  /** The library behind this group (default: KafkaOptions.client; a test or bench may pick one). */
  client?: KafkaClientKind;
  /** Topics matching this are consumed; new matching topics are picked up (metadata refresh). */
  topics: RegExp;
  concurrency?: number;
  /**
   * Bytes of one partition handed to eachBatch at most (one record at least). Fetches read
   * up to KafkaOptions.maxMessageBytes per partition when that is more, so a record of that
   * size is consumed; a larger fetch is handed out in slices of this size.
   */
  maxBytesPerPartition?: number;
}

export interface GroupConsumer {
  run(handlers: GroupHandlers): Promise<void>;
  /** Advisory: records the group's committed offset (green holds the authoritative position). */
  commit(topic: string, partition: number, nextOffset: bigint): Promise<void>;
  /**
   * Reads the partition from `offset` next (after a batch fetched from a stale offset); records
   * below it in batches already fetched are filtered out.
   */
  seek?(topic: string, partition: number, offset: bigint): void;
  /** The earliest offset the broker still holds for the partition (its log start offset). */
  earliestOffset?(topic: string, partition: number): Promise<bigint>;
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}
