import { randomUUID } from 'node:crypto';
import { TealError } from '@teal/errors';
import { type Logger, rootLogger, withRetry } from '@teal/runtime';
import {
  type Admin,
  type Consumer,
  type EachBatchPayload,
  Kafka,
  type KafkaMessage,
  logLevel,
  Partitioners,
  type Producer,
} from 'kafkajs';
import { OrderedSends } from './ordered-sends.ts';
import { murmur2, PlatformaticAdmin, PlatformaticPublisher } from './platformatic-adapter.ts';
import type {
  GroupConsumer,
  GroupConsumerOptions,
  GroupHandlers,
  IncomingRecord,
  KafkaClientKind,
  KafkaOptions,
  OutgoingRecord,
  Publisher,
  TopicAdmin,
  TopicPartition,
  TopicSpec,
} from './types.ts';

let kafkaLog: Logger | undefined;
/** The kafka component's logger, made on first use (importing this file writes nothing). */
function log(): Logger {
  kafkaLog ??= rootLogger().child({ component: 'kafka' });
  return kafkaLog;
}

// kafkajs logs through its own logger; route it into teal's. Its ERROR lines are mostly
// responses it retries by itself (coordinator loading, topic exists), so they are warnings
// here; teal reports what finally fails through its own errors.
const KAFKAJS_NOISE = [/Limiting retries for the idempotent producer/];
function logCreator() {
  return ({ level, log: entry }: { level: number; log: { message: string } & Record<string, unknown> }) => {
    const { message, ...rest } = entry;
    if (level > logLevel.WARN || KAFKAJS_NOISE.some((re) => re.test(message))) return;
    log().warn(rest, message);
  };
}

/** Kafka errors that a retry can fix carry `retriable` (kafkajs sets it on its own errors). */
function wrapKafkaError(err: unknown, what: string): TealError {
  if (err instanceof TealError) return err;
  const retriable = (err as { retriable?: boolean }).retriable ?? true;
  const message = err instanceof Error ? err.message : String(err);
  return new TealError('TEAL_KAFKA_ERROR', `${what}: ${message}`, { retriable, cause: err });
}

export const DEFAULT_KAFKA_CLIENT: KafkaClientKind = 'platformatic';

/** The client named by `TEAL_KAFKA_CLIENT` (kafkajs | platformatic), else the default. */
export function kafkaClientFromEnv(env: NodeJS.ProcessEnv = process.env): KafkaClientKind {
  const named = env.TEAL_KAFKA_CLIENT?.trim();
  if (!named) return DEFAULT_KAFKA_CLIENT;
  if (named === 'kafkajs' || named === 'platformatic') return named;
  throw new TealError(
    'TEAL_CONFIG_INVALID',
    `TEAL_KAFKA_CLIENT=${named} is not a Kafka client teal knows: set it to kafkajs or platformatic, or unset it`,
  );
}

export class KafkaClient {
  /** kafkajs, always: the consumer group and the topic readers use it whichever client publishes. */
  readonly kafka: Kafka;
  /** The library behind admin() and publisher(). */
  readonly clientKind: KafkaClientKind;
  private readonly closers = new Set<() => Promise<void>>();

  constructor(readonly options: KafkaOptions) {
    this.clientKind = options.client ?? kafkaClientFromEnv();
    this.kafka = new Kafka({
      clientId: options.clientId ?? 'teal',
      brokers: options.brokers,
      logLevel: logLevel.WARN,
      logCreator,
      connectionTimeout: 5_000,
      requestTimeout: 30_000,
      retry: { initialRetryTime: 200, retries: 8, maxRetryTime: 5_000 },
    });
  }

  admin(): TopicAdmin {
    const admin =
      this.clientKind === 'platformatic'
        ? new PlatformaticAdmin(this.options)
        : new KafkajsAdmin(this.kafka.admin());
    this.track(() => admin.close());
    return admin;
  }

  async publisher(): Promise<Publisher> {
    if (this.clientKind === 'platformatic') {
      const publisher = new PlatformaticPublisher(this.options);
      try {
        await publisher.connect();
      } catch (err) {
        await publisher.close();
        throw err;
      }
      this.track(() => publisher.close());
      return publisher;
    }
    const publisher = new KafkajsPublisher(
      this.kafka.producer({
        // Idempotent + one request in flight: the broker de-duplicates retried batches and
        // keeps per-partition order even when a request is retried (kafkajs #598 shows up with
        // several in flight).
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        createPartitioner: Partitioners.DefaultPartitioner,
      }),
    );
    await publisher.connect();
    this.track(() => publisher.close());
    return publisher;
  }

