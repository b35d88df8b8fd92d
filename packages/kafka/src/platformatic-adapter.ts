import { Admin, type MessageToProduce, Producer } from '@platformatic/kafka';
import { TealError } from '@teal/errors';
import { type Logger, rootLogger } from '@teal/runtime';
import { OrderedSends } from './ordered-sends.ts';
import type { KafkaOptions, OutgoingRecord, Publisher, TopicAdmin, TopicSpec } from './types.ts';

// teal's TopicAdmin and Publisher on @platformatic/kafka (pure JS, callback core, no
// per-record promise or Long arithmetic). The consumer group stays on kafkajs.
//
// Choices that keep the contract:
// - idempotent producer (broker de-duplicates retried batches), acks = -1;
// - partition = murmur2(key) & 0x7fffffff % partitions, computed here with 32-bit integer
//   math (the Java client's and kafkajs's DefaultPartitioner): platformatic's own default
//   uses `murmur2 >>> 0` (differs for negative hashes) and BigInt arithmetic (slow);
// - sends run one at a time in call order: platformatic computes an idempotent batch's
//   sequence numbers when it builds the request and advances them only on the response,
//   so two concurrent sends to one partition would carry the same sequence (the broker
//   would take the second for a duplicate of the first and drop it);
// - a failed send rejects every send queued behind it, and the next send starts on a new
//   producer (new producer id): a request that failed on our side may still have been
//   written, and reusing its sequence numbers for other records would make the broker
//   acknowledge them as duplicates without writing them.

let kafkaLog: Logger | undefined;
/** The kafka component's logger, made on first use (importing this file writes nothing). */
function log(): Logger {
  kafkaLog ??= rootLogger().child({ component: 'kafka' });
  return kafkaLog;
}

const M = 0x5bd1e995;

