import { decodeEvent, type PgText, type Row, type SchemaCache, tableOfTopic } from '@teal/change-event';
import type { ResolvedConfig, TransformSet } from '@teal/config';
import { TealError } from '@teal/errors';
import type { IncomingBatch, IncomingRecord, TopicPartition } from '@teal/kafka';
import { loadPositions, NO_POSITION, type StoredPosition } from '@teal/postgres';
import { quoteIdent } from '@teal/postgres/sql';
import { abortableDelay, type Logger, secondsSinceCommit, type TealMetrics } from '@teal/runtime';
import type pg from 'pg';
import type { TableRef } from './apply-plan.ts';
import { qualified } from './apply-sql.ts';
import { ApplyTransaction, type PartitionCursor } from './apply-transaction.ts';
import { type BatchItem, letter } from './batch-item.ts';
import type { DeadLetter, DeadLetterWriter } from './dead-letter.ts';
import { classifyError, errorMessage, isCatalogDrift } from './error-policy.ts';
import type { GreenCatalog } from './green-catalog.ts';
import { RowMapper } from './row-mapping.ts';
import { checkSchemas } from './schema-check.ts';
import { offsetCovered } from './skip-rule.ts';

// Applies one partition batch to green and says which Kafka offset to commit: decode
// (row-mapping.ts plans the rows, schema-check.ts makes green ready for them), then
// apply-transaction.ts writes them with the partition's position, effectively once.
// Records at or below the stored position are skipped (skip-rule.ts), their offsets advance.

export interface SchemaSource {
  readonly cache: SchemaCache;
  /** Reloads the `_schemas` topic into the cache (coalesced; cheap to call often). */
  reload(): Promise<void>;
}

export interface ApplierDeps {
  readonly pool: pg.Pool;
  readonly schemas: SchemaSource;
  readonly transforms: TransformSet;
  readonly catalog: GreenCatalog;
  readonly deadLetters: DeadLetterWriter;
  readonly apply: ResolvedConfig['apply'];
  /** config.kafka.topicPrefix: names the table of a topic in metrics. */
  readonly topicPrefix: string;
  readonly log: Logger;
  readonly metrics?: TealMetrics;
  readonly signal?: AbortSignal;
  /** The earliest offset Kafka holds for a partition: judges a batch that does not follow green's offset. */
  readonly earliestOffset?: (topic: string, partition: number) => Promise<bigint>;
  /** config.ordered: blue tables whose changes keep (true) or need not keep (false) commit order in green. */
  readonly ordered?: ResolvedConfig['ordered'];
}

export interface PartitionState extends PartitionCursor {
  highWatermark: bigint;
  blocked?: { reason: string; since: number; loggedAt: number };
}

type Decoded = ReturnType<typeof decodeEvent>;

const BLOCKED_WAIT_MS = 5_000;
const BLOCKED_LOG_EVERY_MS = 60_000;

export class Applier {
  readonly partitions = new Map<string, PartitionState>();
  deadLetterCount = 0;
  private readonly rows: RowMapper;
  private readonly transaction: ApplyTransaction;
  // Writer versions seen per blue table: a new one means blue's table changed (ALTER TABLE),
  // and the operator usually changes green's to match, so green's cached shape is read again.
  private readonly writerVersions = new Map<string, string>();

  constructor(private readonly deps: ApplierDeps) {
    this.rows = new RowMapper(
      deps.transforms,
      (table, key, columns) => this.readGreen(table, key, columns),
      reject,
    );
    this.transaction = new ApplyTransaction(deps, (letters) => this.deadLetter(letters));
  }

  /** Green's positions for newly assigned partitions: the offsets to seek to. */
  async assign(assigned: readonly TopicPartition[]): Promise<Map<string, bigint>> {
    const topics = [...new Set(assigned.map((a) => a.topic))];
    const stored = await loadPositions(this.deps.pool, topics);
    const starts = new Map<string, bigint>();
    for (const { topic, partition } of assigned) {
      const id = `${topic}:${partition}`;
      const position = stored.get(id);
      const state = this.state(topic, partition);
      state.stored = position ?? NO_POSITION;
      if (position && position.kafkaOffset >= 0n) starts.set(id, position.kafkaOffset + 1n);
    }
    return starts;
  }

  /** Applies the batch; returns the Kafka offset to commit (advisory: green's position decides). */
  async applyBatch(batch: IncomingBatch): Promise<bigint> {
    const started = process.hrtime.bigint();
    const state = this.state(batch.topic, batch.partition);
    state.highWatermark = batch.highWatermark;
    if (!state.stored) {
      state.stored = (await loadPositions(this.deps.pool, [batch.topic])).get(
        `${batch.topic}:${batch.partition}`,
      );
      state.stored ??= NO_POSITION;
    }
    let items: BatchItem[];
    try {
      items = await this.decode(batch.records, state.stored);
      await this.rows.planItems(items, state.stored);
      await checkSchemas(this.deps, items);
      const letters = items.flatMap((i) => (i.failed ? [i.failed] : []));
      await this.deadLetter(letters);
      // apply.batchSize bounds one green transaction; a Kafka batch may hold many.
      const size = Math.max(1, this.deps.apply.batchSize);
      for (let i = 0; i < items.length; i += size)
        await this.transaction.apply(state, items.slice(i, i + size));
      if (state.blocked) {
        this.deps.log.info({ topic: state.topic, partition: state.partition }, 'partition unblocked');
        state.blocked = undefined;
      }
    } catch (err) {
      if (isCatalogDrift(err)) this.deps.catalog.invalidate();
      if (
        classifyError(err) === 'blocked' ||
        (err instanceof TealError && err.code === 'TEAL_SCHEMA_BLOCKED')
      ) {
        await this.block(state, errorMessage(err));
      }
      throw err;
    }
    this.observe(state, batch, started, items);
    return (state.stored ?? NO_POSITION).kafkaOffset + 1n;
  }

