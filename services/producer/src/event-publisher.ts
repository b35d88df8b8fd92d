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
import { TealError } from '@teal/errors';
import {
  type OutgoingRecord,
  type Publisher,
  RECORD_BATCH_OVERHEAD,
  recordBytes,
  type TopicAdmin,
} from '@teal/kafka';
import { type StreamPoint, secondsSinceCommit, type TealMetrics } from '@teal/runtime';
import { FlushTracker } from './flush-tracker.ts';
import { partitionKey } from './partition-key.ts';
import { type TopicLayout, TopicLayouts } from './topic-layout.ts';

// Turns change events into Kafka records and ships them in batches, a bounded number of
// sends in flight (the Publisher keeps the order of successive calls, so per-partition
// order holds). The FlushTracker learns of every record and every acked batch, and says
// when the slot may be confirmed further. One EventPublisher lives as long as one stream
// session: after a failed send it stops for good and the session restarts from the slot.
// Every record's partition is chosen here from its topic's layout (topic-layout.ts): murmur2
// of the key over the recorded partition count, or 0 for an ordered table. A record larger
// than its topic takes stops the producer (TEAL_ROW_TOO_LARGE): sent, it would be refused
// again on every restart from the same LSN. One send's records of a partition form one record
// batch, so a batch is closed before a record would take it past the topic's limit.

export interface PublisherLimits {
  maxBatchRecords: number;
  maxBatchBytes: number;
  maxInFlightSends: number;
  /**
   * Bytes of records held at once (the filling batch, closed ones, those Kafka has not
   * acknowledged): at this the publisher is saturated and the stream stops reading, so a slow
   * Kafka costs no memory beyond it (plus one record: a row larger than the budget still goes).
   */
  maxHeldBytes: number;
}

export const DEFAULT_LIMITS: PublisherLimits = {
  // Moderate sends: kafkajs groups a send's records per partition in O(n^2 / partitions)
  // (groupMessagesPerPartition spreads the array per record). A record larger than this goes
  // in a batch of its own (up to the topic's max.message.bytes).
  maxBatchRecords: 5000,
  maxBatchBytes: 1 << 20,
  maxInFlightSends: 3,
  maxHeldBytes: 4 << 20,
};

/** Publishes a writer schema to `<prefix>._schemas`; resolves once Kafka has it. */
export interface SchemaSink {
  publish(fingerprintHex: string, schemaJson: string): Promise<void>;
}

export interface EventPublisherOptions {
  publisher: Publisher;
  admin: TopicAdmin;
  /**
   * How each topic is written (partition count, ordered, size limit), shared by the
   * producer's publishers; absent: one of its own that records nothing and orders no table.
   */
  layouts?: TopicLayouts;
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
  /** FlushTracker id, given when the batch is closed. */
  id: number;
  records: OutgoingRecord[];
  bytes: number;
  /** Topics whose partition count is read again before this batch goes (it holds their truncates). */
  verifyTopics: string[] | undefined;
  /** Records above BIG_RECORD bytes, to name one if the broker refuses the batch as too large. */
  big: BigRecord[] | undefined;
  counts: Map<string, number>;
  /** Position and commit time of the newest record (two fields: set per record, no object). */
  lastPosition: Position | undefined;
  lastCommitTimeUs: bigint;
}

interface BigRecord {
  bytes: number;
  what: string;
}

/** Records from this size on are remembered by what they are (rare: a row of hundreds of KB). */
const BIG_RECORD = 256 * 1024;

