import {
  type ChangeEvent,
  formatPosition,
  type LogicalMessage,
  type Lsn,
  messagesTopic,
  type Position,
  TableCodec,
  type TableSchema,
  tableTopic,
} from '@teal/change-event';
import type { OutgoingRecord, Publisher, TopicAdmin } from '@teal/kafka';
import type { TealMetrics } from '@teal/runtime';
import { FlushTracker } from './flush-tracker.ts';

// Turns change events into Kafka records and ships them in batches, a bounded number of
// sends in flight (the Publisher keeps the order of successive calls, so per-partition
// order holds). The FlushTracker learns of every record and every acked batch, and says
// when the slot may be confirmed further. One EventPublisher lives as long as one stream
// session: after a failed send it stops for good and the session restarts from the slot.

export interface PublisherLimits {
  maxBatchRecords: number;
  maxBatchBytes: number;
  maxInFlightSends: number;
}

export const DEFAULT_LIMITS: PublisherLimits = {
  // Moderate sends: kafkajs groups a send's records per partition in O(n^2 / partitions)
  // (groupMessagesPerPartition spreads the array per record), and with either client one
  // partition's records form one record batch, which must stay under max.message.bytes (1 MiB).
  maxBatchRecords: 5000,
  maxBatchBytes: 1 << 20,
  maxInFlightSends: 3,
};

/** Publishes a writer schema to `<prefix>._schemas`; resolves once Kafka has it. */
export interface SchemaSink {
  publish(fingerprintHex: string, schemaJson: string): Promise<void>;
}

export interface EventPublisherOptions {
  publisher: Publisher;
  admin: TopicAdmin;
  schemas: SchemaSink;
  prefix: string;
  partitions: number;
  startLsn: Lsn;
  /**
   * Also write teal.position / teal.op / teal.xid headers on change records. They repeat
   * fields of the Avro value; each costs the Kafka clients as much work as the key does.
   */
  headers?: boolean;
  limits?: Partial<PublisherLimits>;
  metrics?: TealMetrics;
  /** The slot may be confirmed up to this LSN (the stream session acknowledges it on its socket). */
  onConfirm?: (lsn: Lsn) => void;
  /** A send failed: nothing after the last confirmed LSN is durable. Called once. */
  onError?: (err: unknown) => void;
}

interface Batch {
  records: OutgoingRecord[];
  bytes: number;
  counts: Map<string, number>;
  /** Position and commit time of the newest record (two fields: set per record, no object). */
  lastPosition: Position | undefined;
  lastCommitTimeUs: bigint;
}

const emptyBatch = (): Batch => ({
  records: [],
  bytes: 0,
  counts: new Map(),
  lastPosition: undefined,
  lastCommitTimeUs: 0n,
});

/**
 * Per table version, the strings every record of it needs. Built once: a string built per
 * record is hashed again by every Map it keys (ours, and the Kafka client's per topic).
 */
interface TableStrings {
  topic: string;
  /** Metric label per op: "schema.table\0op". */
  labels: Record<string, string>;
}

export class EventPublisher {
  readonly tracker: FlushTracker;
  private readonly limits: PublisherLimits;
  private readonly codecs = new WeakMap<TableSchema, TableCodec>();
  private readonly strings = new WeakMap<TableCodec, TableStrings>();
  private readonly topics = new Map<string, Promise<number>>();
  private readonly partitionCounts = new Map<string, number>();
  private buffer: Batch = emptyBatch();
  private inFlight = 0;
  private lingerScheduled = false;
  private waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  private failure: unknown;
  /** Position and commit time of the newest record Kafka acknowledged. */
  lastShipped: { position: Position; commitTimeUs: bigint } | undefined;
  recordsAcked = 0;

  constructor(private readonly opts: EventPublisherOptions) {
    this.tracker = new FlushTracker(opts.startLsn);
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
  }

  get failed(): unknown {
    return this.failure;
  }

  get messagesTopic(): string {
    return messagesTopic(this.opts.prefix);
  }

  topicOf(schema: string, table: string): string {
    return tableTopic(this.opts.prefix, schema, table);
  }

  /** The codec of a table version, once its topic exists and its schemas are in Kafka. */
  codecFor(table: TableSchema): TableCodec | undefined {
    return this.codecs.get(table);
  }

  async prepare(table: TableSchema): Promise<TableCodec> {
    const known = this.codecs.get(table);
    if (known) return known;
    const codec = new TableCodec(table, this.opts.prefix);
    await this.ensureTopic(this.topicOf(table.schema, table.table));
    // Schemas first: no record may reach Kafka before the schema that decodes it.
    await this.opts.schemas.publish(codec.keyFingerprintHex, codec.keySchemaJson);
    await this.opts.schemas.publish(codec.valueFingerprintHex, codec.valueSchemaJson);
    this.codecs.set(table, codec);
    return codec;
  }

  async ensureTopic(topic: string, partitions = this.opts.partitions): Promise<number> {
    let pending = this.topics.get(topic);
    if (!pending) {
      pending = (async () => {
        await this.opts.admin.ensureTopic(topic, { partitions });
        const count = await this.opts.admin.partitionCount(topic);
        this.partitionCounts.set(topic, count);
        return count;
      })();
      pending.catch(() => this.topics.delete(topic));
      this.topics.set(topic, pending);
    }
    return pending;
  }