  groupConsumer(options: GroupConsumerOptions): GroupConsumer {
    const consumer = new KafkajsGroupConsumer(this.kafka, options);
    this.track(() => consumer.close());
    return consumer;
  }

  private track(close: () => Promise<void>): void {
    this.closers.add(close);
  }

  async close(): Promise<void> {
    const closers = [...this.closers];
    this.closers.clear();
    await Promise.allSettled(closers.map((close) => close()));
  }
}

class KafkajsAdmin implements TopicAdmin {
  private connected: Promise<void> | undefined;

  constructor(private readonly admin: Admin) {}

  private connect(): Promise<void> {
    this.connected ??= this.admin.connect().catch((err) => {
      this.connected = undefined;
      throw wrapKafkaError(err, 'cannot connect the Kafka admin client');
    });
    return this.connected;
  }

  async ensureTopic(topic: string, spec: TopicSpec): Promise<void> {
    await this.connect();
    try {
      await this.admin.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic,
            numPartitions: spec.partitions,
            replicationFactor: -1,
            configEntries: spec.compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
          },
        ],
      });
    } catch (err) {
      // Two processes may race to create the same topic; the loser's error is harmless.
      if ((err as { type?: string }).type === 'TOPIC_ALREADY_EXISTS') return;
      const nested = (err as { errors?: Array<{ type?: string }> }).errors;
      if (nested?.every((e) => e.type === 'TOPIC_ALREADY_EXISTS')) return;
      throw wrapKafkaError(err, `cannot create topic ${topic}`);
    }
  }

  async partitionCount(topic: string): Promise<number> {
    await this.connect();
    const metadata = await this.admin.fetchTopicMetadata({ topics: [topic] });
    return metadata.topics[0]?.partitions.length ?? 0;
  }

  async listTopics(prefix = ''): Promise<string[]> {
    await this.connect();
    const topics = await this.admin.listTopics();
    return topics.filter((t) => t.startsWith(prefix)).sort();
  }

  async logEndOffsets(topic: string): Promise<Array<{ partition: number; end: bigint }>> {
    await this.connect();
    const offsets = await this.admin.fetchTopicOffsets(topic);
    return offsets
      .map((o) => ({ partition: o.partition, end: BigInt(o.high) }))
      .sort((a, b) => a.partition - b.partition);
  }

  async deleteTopics(topics: string[]): Promise<void> {
    if (topics.length === 0) return;
    await this.connect();
    await this.admin.deleteTopics({ topics });
  }

  async deleteGroup(groupId: string): Promise<void> {
    await this.connect();
    await this.admin.deleteGroups([groupId]).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.connected) await this.admin.disconnect().catch(() => undefined);
    this.connected = undefined;
  }
}

class KafkajsPublisher implements Publisher {
  constructor(private readonly producer: Producer) {}

  async connect(): Promise<void> {
    try {
      await this.producer.connect();
    } catch (err) {
      throw wrapKafkaError(err, 'cannot connect the Kafka producer');
    }
  }

  private readonly ordered = new OrderedSends();

  /** One send at a time, in call order (OrderedSends says why). */
  send(records: OutgoingRecord[]): Promise<void> {
    return this.ordered.run(() => this.sendNow(records));
  }

  private async sendNow(records: OutgoingRecord[]): Promise<void> {
    if (records.length === 0) return;
    // One request per call, grouped by topic; kafkajs keeps the array order per partition.
    const byTopic = new Map<string, OutgoingRecord[]>();
    for (const record of records) {
      const list = byTopic.get(record.topic);
      if (list) list.push(record);
      else byTopic.set(record.topic, [record]);
    }
    try {
      await this.producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, list]) => ({
          topic,
          messages: list.map((r) => ({
            key: r.key,
            value: r.value,
            partition: r.partition,
            headers: r.headers,
          })),
        })),
      });
    } catch (err) {
      throw wrapKafkaError(err, `Kafka did not acknowledge ${records.length} records`);
    }
  }

  partitionFor(key: Buffer, partitionCount: number): number {
    // The Java client's murmur2 partitioner, as kafkajs's DefaultPartitioner implements it
    // (toPositive(murmur2(key)) % partitions); the test compares it with kafkajs's own.
    return (murmur2(key) & 0x7fffffff) % partitionCount;
  }

  async close(): Promise<void> {
    await this.producer.disconnect().catch(() => undefined);
  }
}