const emptyBatch = (): Batch => ({
  id: 0,
  records: [],
  bytes: 0,
  verifyTopics: undefined,
  big: undefined,
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
  layout: TopicLayout;
}

/** What a record is, for an error: built only for a record too large or of hundreds of KB. */
function describeRecord(record: OutgoingRecord, codec?: TableCodec, event?: ChangeEvent): string {
  if (!codec || !event)
    return `a logical decoding message with prefix ${JSON.stringify(record.headers?.['teal.prefix'])}`;
  const table = `${codec.table.schema}.${codec.table.table}`;
  return event.op === 't' ? `a truncate of ${table}` : `a change of ${table} (key ${keyText(event.key)})`;
}

/** A key as the operator reads it in an error: its columns as JSON, cut short. */
const keyText = (key: Readonly<Record<string, string | null>>) => {
  const json = JSON.stringify(key);
  return json.length > 300 ? `${json.slice(0, 300)}...` : json;
};

export class EventPublisher {
  readonly tracker: FlushTracker;
  private readonly limits: PublisherLimits;
  private readonly codecs = new WeakMap<TableSchema, TableCodec>();
  private readonly strings = new WeakMap<TableCodec, TableStrings>();
  private readonly layouts: TopicLayouts;
  private buffer: Batch = emptyBatch();
  /** Closed batches waiting for a send slot, in order. */
  private readonly closed: Batch[] = [];
  /** Sends issued behind a partition-count check wait for it, so they still go in order. */
  private gate: Promise<void> | undefined;
  private inFlight = 0;
  private held = 0;
  private lingerScheduled = false;
  private waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  private failure: unknown;
  /** Position and commit time of the newest record Kafka acknowledged. */
  lastShipped: { position: Position; commitTimeUs: bigint } | undefined;
  recordsAcked = 0;

  constructor(private readonly opts: EventPublisherOptions) {
    this.tracker = new FlushTracker(opts.startLsn);
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.layouts = opts.layouts ?? new TopicLayouts({ admin: opts.admin, partitions: opts.partitions });
  }

  get failed(): unknown {
    return this.failure;
  }

  /** Bytes of the records added and not yet acknowledged (bounded by limits.maxHeldBytes). */
  get heldBytes(): number {
    return this.held;
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
    await this.layouts.layoutOf(this.topicOf(table.schema, table.table), table);
    // Schemas first: no record may reach Kafka before the schema that decodes it.
    await this.opts.schemas.publish(codec.keyFingerprintHex, codec.keySchemaJson);
    await this.opts.schemas.publish(codec.valueFingerprintHex, codec.valueSchemaJson);
    this.codecs.set(table, codec);
    return codec;
  }

  /** Creates a topic that is not a table's (`_messages`) when missing; returns its partition count. */
  async ensureTopic(topic: string): Promise<number> {
    return (await this.layouts.layoutOf(topic)).partitions;
  }

  /**
   * Adds one change (prepare() its table first). A truncate goes to every partition (to
   * partition 0 alone for an ordered table).
   */
  addEvent(codec: TableCodec, event: ChangeEvent): void {
    let strings = this.strings.get(codec);
    if (!strings) {
      const { schema, table } = codec.table;
      const labels: Record<string, string> = {};
      for (const op of ['c', 'u', 'd', 'r', 't']) labels[op] = `${schema}.${table}\u0000${op}`;
      const topic = this.topicOf(schema, table);
      const layout = this.layouts.cached(topic);
      if (!layout) throw new Error(`addEvent before prepare() of ${schema}.${table}`);
      strings = { topic, labels, layout };
      this.strings.set(codec, strings);
    }
    const { topic, layout } = strings;
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
      const partitions = layout.ordered ? 1 : layout.partitions;
      // Its partitions are those of the count teal read: check that the topic still has that many.
      if (!layout.ordered) this.verifyBeforeSending(topic);
      for (let partition = 0; partition < partitions; partition++) {
        const record = { topic, partition, key: null, value, headers };
        this.push(record, label, event.position, event.commitTimeUs, layout, codec, event);
      }
      if (!layout.ordered) this.verifyBeforeSending(topic); // a batch closed in between
      return;
    }
    const key = codec.encodeKey(event.key);
    // The key's body, not its fingerprint: a row keeps its partition across table versions.
    const partition = layout.ordered
      ? 0
      : this.opts.publisher.partitionFor(partitionKey(key), layout.partitions);
    const record = { topic, partition, key, value, headers };
    this.push(record, label, event.position, event.commitTimeUs, layout, codec, event);
  }

  /** The filling batch goes only once `topic` is seen to have the partition count teal hashes over. */
  private verifyBeforeSending(topic: string): void {
    const b = this.buffer;
    if (!b.verifyTopics) b.verifyTopics = [topic];
    else if (!b.verifyTopics.includes(topic)) b.verifyTopics.push(topic);
  }

  /**
   * A record its topic cannot take stops the producer here, before anything after it is sent
   * or confirmed (the slot stays at the last commit Kafka holds whole).
   */
  private tooLarge(bytes: number, layout: TopicLayout, what: string): TealError {
    const batchBytes = bytes + RECORD_BATCH_OVERHEAD;
    const raise = layout.limitIsTopics
      ? `the topic's own max.message.bytes, which teal could not raise: raise it (kafka-configs --alter --entity-type topics --entity-name ${layout.topic} --add-config max.message.bytes=${batchBytes}) and start the producer again`
      : `kafka.maxMessageBytes: raise it above ${batchBytes} in teal.config.ts (or TEAL_KAFKA_MAX_MESSAGE_BYTES) and start the producer again; teal raises the topic's max.message.bytes to match`;
    return new TealError(
      'TEAL_ROW_TOO_LARGE',
      `${what} is a Kafka record of ${bytes} bytes, more than the ${layout.maxRecordBytes} bytes ${layout.topic} takes (${raise}). ` +
        'The producer stopped before it: nothing after this change is confirmed on the slot, so none of it is lost',
      { details: { topic: layout.topic, bytes, limit: layout.maxRecordBytes } },
    );
  }

  /** A logical decoding message that is not teal's own, to `<prefix>._messages`. */
  addMessage(message: LogicalMessage, xid: number): void {
    const topic = this.messagesTopic;
    const layout = this.layouts.cached(topic);
    if (!layout) throw new Error(`addMessage before ensureTopic(${topic})`);
    const key = Buffer.from(message.prefix);
    const record = {
      topic,
      partition: this.opts.publisher.partitionFor(key, layout.partitions),
      key,
      value: message.content,
      headers: {
        'teal.position': formatPosition(message.position),
        'teal.prefix': message.prefix,
        'teal.transactional': String(message.transactional),
        'teal.xid': String(xid),
      },
    };
    this.push(record, undefined, message.position, undefined, layout);
  }

  /** True when the caller should `await waitForCapacity()` before adding more. */
  get saturated(): boolean {
    this.checkLayouts();
    return this.failure !== undefined || this.isFull();
  }

  waitForCapacity(): Promise<void> {
    this.checkLayouts();
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
    this.checkLayouts();
    if (this.failure !== undefined) return;
    this.sendClosed();
    if (this.closed.length > 0 || this.buffer.records.length === 0) return;
    if (this.inFlight >= this.limits.maxInFlightSends) return;
    this.close();
    this.sendClosed();
    this.wakeWaiters();
  }

  /** Closes the filling batch: later records go into the next one. */
  private close(): void {
    const batch = this.buffer;
    this.buffer = emptyBatch();
    batch.id = this.tracker.seal();
    this.closed.push(batch);
  }

  private sendClosed(): void {
    while (this.closed.length > 0 && this.inFlight < this.limits.maxInFlightSends) {
      const batch = this.closed.shift()!;
      this.inFlight++;
      this.observeLatency('sent', batch);
      this.issue(batch).then(
        () => this.acked(batch.id, batch),
        (err) => this.fail(err, batch),
      );
    }
  }

  /**
   * Sends a batch, after reading its truncated topics' partition counts again when it holds
   * truncates. Sends queued behind such a check wait for it: the Publisher keeps the order of
   * its calls, so a later batch must not call it first.
   */
  private issue(batch: Batch): Promise<void> {
    const records = batch.records;
    const check = batch.verifyTopics && this.layouts.verify(batch.verifyTopics);
    if (check === undefined && this.gate === undefined) return this.opts.publisher.send(records);
    const gate = (this.gate ?? Promise.resolve()).then(() => check);
    this.gate = gate;
    gate.then(
      () => {
        if (this.gate === gate) this.gate = undefined;
      },
      () => {},
    );
    return gate.then(() => this.opts.publisher.send(records));
  }

  private isFull(): boolean {
    return (
      this.closed.length > 0 ||
      this.held >= this.limits.maxHeldBytes ||
      this.buffer.records.length >= this.limits.maxBatchRecords ||
      this.buffer.bytes >= this.limits.maxBatchBytes
    );
  }

  /** A partition count changed under the producer (TopicLayouts' check): stop as a failed send does. */
  private checkLayouts(): void {
    const changed = this.layouts.failure;
    if (changed !== undefined && this.failure === undefined) this.abort(changed);
  }

  private push(
    record: OutgoingRecord,
    label: string | undefined,
    position: Position,
    commitTimeUs: bigint | undefined,
    layout: TopicLayout,
    codec?: TableCodec,
    event?: ChangeEvent,
  ): void {
    this.checkLayouts();
    if (this.failure !== undefined) throw this.failure;
    const bytes = recordBytes(record);
    if (bytes + RECORD_BATCH_OVERHEAD > layout.maxRecordBytes) {
      const err = this.tooLarge(bytes, layout, describeRecord(record, codec, event));
      this.abort(err);
      throw err;
    }
    // One send's records of a partition are one record batch: keep it under the topic's limit.
    if (
      this.buffer.records.length > 0 &&
      this.buffer.bytes + bytes + RECORD_BATCH_OVERHEAD > layout.maxRecordBytes
    )
      this.close();
    const b = this.buffer;
    b.records.push(record);
    b.bytes += bytes;
    this.held += bytes;
    if (bytes >= BIG_RECORD) {
      b.big ??= [];
      b.big.push({ bytes, what: describeRecord(record, codec, event) });
    }
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
    this.held -= batch.bytes;
    if (this.failure !== undefined) return;
    this.recordsAcked += batch.records.length;
    if (batch.lastPosition)
      this.lastShipped = { position: batch.lastPosition, commitTimeUs: batch.lastCommitTimeUs };
    this.observeLatency('acknowledged', batch);
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

  private observeLatency(point: StreamPoint, batch: Batch): void {
    // 0n: no record of the batch carried a commit time (markers, watermarks).
    if (batch.lastCommitTimeUs > 0n)
      this.opts.metrics?.streamLatencySeconds.observe({ point }, secondsSinceCommit(batch.lastCommitTimeUs));
  }

  private wakeWaiters(): void {
    if (this.isFull()) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve();
  }

  private fail(err: unknown, batch: Batch): void {
    this.inFlight--;
    this.abort(this.explain(err, batch));
  }

  /** The broker refused a batch as too large: name the largest row in it. */
  private explain(err: unknown, batch: Batch): unknown {
    if (!(err instanceof TealError) || err.code !== 'TEAL_ROW_TOO_LARGE' || !batch.big) return err;
    const largest = batch.big.reduce((a, b) => (b.bytes > a.bytes ? b : a));
    return new TealError(
      'TEAL_ROW_TOO_LARGE',
      `${largest.what}, a record of ${largest.bytes} bytes: ${err.message}`,
      {
        cause: err,
        details: err.details,
      },
    );
  }

  /** Stops for good: nothing more is sent or confirmed, and the session ends (onError). */
  private abort(err: unknown): void {
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
    this.checkLayouts();
    const confirmed = this.tracker.commit(endLsn);
    if (confirmed !== undefined) this.opts.onConfirm?.(confirmed);
  }

  between(lsn: Lsn): void {
    this.checkLayouts();
    const confirmed = this.tracker.between(lsn);
    if (confirmed !== undefined) this.opts.onConfirm?.(confirmed);
  }

  /** Runs `callback` once every record added so far is acknowledged. */
  afterAck(callback: () => void): void {
    this.tracker.afterAck(callback);
  }
}