  private state(topic: string, partition: number): PartitionState {
    const id = `${topic}:${partition}`;
    let state = this.partitions.get(id);
    if (!state) {
      state = { topic, partition, stored: undefined, highWatermark: -1n };
      this.partitions.set(id, state);
    }
    return state;
  }

  // Decode, in order. Unknown fingerprints reload the schema topic and, if still unknown,
  // fail the batch (retried, never skipped); bytes that do not decode are dead-lettered.
  private async decode(records: readonly IncomingRecord[], stored: StoredPosition): Promise<BatchItem[]> {
    const items: BatchItem[] = [];
    for (const record of records) {
      const item: BatchItem = { record };
      items.push(item);
      if (offsetCovered(stored, record.offset) || record.value === null) continue;
      let decoded: Decoded;
      try {
        // Await only when a schema had to be reloaded: a promise per record costs a microtask.
        const pending = this.decodeValue(record.value);
        decoded = pending instanceof Promise ? await pending : pending;
      } catch (err) {
        reject(item, err);
        continue;
      }
      item.event = decoded.event;
      item.writer = decoded.table;
      this.noteWriterVersion(decoded);
    }
    return items;
  }

  private noteWriterVersion(decoded: Decoded): void {
    const table = `${decoded.table.schema}.${decoded.table.table}`;
    const seen = this.writerVersions.get(table);
    if (seen === decoded.fingerprintHex) return;
    this.writerVersions.set(table, decoded.fingerprintHex);
    if (seen !== undefined) this.deps.catalog.invalidate();
  }

  private decodeValue(value: Buffer): Decoded | Promise<Decoded> {
    try {
      return decodeEvent(value, this.deps.schemas.cache);
    } catch (err) {
      if (!(err instanceof TealError) || err.code !== 'TEAL_SCHEMA_UNKNOWN') throw err;
      return this.deps.schemas.reload().then(() => decodeEvent(value, this.deps.schemas.cache));
    }
  }

  // For row-mapping.ts: green's current text of some columns of one row, matched by key as text.
  private async readGreen(
    target: TableRef,
    greenKey: Row,
    columns: readonly string[],
  ): Promise<PgText[] | undefined> {
    const keys = Object.keys(greenKey);
    const { rows } = await this.deps.pool.query<Row>(
      `SELECT ${columns.map((g, i) => `${quoteIdent(g)}::text AS c${i}`).join(', ')} FROM ${qualified(target)} ` +
        `WHERE ${keys.map((k, i) => `${quoteIdent(k)}::text IS NOT DISTINCT FROM $${i + 1}`).join(' AND ')}`,
      keys.map((k) => greenKey[k]),
    );
    if (rows.length === 0) return undefined;
    return columns.map((_, i) => rows[0][`c${i}`] ?? null);
  }

  private async deadLetter(letters: DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    await this.deps.deadLetters.send(letters);
    this.deadLetterCount += letters.length;
    for (const l of letters) {
      this.deps.log.warn(
        {
          topic: l.record.topic,
          partition: l.record.partition,
          offset: l.record.offset.toString(),
          code: l.code,
        },
        `record dead-lettered: ${l.message}`,
      );
      this.deps.metrics?.deadLetters.inc({
        table: tableOfTopic(l.record.topic, this.deps.topicPrefix),
        code: l.code,
      });
    }
  }

  private observe(state: PartitionState, batch: IncomingBatch, started: bigint, items: BatchItem[]): void {
    const m = this.deps.metrics;
    if (!m) return;
    m.applyBatchSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    m.applyBatchRows.observe(batch.records.length);
    const next = (state.stored?.kafkaOffset ?? -1n) + 1n;
    const lag = batch.highWatermark > next ? batch.highWatermark - next : 0n;
    m.consumerLagRecords.set({ topic: state.topic, partition: String(state.partition) }, Number(lag));
    let newest = -1n;
    for (const i of items)
      if (i.plan && i.event && i.event.commitTimeUs > newest) newest = i.event.commitTimeUs;
    if (newest < 0n) return;
    m.replicationLagSeconds.observe(secondsSinceCommit(newest));
    if (batch.fetchedAtMs !== undefined)
      m.streamLatencySeconds.observe({ point: 'fetched' }, secondsSinceCommit(newest, batch.fetchedAtMs));
  }

  private async block(state: PartitionState, reason: string): Promise<void> {
    const now = Date.now();
    if (!state.blocked || state.blocked.reason !== reason) {
      state.blocked = { reason, since: now, loggedAt: 0 };
    }
    if (now - state.blocked.loggedAt >= BLOCKED_LOG_EVERY_MS) {
      state.blocked.loggedAt = now;
      this.deps.log.error({ topic: state.topic, partition: state.partition }, `partition blocked: ${reason}`);
    }
    // Wait here rather than spin: the batch is retried after this, and the operator's fix
    // (a column added in green, a config change and restart) is seen then.
    await abortableDelay(BLOCKED_WAIT_MS, this.deps.signal);
    this.deps.catalog.invalidate();
  }
}

// A record's own fault (bytes that do not decode, a transform that throws) dead-letters it;
// anything else fails the batch, which is retried or blocks.
function reject(item: BatchItem, err: unknown): void {
  if (classifyError(err) !== 'permanent') throw err;
  item.failed = letter(item.record, err);
}