function toIncoming(topic: string, partition: number, m: KafkaMessage): IncomingRecord {
  // Per record: no Object.entries array (teal's own change records carry no headers).
  const headers: Record<string, string> = {};
  const raw = m.headers;
  if (raw) {
    for (const name in raw) {
      const value = raw[name];
      if (value === undefined) continue;
      headers[name] = Array.isArray(value) ? String(value[0]) : String(value);
    }
  }
  return {
    topic,
    partition,
    offset: BigInt(m.offset),
    key: m.key,
    value: m.value,
    headers,
    timestampMs: Number(m.timestamp),
  };
}

const tpKey = (topic: string, partition: number) => `${topic}:${partition}`;

/**
 * A consumer group over every topic matching a pattern. kafkajs resolves a regex once, at
 * subscribe time, so new topics are found by polling the topic list and re-subscribing.
 * A failing batch handler is retried in place (with heartbeats) rather than crashing the
 * kafkajs runner, which would rebalance the whole group.
 */
class KafkajsGroupConsumer implements GroupConsumer {
  private consumer: Consumer | undefined;
  private handlers: GroupHandlers | undefined;
  private topics = new Set<string>();
  private readonly startOffsets = new Map<string, bigint>();
  private paused = false;
  private closed = false;
  private topicPoll: NodeJS.Timeout | undefined;
  private restarting: Promise<void> | undefined;
  private readonly admin: KafkajsAdmin;

  constructor(
    private readonly kafka: Kafka,
    private readonly options: GroupConsumerOptions,
  ) {
    this.admin = new KafkajsAdmin(kafka.admin());
  }

  async run(handlers: GroupHandlers): Promise<void> {
    this.handlers = handlers;
    this.topics = new Set(await this.matchingTopics());
    await this.startConsumer();
    this.topicPoll = setInterval(() => void this.checkNewTopics(), 3_000);
    this.topicPoll.unref();
  }

  private async matchingTopics(): Promise<string[]> {
    const all = await this.admin.listTopics();
    return all.filter((t) => this.options.topics.test(t));
  }

  private async checkNewTopics(): Promise<void> {
    if (this.closed || this.restarting) return;
    try {
      const now = await this.matchingTopics();
      if (now.some((t) => !this.topics.has(t))) {
        this.topics = new Set(now);
        log().info({ topics: now.length }, 'new topics matched; re-subscribing');
        this.restarting = this.restartConsumer().finally(() => {
          this.restarting = undefined;
        });
      }
    } catch (err) {
      log().warn({ err }, 'cannot list topics');
    }
  }

  private async restartConsumer(): Promise<void> {
    const old = this.consumer;
    this.consumer = undefined;
    await old?.disconnect().catch(() => undefined);
    if (!this.closed) await this.startConsumer();
  }