/** The Java client's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int. */
export function murmur2(data: Buffer): number {
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const length4 = length & ~3;
  for (let i = 0; i < length4; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length & 3;
  if (rest > 0) {
    if (rest === 3) h ^= data[length4 + 2]! << 16;
    if (rest >= 2) h ^= data[length4 + 1]! << 8;
    h ^= data[length4]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The Java client's (and kafkajs's) default partition of a key. */
export function partitionForKey(key: Buffer, partitionCount: number): number {
  return (murmur2(key) & 0x7fffffff) % partitionCount;
}

/** Errors carry `retriable`: network and broker errors yes, our own misuse (UserError) no. */
function wrapError(err: unknown, what: string): TealError {
  if (err instanceof TealError) return err;
  const e = err as { code?: string; canRetry?: boolean; findBy?: (p: string, v: unknown) => unknown };
  // Not retriable: our own misuse, or a broker answer a retry cannot change (MESSAGE_TOO_LARGE ...).
  const retriable = e.code !== 'PLT_KFK_USER' && e.canRetry !== false && !e.findBy?.('canRetry', false);
  const message = err instanceof Error ? describe(err) : String(err);
  return new TealError('TEAL_KAFKA_ERROR', `${what}: ${message}`, { retriable, cause: err });
}

/** platformatic nests errors (MultipleErrors of MultipleErrors); name the innermost ones. */
function describe(err: Error): string {
  const inner = (err as { errors?: Error[] }).errors;
  if (!inner?.length) return err.message;
  const leaves = new Set(inner.map((e) => (e instanceof Error ? describe(e) : String(e))));
  return `${err.message} (${[...leaves].slice(0, 3).join('; ')})`;
}

const hasApiError = (err: unknown, id: string): boolean =>
  !!(err as { findBy?: (p: string, v: unknown) => unknown }).findBy?.('apiId', id);

function baseOptions(options: KafkaOptions, role: string) {
  return {
    clientId: `${options.clientId ?? 'teal'}-${role}`,
    bootstrapBrokers: options.brokers,
    connectTimeout: 5_000,
    requestTimeout: 30_000,
    timeout: 30_000,
    retries: 8,
    retryDelay: (_client: unknown, _op: string, attempt: number) => Math.min(200 * 2 ** (attempt - 1), 5_000),
    autocreateTopics: false,
  };
}

export class PlatformaticAdmin implements TopicAdmin {
  private readonly admin: Admin;

  constructor(options: KafkaOptions) {
    this.admin = new Admin(baseOptions(options, 'admin'));
  }

  async ensureTopic(topic: string, spec: TopicSpec): Promise<void> {
    try {
      await this.admin.createTopics({
        topics: [topic],
        partitions: spec.partitions,
        replicas: -1,
        configs: spec.compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
      });
    } catch (err) {
      // Two processes may race to create the same topic; the loser's error is harmless.
      if (!hasApiError(err, 'TOPIC_ALREADY_EXISTS')) throw wrapError(err, `cannot create topic ${topic}`);
    }
    // As kafkajs's waitForLeaders: return once every partition has a leader, so the first
    // send does not meet an unknown topic.
    const deadline = Date.now() + 30_000;
    for (let delay = 50; ; delay = Math.min(delay * 2, 1_000)) {
      try {
        const md = await this.admin.metadata({ topics: [topic], forceUpdate: true });
        const t = md.topics.get(topic);
        if (t && t.partitionsCount > 0 && t.partitions.every((p) => p !== undefined && p.leader >= 0)) return;
      } catch (err) {
        if (Date.now() > deadline) throw wrapError(err, `topic ${topic} has no leaders`);
      }
      if (Date.now() > deadline)
        throw new TealError('TEAL_KAFKA_ERROR', `topic ${topic} has no leaders after 30 s`, {
          retriable: true,
        });
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  async partitionCount(topic: string): Promise<number> {
    try {
      const md = await this.admin.metadata({ topics: [topic], forceUpdate: true });
      return md.topics.get(topic)?.partitionsCount ?? 0;
    } catch (err) {
      throw wrapError(err, `cannot read the metadata of ${topic}`);
    }
  }

  async listTopics(prefix = ''): Promise<string[]> {
    try {
      const topics = await this.admin.listTopics();
      return topics.filter((t) => t.startsWith(prefix)).sort();
    } catch (err) {
      throw wrapError(err, 'cannot list topics');
    }
  }

  async logEndOffsets(topic: string): Promise<Array<{ partition: number; end: bigint }>> {
    try {
      const count = await this.partitionCount(topic);
      const listed = await this.admin.listOffsets({
        topics: [
          {
            name: topic,
            partitions: Array.from({ length: count }, (_, partitionIndex) => ({
              partitionIndex,
              timestamp: -1n,
            })),
          },
        ],
      });
      return (listed.find((t) => t.name === topic)?.partitions ?? [])
        .map((p) => ({ partition: p.partitionIndex, end: p.offset }))
        .sort((a, b) => a.partition - b.partition);
    } catch (err) {
      throw wrapError(err, `cannot read the end offsets of ${topic}`);
    }
  }

  async deleteTopics(topics: string[]): Promise<void> {
    if (topics.length === 0) return;
    try {
      await this.admin.deleteTopics({ topics });
    } catch (err) {
      throw wrapError(err, `cannot delete topics ${topics.join(', ')}`);
    }
  }

  async close(): Promise<void> {
    await this.admin.close().catch(() => undefined);
  }
}

/** Closes even with a send pending (force); errors only logged. */
function closeProducer(producer: Producer<Buffer, Buffer, Buffer, Buffer>): Promise<void> {
  return new Promise((resolve) =>
    producer.close(true, (err) => {
      if (err) log().debug({ err }, 'closing the Kafka producer');
      resolve();
    }),
  );
}

type Message = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;

const javaPartitioner = (_message: Message, key: Buffer | undefined): number =>
  key ? murmur2(key) & 0x7fffffff : 0;

export class PlatformaticPublisher implements Publisher {
  private producer: Producer<Buffer, Buffer, Buffer, Buffer>;
  private readonly ordered = new OrderedSends();
  private resetNeeded = false;
  private closed = false;
  /** Header names and values repeat (teal.op, teal.xid, ...): encode each string once. */
  private readonly headerNames = new Map<string, Buffer>();

  constructor(private readonly options: KafkaOptions) {
    this.producer = this.createProducer();
  }

  private createProducer(): Producer<Buffer, Buffer, Buffer, Buffer> {
    return new Producer<Buffer, Buffer, Buffer, Buffer>({
      ...baseOptions(this.options, 'producer'),
      idempotent: true,
      acks: -1,
      partitioner: javaPartitioner,
      // Validating every message with ajv costs more than building the request.
      strict: false,
    });
  }

  /** Fetches the producer id now, so a broker that is down fails here and not on the first send. */
  async connect(): Promise<void> {
    try {
      await this.producer.initIdempotentProducer({});
    } catch (err) {
      throw wrapError(err, 'cannot connect the Kafka producer');
    }
  }

  /** One send at a time, in call order (OrderedSends says why); after a failure, a new producer id. */
  send(records: OutgoingRecord[]): Promise<void> {
    return this.ordered.run(
      () => this.sendNow(records),
      () => {
        this.resetNeeded = true;
      },
    );
  }

  private async sendNow(records: OutgoingRecord[]): Promise<void> {
    if (records.length === 0) return;
    if (this.closed)
      throw new TealError('TEAL_KAFKA_ERROR', 'the Kafka publisher is closed', { retriable: true });
    if (this.resetNeeded) {
      // Sequence numbers of a failed request are unknown to us: start over with a new producer id.
      this.resetNeeded = false;
      const old = this.producer;
      this.producer = this.createProducer();
      await closeProducer(old);
    }
    const messages: Message[] = new Array(records.length);
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const m: Message = { topic: r.topic, key: r.key ?? undefined, value: r.value ?? undefined };
      if (r.partition !== undefined) m.partition = r.partition;
      if (r.headers) m.headers = this.encodeHeaders(r.headers);
      messages[i] = m;
    }
    try {
      await this.producer.send({ messages });
    } catch (err) {
      throw wrapError(err, `Kafka did not acknowledge ${records.length} records`);
    }
  }

  private encodeHeaders(headers: Record<string, string>): Map<Buffer, Buffer> {
    const out = new Map<Buffer, Buffer>();
    for (const name in headers) {
      let nameBuf = this.headerNames.get(name);
      if (!nameBuf) {
        nameBuf = Buffer.from(name);
        if (this.headerNames.size < 1000) this.headerNames.set(name, nameBuf);
      }
      out.set(nameBuf, Buffer.from(headers[name]!));
    }
    return out;
  }

  partitionFor(key: Buffer, partitionCount: number): number {
    return partitionForKey(key, partitionCount);
  }

  async close(): Promise<void> {
    // Close at once (a send waiting out retries during a broker outage then fails), then let
    // the queued sends settle.
    this.closed = true;
    await closeProducer(this.producer);
    await this.ordered.settled();
  }
}
