import { withRetry } from '@teal/runtime';
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import {
  CoalescedCommits,
  DEFAULT_BATCH_BYTES,
  FETCH_BYTES,
  handleInPlace,
  settles,
  sliceByBytes,
  tpKey,
} from '../group-batches.ts';
import { log } from '../log.ts';
import { tlsProbe } from '../security.ts';
import type {
  GroupConsumer,
  GroupConsumerOptions,
  GroupHandlers,
  IncomingBatch,
  IncomingRecord,
  TopicPartition,
} from '../types.ts';
import { KafkajsAdmin } from './admin.ts';
import { kafkajsOptions } from './connection.ts';
import { wrapKafkajsError } from './errors.ts';

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

const ASSIGN_WAIT_MS = 5_000;

const REJOIN = new Set(['REBALANCE_IN_PROGRESS', 'UNKNOWN_MEMBER_ID', 'ILLEGAL_GENERATION']);

async function rejoinAsked(heartbeat: () => Promise<void>): Promise<boolean> {
  try {
    await heartbeat();
    return false;
  } catch (err) {
    return REJOIN.has((err as { type?: string }).type ?? '');
  }
}

/**
 * A consumer group over every topic matching a pattern. kafkajs resolves a regex once, at
 * subscribe time, so new topics are found by polling the topic list and re-subscribing.
 * A failing batch handler is retried in place (with heartbeats) rather than crashing the
 * kafkajs runner, which would rebalance the whole group.
 */
export class KafkajsGroupConsumer implements GroupConsumer {
  private consumer: Consumer | undefined;
  private handlers: GroupHandlers | undefined;
  private topics = new Set<string>();
  // Green's next offset per partition of the current assignment, from onAssign: records
  // below it (fetched before the seek landed) are filtered out. Cleared at each join, so an
  // offset of an earlier assignment never filters a later one.
  private readonly startOffsets = new Map<string, bigint>();
  // The onAssign of the newest join: batches wait for it, so none is judged by an old start.
  private assigning: Promise<void> | undefined;
  private paused = false;
  private closed = false;
  private topicPoll: NodeJS.Timeout | undefined;
  private restarting: Promise<void> | undefined;
  private readonly admin: KafkajsAdmin;
  private readonly commits = new CoalescedCommits(async (offsets) => {
    await this.consumer?.commitOffsets(offsets.map((o) => ({ ...o, offset: String(o.offset) })));
  });
  /** Bytes of one partition per eachBatch call (GroupConsumerOptions.maxBytesPerPartition). */
  private readonly batchBytes: number;

  /** `maxMessageBytes`: the largest record teal writes (KafkaOptions.maxMessageBytes), fetched whole. */
  constructor(
    private readonly kafka: Kafka,
    private readonly options: GroupConsumerOptions,
    private readonly maxMessageBytes?: number,
  ) {
    this.admin = new KafkajsAdmin(kafka.admin(), kafkajsOptions(kafka));
    this.batchBytes = options.maxBytesPerPartition ?? DEFAULT_BATCH_BYTES;
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
      // The broker hands out a record larger than the partition's fetch limit only when it is
      // the first of the first non-empty partition of a fetch (KIP-74), and kafkajs always asks
      // for the partitions in one order: a big record behind a busy partition would wait for
      // as long as that one has data. So each partition (and the fetch) may carry the largest
      // record teal writes; handleBatch hands it out in slices of `batchBytes`.
      maxBytesPerPartition: Math.max(this.batchBytes, this.maxMessageBytes ?? 0),
      // A whole fetch (every partition of the broker) stays under this, however many topics
      // match: the consumer holds up to two fetches at once (one applying, one decoded).
      maxBytes: Math.max(FETCH_BYTES, this.maxMessageBytes ?? 0),
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
      this.startOffsets.clear();
      const assigning = this.onAssigned(consumer, assigned);
      this.assigning = assigning;
      void assigning.finally(() => {
        if (this.assigning === assigning) this.assigning = undefined;
      });
    });
    // A refused TLS handshake or login is not retried: it fails the same way until fixed.
    const options = kafkajsOptions(this.kafka);
    await tlsProbe(options);
    await withRetry(
      () =>
        consumer
          .connect()
          .catch((err) =>
            Promise.reject(wrapKafkajsError(err, 'cannot connect the Kafka consumer group', options)),
          ),
      {
        isRetriable: (err) => !this.closed && (err as { code?: string }).code === 'TEAL_KAFKA_ERROR',
        deadlineMs: 60_000,
      },
    );
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
    const fetchedAtMs = Date.now();
    // Bounded: a slow green must not cost the session (the applier's own check then decides).
    if (this.assigning) await settles(this.assigning, ASSIGN_WAIT_MS);
    if (!isRunning() || isStale() || this.closed) return;
    const start = this.startOffsets.get(tpKey(batch.topic, batch.partition)) ?? 0n;
    // Records fetched before the seek to green's position landed are already applied.
    const records = batch.messages
      .map((m) => toIncoming(batch.topic, batch.partition, m))
      .filter((r) => r.offset >= start);
    if (records.length === 0) return;
    for (const slice of sliceByBytes(records, this.batchBytes)) {
      const handled = await this.handleSlice(
        {
          topic: batch.topic,
          partition: batch.partition,
          records: slice,
          highWatermark: BigInt(batch.highWatermark),
          fetchedAtMs,
        },
        { resolveOffset, heartbeat, isRunning, isStale },
      );
      if (!handled) return;
    }
  }

  /** Hands one slice to the handler, retrying in place; false when the batch must stop (redelivered later). */
  private async handleSlice(
    incoming: IncomingBatch,
    {
      resolveOffset,
      heartbeat,
      isRunning,
      isStale,
    }: Pick<EachBatchPayload, 'resolveOffset' | 'heartbeat' | 'isRunning' | 'isStale'>,
  ): Promise<boolean> {
    // A heartbeat that says the group rebalances ends the retry: the member must rejoin
    // (kafkajs does once the handler returns), or the whole group waits for it.
    const handled = await handleInPlace(
      this.handlers!,
      incoming,
      () => !isRunning() || isStale() || this.closed, // not resolved: redelivered later
      () => rejoinAsked(heartbeat),
    );
    if (!handled) return false;
    // The handler may only have started the batch (apply lanes): its offset is not recorded
    // as a start, since a batch dropped on revoke would leave it ahead of green.
    resolveOffset(String(incoming.records[incoming.records.length - 1]!.offset));
    await heartbeat().catch(() => undefined);
    return true;
  }

  seek(topic: string, partition: number, offset: bigint): void {
    const consumer = this.consumer;
    if (!consumer) return;
    this.startOffsets.set(tpKey(topic, partition), offset);
    try {
      consumer.seek({ topic, partition, offset: String(offset) });
    } catch (err) {
      // Not assigned here any more: the member that has it starts from green's position.
      log().debug({ err, topic, partition }, 'seek not taken');
    }
  }

  async earliestOffset(topic: string, partition: number): Promise<bigint> {
    const start = (await this.admin.logStartOffsets(topic)).find((o) => o.partition === partition);
    return start?.start ?? 0n;
  }

  async commit(topic: string, partition: number, nextOffset: bigint): Promise<void> {
    this.commits.add(topic, partition, nextOffset);
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
    await this.commits.close();
    await this.consumer?.disconnect().catch(() => undefined);
    this.consumer = undefined;
    await this.admin.close();
  }
}