  private async startConsumer(): Promise<void> {
    if (this.topics.size === 0) return; // the topic poll starts us when the first topic appears
    const consumer = this.kafka.consumer({
      groupId: this.options.groupId,
      allowAutoTopicCreation: false,
      maxBytesPerPartition: this.options.maxBytesPerPartition ?? 4 * 1024 * 1024,
      // A whole fetch (every partition of the broker) stays under this, however many topics
      // match: the consumer holds up to two fetches at once (one applying, one decoded).
      maxBytes: 8 * 1024 * 1024,
      maxWaitTimeInMs: 200,
      // A killed consumer holds its partitions until this expires (the soak measured ~31 s
      // recoveries at 30 s). Handlers return within seconds (apply lanes), so 10 s is safe.
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
      retry: { initialRetryTime: 200, retries: 10, maxRetryTime: 5_000 },
    });
    this.consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      const assignment = event.payload.memberAssignment as Record<string, number[]>;
      const assigned: TopicPartition[] = Object.entries(assignment).flatMap(([topic, partitions]) =>
        partitions.map((partition) => ({ topic, partition })),
      );
      void this.onAssigned(consumer, assigned);
    });
    await withRetry(() => consumer.connect(), { isRetriable: () => !this.closed, deadlineMs: 60_000 });
    await consumer.subscribe({ topics: [...this.topics], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.options.concurrency ?? 4,
      eachBatch: (payload) => this.handleBatch(payload),
    });
    if (this.paused) this.pauseConsumer(consumer);
  }

  private async onAssigned(consumer: Consumer, assigned: TopicPartition[]): Promise<void> {
    if (!this.handlers?.onAssign) return;
    try {
      const starts = await this.handlers.onAssign(assigned);
      for (const [key, offset] of starts) {
        this.startOffsets.set(key, offset);
        const colon = key.lastIndexOf(':');
        consumer.seek({
          topic: key.slice(0, colon),
          partition: Number(key.slice(colon + 1)),
          offset: String(offset),
        });
      }
    } catch (err) {
      log().error({ err }, 'cannot compute start offsets after assignment; records below them are filtered');
    }
  }

  private async handleBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload) {
    const start = this.startOffsets.get(tpKey(batch.topic, batch.partition)) ?? 0n;
    // Records fetched before the seek to green's position landed are already applied.
    const records = batch.messages
      .map((m) => toIncoming(batch.topic, batch.partition, m))
      .filter((r) => r.offset >= start);
    if (records.length === 0) return;
    const incoming = {
      topic: batch.topic,
      partition: batch.partition,
      records,
      highWatermark: BigInt(batch.highWatermark),
    };
    let delay = 200;
    for (;;) {
      if (!isRunning() || isStale() || this.closed) return; // not resolved: redelivered later
      try {
        await this.handlers!.eachBatch(incoming);
        break;
      } catch (err) {
        log().warn(
          { err, topic: batch.topic, partition: batch.partition },
          'batch failed; retrying in place',
        );
        await heartbeat().catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 5_000);
      }
    }
    const last = records[records.length - 1]!.offset;
    resolveOffset(String(last));
    this.startOffsets.set(tpKey(batch.topic, batch.partition), last + 1n);
    await heartbeat().catch(() => undefined);
  }

  async commit(topic: string, partition: number, nextOffset: bigint): Promise<void> {
    await this.consumer
      ?.commitOffsets([{ topic, partition, offset: String(nextOffset) }])
      .catch((err) => log().debug({ err }, 'advisory offset commit failed'));
  }

  private pauseConsumer(consumer: Consumer): void {
    consumer.pause([...this.topics].map((topic) => ({ topic })));
  }

  pause(): void {
    this.paused = true;
    if (this.consumer) this.pauseConsumer(this.consumer);
  }

  resume(): void {
    this.paused = false;
    this.consumer?.resume([...this.topics].map((topic) => ({ topic })));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.topicPoll) clearInterval(this.topicPoll);
    await this.restarting;
    await this.consumer?.disconnect().catch(() => undefined);
    this.consumer = undefined;
    await this.admin.close();
  }
}

/**
 * The compacted `<prefix>._schemas` topic: every writer schema, keyed by its fingerprint, so
 * any Avro reader can decode teal's records.
 */
export class SchemaTopic {
  private publisher: Promise<Publisher> | undefined;
  private readonly published = new Set<string>();

  constructor(
    private readonly client: KafkaClient,
    readonly topic: string,
  ) {}

  async ensure(): Promise<void> {
    const admin = this.client.admin();
    try {
      await admin.ensureTopic(this.topic, { partitions: 1, compacted: true });
    } finally {
      await admin.close();
    }
  }

  async publish(fingerprintHex: string, schemaJson: string): Promise<void> {
    if (this.published.has(fingerprintHex)) return;
    this.publisher ??= this.ensure().then(() => this.client.publisher());
    const publisher = await this.publisher;
    await publisher.send([
      { topic: this.topic, partition: 0, key: Buffer.from(fingerprintHex), value: Buffer.from(schemaJson) },
    ]);
    this.published.add(fingerprintHex);
  }

  /** Reads the whole topic, from its start to its current end. */
  async loadAll(): Promise<Map<string, string>> {
    await this.ensure();
    const admin = new KafkajsAdmin(this.client.kafka.admin());
    const schemas = new Map<string, string>();
    const groupId = `teal-schema-reader-${randomUUID()}`;
    try {
      const ends = await admin.logEndOffsets(this.topic);
      const end = ends.find((e) => e.partition === 0)?.end ?? 0n;
      if (end === 0n) return schemas;
      const consumer = this.client.kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
      await consumer.connect();
      try {
        await consumer.subscribe({ topics: [this.topic], fromBeginning: true });
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () =>
              reject(
                new TealError('TEAL_SCHEMA_LOAD_TIMEOUT', `could not read ${this.topic} within 60 s`, {
                  retriable: true,
                }),
              ),
            60_000,
          );
          consumer
            .run({
              autoCommit: false,
              eachMessage: async ({ message }) => {
                if (message.key && message.value)
                  schemas.set(message.key.toString(), message.value.toString());
                if (BigInt(message.offset) + 1n >= end) {
                  clearTimeout(timer);
                  resolve();
                }
              },
            })
            .catch(reject);
        });
      } finally {
        await consumer.disconnect().catch(() => undefined);
      }
    } finally {
      await admin.deleteGroup(groupId);
      await admin.close();
    }
    return schemas;
  }

  async close(): Promise<void> {
    if (this.publisher) await (await this.publisher.catch(() => undefined))?.close();
  }
}