  /** Adds one change (prepare() its table first). A truncate goes to every partition. */
  addEvent(codec: TableCodec, event: ChangeEvent): void {
    let strings = this.strings.get(codec);
    if (!strings) {
      const { schema, table } = codec.table;
      const labels: Record<string, string> = {};
      for (const op of ['c', 'u', 'd', 'r', 't']) labels[op] = `${schema}.${table}\u0000${op}`;
      strings = { topic: this.topicOf(schema, table), labels };
      this.strings.set(codec, strings);
    }
    const topic = strings.topic;
    const value = codec.encodeEvent(event);
    const headers = this.opts.headers
      ? {
          'teal.position': formatPosition(event.position),
          'teal.op': event.op,
          'teal.xid': String(event.xid),
        }
      : undefined;
    const label = strings.labels[event.op];
    if (event.op === 't') {
      const partitions = this.partitionCounts.get(topic) ?? this.opts.partitions;
      for (let partition = 0; partition < partitions; partition++) {
        this.push({ topic, partition, key: null, value, headers }, label, event.position, event.commitTimeUs);
      }
      return;
    }
    this.push(
      { topic, key: codec.encodeKey(event.key), value, headers },
      label,
      event.position,
      event.commitTimeUs,
    );
  }

  /** A logical decoding message that is not teal's own, to `<prefix>._messages`. */
  addMessage(message: LogicalMessage, xid: number): void {
    this.push(
      {
        topic: this.messagesTopic,
        key: Buffer.from(message.prefix),
        value: message.content,
        headers: {
          'teal.position': formatPosition(message.position),
          'teal.prefix': message.prefix,
          'teal.transactional': String(message.transactional),
          'teal.xid': String(xid),
        },
      },
      undefined,
      message.position,
      undefined,
    );
  }

  /** True when the caller should `await waitForCapacity()` before adding more. */
  get saturated(): boolean {
    return this.failure !== undefined || this.isFull();
  }

  waitForCapacity(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (!this.isFull()) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Resolves when every record added so far is acknowledged (or rejects with the send failure). */
  async drain(): Promise<void> {
    this.flush();
    await new Promise<void>((resolve, reject) => {
      if (this.failure !== undefined) return reject(this.failure);
      this.waiters.push({ resolve: () => {}, reject });
      this.tracker.afterAck(() => resolve());
    });
  }

  /** Hands the buffer to Kafka now if a send slot is free. */
  flush(): void {
    if (this.failure !== undefined || this.buffer.records.length === 0) return;
    if (this.inFlight >= this.limits.maxInFlightSends) return;
    const batch = this.buffer;
    this.buffer = emptyBatch();
    const id = this.tracker.seal();
    this.inFlight++;
    this.opts.publisher.send(batch.records).then(
      () => this.acked(id, batch),
      (err) => this.fail(err),
    );
    this.wakeWaiters();
  }

  private isFull(): boolean {
    return (
      this.buffer.records.length >= this.limits.maxBatchRecords ||
      this.buffer.bytes >= this.limits.maxBatchBytes
    );
  }

  private push(
    record: OutgoingRecord,
    label: string | undefined,
    position: Position,
    commitTimeUs: bigint | undefined,
  ): void {
    if (this.failure !== undefined) throw this.failure;
    const b = this.buffer;
    b.records.push(record);
    b.bytes += (record.key?.length ?? 0) + (record.value?.length ?? 0) + 64;
    if (label !== undefined) b.counts.set(label, (b.counts.get(label) ?? 0) + 1);
    b.lastPosition = position;
    if (commitTimeUs !== undefined) b.lastCommitTimeUs = commitTimeUs;
    this.tracker.recordAdded();
    if (this.isFull()) this.flush();
    else if (!this.lingerScheduled) {
      // Ship what we have as soon as the stream goes quiet; meanwhile a batch keeps filling.
      this.lingerScheduled = true;
      setImmediate(() => {
        this.lingerScheduled = false;
        this.flush();
      });
    }
  }

  private acked(id: number, batch: Batch): void {
    this.inFlight--;
    if (this.failure !== undefined) return;
    this.recordsAcked += batch.records.length;
    if (batch.lastPosition)
      this.lastShipped = { position: batch.lastPosition, commitTimeUs: batch.lastCommitTimeUs };
    const metrics = this.opts.metrics;
    if (metrics) {
      for (const [label, n] of batch.counts) {
        const [table, op] = label.split('\u0000');
        metrics.eventsProduced.inc({ table, op }, n);
      }
    }
    const confirmed = this.tracker.ack(id);
    if (confirmed !== undefined) this.opts.onConfirm?.(confirmed);
    this.flush();
    this.wakeWaiters();
  }

  private wakeWaiters(): void {
    if (this.isFull()) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve();
  }

  private fail(err: unknown): void {
    this.inFlight--;
    if (this.failure !== undefined) return;
    this.failure = err;
    this.tracker.fail();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
    this.opts.onError?.(err);
  }

  // Transaction boundaries, forwarded to the tracker; a newly confirmable LSN goes to onConfirm.
  begin(): void {
    this.tracker.begin();
  }

  commit(endLsn: Lsn): void {
    const confirmed = this.tracker.commit(endLsn);
    if (confirmed !== undefined) this.opts.onConfirm?.(confirmed);
  }

  between(lsn: Lsn): void {
    const confirmed = this.tracker.between(lsn);
    if (confirmed !== undefined) this.opts.onConfirm?.(confirmed);
  }

  /** Runs `callback` once every record added so far is acknowledged. */
  afterAck(callback: () => void): void {
    this.tracker.afterAck(callback);
  }
}
