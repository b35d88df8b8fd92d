import {
  type ChangeEvent,
  comparePosition,
  decodeEvent,
  type Row,
  type SchemaCache,
  type TableSchema,
} from '@teal/change-event';
import type { ResolvedConfig, TransformSet } from '@teal/config';
import { TealError } from '@teal/errors';
import type { IncomingBatch, IncomingRecord, TopicPartition } from '@teal/kafka';
import {
  lastTruncateSql,
  loadPositions,
  lockPositionSql,
  markTruncatedSql,
  NO_POSITION,
  positionFromRows,
  quoteIdent,
  type StoredPosition,
  savePositionSql,
  truncateFromRows,
} from '@teal/postgres';
import { abortableDelay, type Logger, type TealMetrics } from '@teal/runtime';
import type pg from 'pg';
import { keyId, type PlanEvent, planBatch, type TableRef } from './apply-plan.ts';
import { qualified, stepStatement } from './apply-sql.ts';
import type { DeadLetter, DeadLetterWriter } from './dead-letter.ts';
import { classifyError, errorCode, errorMessage, isCatalogDrift } from './error-policy.ts';
import type { GreenCatalog } from './green-catalog.ts';
import { ddlType, decideColumns, missingTableReason } from './schema-policy.ts';

// Applies one partition batch to green, effectively once: the rows and the partition's
// position row commit in one transaction, and records at or below the stored position are
// skipped (their offsets still advance). A record green rejects for good is isolated by
// bisecting the batch, dead-lettered (acked by Kafka first) and the rest applies.

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
  readonly log: Logger;
  readonly metrics?: TealMetrics;
  readonly signal?: AbortSignal;
}

export interface PartitionState {
  readonly topic: string;
  readonly partition: number;
  stored: StoredPosition | undefined;
  highWatermark: bigint;
  blocked?: { reason: string; since: number; loggedAt: number };
}

interface Item {
  readonly record: IncomingRecord;
  event?: ChangeEvent;
  writer?: TableSchema;
  plan?: PlanEvent;
  failed?: DeadLetter;
}

interface TableMapping {
  readonly target: TableRef;
  readonly keyColumns: readonly string[];
  readonly blueKeyColumns: readonly string[];
  /** Green key column names equal blue's: the event's key is the green key as it is. */
  readonly sameKeyNames: boolean;
  readonly imagePrefix: string;
}

/** Every PlanEvent is built here, with one property order (one hidden class). */
function plan(op: PlanEvent['op'], m: TableMapping, key: Row, row: Row | null, partial: boolean): PlanEvent {
  return { op, table: m.target, keyColumns: m.keyColumns, key: op === 't' ? {} : key, row, partial };
}

const BLOCKED_WAIT_MS = 5_000;
const BLOCKED_LOG_EVERY_MS = 60_000;

export class Applier {
  readonly partitions = new Map<string, PartitionState>();
  deadLetterCount = 0;
  private readonly mappings = new WeakMap<TableSchema, TableMapping>();

  constructor(private readonly deps: ApplierDeps) {}

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

  async applyBatch(batch: IncomingBatch): Promise<void> {
    const started = process.hrtime.bigint();
    const state = this.state(batch.topic, batch.partition);
    state.highWatermark = batch.highWatermark;
    if (!state.stored) {
      state.stored = (await loadPositions(this.deps.pool, [batch.topic])).get(
        `${batch.topic}:${batch.partition}`,
      );
      state.stored ??= NO_POSITION;
    }
    let items: Item[];
    try {
      items = await this.prepare(batch.records, state.stored);
      await this.checkSchemas(items);
      const letters = items.flatMap((i) => (i.failed ? [i.failed] : []));
      await this.deadLetter(letters);
      // apply.batchSize bounds one green transaction; a Kafka batch may hold many.
      const size = Math.max(1, this.deps.apply.batchSize);
      for (let i = 0; i < items.length; i += size) await this.applyRange(state, items.slice(i, i + size));
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

  // Decode and transform, in order. Unknown fingerprints reload the schema topic and, if
  // still unknown, fail the batch (retried, never skipped).
  private async prepare(records: readonly IncomingRecord[], stored: StoredPosition): Promise<Item[]> {
    const items: Item[] = [];
    let partials = false;
    for (const record of records) {
      const item: Item = { record };
      items.push(item);
      if (record.offset <= stored.kafkaOffset || record.value === null) continue;
      let decoded: ReturnType<typeof decodeEvent>;
      try {
        // Await only when a schema had to be reloaded: a promise per record costs a microtask.
        const pending = this.decode(record.value);
        decoded = pending instanceof Promise ? await pending : pending;
      } catch (err) {
        if (classifyError(err) !== 'permanent') throw err;
        item.failed = letter(record, err);
        continue;
      }
      item.event = decoded.event;
      item.writer = decoded.table;
      if (decoded.event.unchanged.length > 0) partials = true;
    }
    // Last full blue image per key in this batch: completes a later update whose unchanged
    // TOAST columns it lacks, before transforms read the row. Kept only when needed.
    const images = partials ? new Map<string, Row>() : undefined;
    for (const item of items) {
      const { event, writer } = item;
      if (!event || !writer || comparePosition(event.position, stored.position) <= 0) continue;
      try {
        const plan = this.transform(event, writer, images);
        item.plan = plan instanceof Promise ? await plan : plan;
      } catch (err) {
        if (classifyError(err) !== 'permanent') throw err;
        item.failed = letter(item.record, err);
      }
    }
    return items;
  }

  private decode(value: Buffer): ReturnType<typeof decodeEvent> | Promise<ReturnType<typeof decodeEvent>> {
    try {
      return decodeEvent(value, this.deps.schemas.cache);
    } catch (err) {
      if (!(err instanceof TealError) || err.code !== 'TEAL_SCHEMA_UNKNOWN') throw err;
      return this.deps.schemas.reload().then(() => decodeEvent(value, this.deps.schemas.cache));
    }
  }

  // What the transforms decide per table version, computed once per writer schema: the green
  // table (one TableRef object, so the planner groups by identity), the green key columns.
  private mapping(writer: TableSchema): TableMapping {
    let m = this.mappings.get(writer);
    if (m) return m;
    const { transforms } = this.deps;
    const { schema, table } = writer;
    const keyColumns = writer.keyColumns.map((k) => transforms.columnName(schema, table, k) ?? k);
    m = {
      target: transforms.target(schema, table),
      keyColumns,
      blueKeyColumns: writer.keyColumns,
      sameKeyNames: keyColumns.every((k, i) => k === writer.keyColumns[i]),
      imagePrefix: `${schema}.${table}\u0000`,
    };
    this.mappings.set(writer, m);
    return m;
  }

  private transform(
    event: ChangeEvent,
    writer: TableSchema,
    images: Map<string, Row> | undefined,
  ): PlanEvent | Promise<PlanEvent> {
    const { transforms } = this.deps;
    const { schema, table } = event;
    const m = this.mapping(writer);
    const imageId = images ? m.imagePrefix + keyId(m.blueKeyColumns, event.key) : '';
    let greenKey: Row = event.key;
    if (!m.sameKeyNames) {
      greenKey = {};
      for (let i = 0; i < m.keyColumns.length; i++)
        greenKey[m.keyColumns[i]] = event.key[m.blueKeyColumns[i]] ?? null;
    }
    if (event.op === 't') {
      images?.clear();
      return plan('t', m, {}, null, false);
    }
    if (event.op === 'd' || event.after === null) {
      images?.delete(imageId);
      return plan('d', m, greenKey, null, false);
    }
    let row = event.after;
    let unchanged = event.unchanged;
    if (unchanged.length > 0) {
      const image = images?.get(imageId);
      if (image) {
        row = { ...image, ...event.after };
        unchanged = [];
      } else if (transforms.needsFullRow(schema, table)) {
        return this.completeFromGreen(event, m.target, greenKey, event.after).then((full) =>
          this.finish(event, m, greenKey, full, [], images, imageId),
        );
      }
    }
    return this.finish(event, m, greenKey, row, unchanged, images, imageId);
  }

  private finish(
    event: ChangeEvent,
    m: TableMapping,
    greenKey: Row,
    row: Row,
    unchanged: readonly string[],
    images: Map<string, Row> | undefined,
    imageId: string,
  ): PlanEvent {
    const { transforms } = this.deps;
    const { schema, table } = event;
    if (images && unchanged.length === 0) images.set(imageId, row);
    const out = transforms.applyRow(schema, table, row);
    // A row the filter rejects leaves green (it may have matched before this update).
    if (out === null) return plan('d', m, greenKey, null, false);
    const partial =
      unchanged.length > 0 && unchanged.some((c) => transforms.columnName(schema, table, c) !== null);
    return plan(event.op, m, greenKey, out, partial);
  }

  // A derive or filter needs columns an unchanged-TOAST update lacks and the batch holds no
  // earlier image: take green's current values of those columns (same text, renamed back).
  private async completeFromGreen(
    event: ChangeEvent,
    target: TableRef,
    greenKey: Row,
    row: Row,
  ): Promise<Row> {
    const { transforms } = this.deps;
    const wanted = event.unchanged
      .map((c) => [c, transforms.columnName(event.schema, event.table, c)] as const)
      .filter((p): p is readonly [string, string] => p[1] !== null);
    if (wanted.length === 0) return row;
    const keys = Object.keys(greenKey);
    const { rows } = await this.deps.pool.query<Record<string, string | null>>(
      `SELECT ${wanted.map(([, g], i) => `${quoteIdent(g)}::text AS c${i}`).join(', ')} FROM ${qualified(target)} ` +
        `WHERE ${keys.map((k, i) => `${quoteIdent(k)}::text = $${i + 1}`).join(' AND ')}`,
      keys.map((k) => greenKey[k]),
    );
    if (rows.length === 0) return row;
    const completed: Row = { ...row };
    wanted.forEach(([blue], i) => {
      completed[blue] = rows[0][`c${i}`] ?? null;
    });
    return completed;
  }

  // Every green table and column the batch writes exists, or is made to by the policy.
  private async checkSchemas(items: Item[]): Promise<void> {
    const { catalog, apply, transforms } = this.deps;
    const byTable = new Map<string, Item[]>();
    let lastTable: TableRef | undefined;
    let lastList: Item[] = [];
    for (const item of items) {
      if (!item.plan) continue;
      // Events of one table share one TableRef (see mapping()): no id string per record.
      if (item.plan.table !== lastTable) {
        lastTable = item.plan.table;
        const id = `${lastTable.schema}.${lastTable.table}`;
        lastList = byTable.get(id) ?? [];
        byTable.set(id, lastList);
      }
      lastList.push(item);
    }
    for (const list of byTable.values()) {
      const target = list[0].plan!.table;
      const source = { schema: list[0].event!.schema, table: list[0].event!.table };
      let columns = await catalog.columns(target);
      if (!columns) {
        if (!apply.createTables) throw blocked(missingTableReason(target, source));
        const writer = list[list.length - 1].writer!;
        await catalog.createTable(target, this.greenColumns(source, writer), list[0].plan!.keyColumns);
        columns = await catalog.columns(target);
        if (!columns) throw blocked(missingTableReason(target, source));
      }
      const rowColumns = new Set<string>();
      // Rows of one writer schema share their column list: check each distinct list once.
      let checked: string[] = [];
      for (const i of list) {
        const row = i.plan!.row;
        if (!row || sameColumns(row, checked)) continue;
        checked = [];
        for (const c in row) {
          checked.push(c);
          if (!columns.has(c)) rowColumns.add(c);
        }
      }
      const decision = decideColumns(target, source, columns, rowColumns, apply.onMissingColumn);
      if (decision.kind === 'block') throw blocked(decision.reason);
      if (decision.kind === 'ignore') {
        const drop = new Set(decision.drop);
        for (const item of list) {
          const plan = item.plan!;
          if (!plan.row) continue;
          const row = Object.fromEntries(Object.entries(plan.row).filter(([c]) => !drop.has(c)));
          item.plan = { ...plan, row };
        }
      }
      if (decision.kind === 'add') {
        const types = new Map<string, string>();
        for (const item of list)
          for (const [c, t] of this.greenColumns(source, item.writer!)) types.set(c, t);
        const adds = decision.add.map(
          (c) => [c, types.get(c) ?? transforms.castType(source.schema, source.table, c) ?? 'text'] as const,
        );
        this.deps.log.info(
          { table: `${target.schema}.${target.table}`, columns: decision.add },
          'adding columns to green',
        );
        await catalog.addColumns(target, adds);
      }
    }
  }

  /** Green column -> DDL type, from the writer schema and the transforms. */
  private greenColumns(source: TableRef, writer: TableSchema): Array<readonly [string, string]> {
    const { transforms } = this.deps;
    const out: Array<readonly [string, string]> = [];
    for (const col of writer.columns) {
      const name = transforms.columnName(source.schema, source.table, col.name);
      if (name === null) continue;
      out.push([name, transforms.castType(source.schema, source.table, name) ?? ddlType(col)]);
    }
    for (const name of transforms.derivedColumns(source.schema, source.table)) {
      if (out.some(([n]) => n === name)) continue;
      out.push([name, transforms.castType(source.schema, source.table, name) ?? 'text']);
    }
    return out;
  }

  private async applyRange(state: PartitionState, items: Item[]): Promise<void> {
    try {
      await this.transaction(state, items);
    } catch (err) {
      if (classifyError(err) !== 'permanent') throw err;
      const planned = items.filter((i) => i.plan);
      if (planned.length <= 1) {
        const bad = planned[0];
        if (!bad) throw err;
        bad.plan = undefined;
        bad.failed = letter(bad.record, err);
        await this.deadLetter([bad.failed]);
        await this.transaction(state, items);
        return;
      }
      const middle = items.indexOf(planned[Math.floor(planned.length / 2)]);
      await this.applyRange(state, items.slice(0, middle));
      await this.applyRange(state, items.slice(middle));
    }
  }

  // One green transaction in few round trips: the prelude (BEGIN, replication role, the locked
  // position row, ROW EXCLUSIVE on the targets, the last truncate) is one simple query, each
  // step one statement, and the position row goes with COMMIT.
  private async transaction(state: PartitionState, items: Item[]): Promise<void> {
    if (items.length === 0) return;
    const client = await this.deps.pool.connect();
    // A checked-out client has no pool listener: a session green ends between two statements
    // (57P01, restart) would be an unhandled 'error' event and end the process. The next
    // query fails with the same error, which the retry path handles.
    const onError = (err: Error) => this.deps.log.warn({ err }, 'green connection lost mid-transaction');
    client.on('error', onError);
    let applied: Item[] = [];
    let next: StoredPosition;
    try {
      const targets = new Map<string, TableRef>();
      let lastTable: TableRef | undefined;
      for (const i of items) {
        if (!i.plan || i.plan.table === lastTable) continue;
        lastTable = i.plan.table;
        targets.set(`${lastTable.schema}.${lastTable.table}`, lastTable);
      }
      const prelude = ['BEGIN'];
      // replica: triggers and FK checks are off, as for native logical replication apply;
      // green's triggers do not fire twice for rows blue's triggers already shaped.
      if (this.deps.apply.sessionReplicationRole === 'replica')
        prelude.push('SET LOCAL session_replication_role = replica');
      // The locked row is authoritative (another consumer may have moved it since assignment).
      const positionAt = prelude.push(lockPositionSql(state.topic, state.partition)) - 1;
      // A truncate reaches every partition of its topic, but partitions apply in parallel.
      // Taking ROW EXCLUSIVE on the targets first orders this transaction against another
      // partition's TRUNCATE (ACCESS EXCLUSIVE): the truncate position read after the lock is
      // the one that holds for the rows written here.
      let truncateAt = -1;
      if (targets.size > 0) {
        prelude.push(`LOCK TABLE ${[...targets.values()].map(qualified).join(', ')} IN ROW EXCLUSIVE MODE`);
        truncateAt = prelude.push(lastTruncateSql(state.topic)) - 1;
      }
      const results = (await client.query(prelude.join(';\n'))) as unknown as pg.QueryResult[];
      const stored = positionFromRows(results[positionAt].rows);
      const truncated = truncateAt >= 0 ? truncateFromRows(results[truncateAt].rows) : undefined;
      const fresh = items.filter(
        (i) =>
          i.plan &&
          i.record.offset > stored.kafkaOffset &&
          i.event &&
          comparePosition(i.event.position, stored.position) > 0,
      );
      // Blue truncated the table at `truncated`: what any partition wrote before that is gone,
      // and the truncate itself runs once, on the first partition that reaches it.
      applied = truncated ? fresh.filter((i) => comparePosition(i.event!.position, truncated) > 0) : fresh;
      const steps = planBatch(applied.map((i) => i.plan!));
      const typesByTable = new Map<string, ReadonlyMap<string, string>>();
      for (const step of steps) {
        const id = `${step.table.schema}.${step.table.table}`;
        let types = typesByTable.get(id);
        if (!types) {
          types = (await this.deps.catalog.columns(step.table)) ?? new Map();
          typesByTable.set(id, types);
        }
        const t = types;
        const statement = stepStatement(step, (c) => t.get(c));
        await client.query(statement.text, statement.values);
      }
      let position = stored.position;
      for (const i of items)
        if (i.event && comparePosition(i.event.position, position) > 0) position = i.event.position;
      const last = items[items.length - 1].record.offset;
      next = { kafkaOffset: last > stored.kafkaOffset ? last : stored.kafkaOffset, position };
      const epilogue: string[] = [];
      for (const i of applied)
        if (i.event!.op === 't') epilogue.push(markTruncatedSql(state.topic, i.event!.position));
      epilogue.push(savePositionSql(state.topic, state.partition, next), 'COMMIT');
      await client.query(epilogue.join(';\n'));
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.removeListener('error', onError);
      client.release(isBroken(err) ? (err as Error) : undefined);
      throw err;
    }
    client.removeListener('error', onError);
    client.release();
    state.stored = next;
    this.count(items, applied);
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
      this.deps.metrics?.deadLetters.inc({ table: tableOfTopic(l.record.topic), code: l.code });
    }
  }

  // One counter increment per (table, op) and transaction: prom-client's labelled inc is
  // costly per record. `applied` is a subsequence of `items`, walked alongside.
  private count(items: Item[], applied: Item[]): void {
    const m = this.deps.metrics;
    if (!m) return;
    const counts = new Map<TableSchema, Map<string, number>>();
    let j = 0;
    for (const i of items) {
      if (!i.event || !i.writer) continue;
      const isApplied = applied[j] === i;
      if (isApplied) j++;
      else if (i.failed) continue;
      let byOp = counts.get(i.writer);
      if (!byOp) {
        byOp = new Map();
        counts.set(i.writer, byOp);
      }
      // '' counts skipped records.
      const op = isApplied ? i.event.op : '';
      byOp.set(op, (byOp.get(op) ?? 0) + 1);
    }
    for (const [writer, byOp] of counts) {
      const table = `${writer.schema}.${writer.table}`;
      for (const [op, n] of byOp) {
        if (op === '') m.eventsSkipped.inc({ table }, n);
        else m.eventsApplied.inc({ table, op }, n);
      }
    }
  }

  private observe(state: PartitionState, batch: IncomingBatch, started: bigint, items: Item[]): void {
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
    if (newest >= 0n) m.replicationLagSeconds.observe(Math.max(0, Date.now() / 1000 - Number(newest) / 1e6));
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

/** True when `row`'s own keys are exactly `columns`, in that order. */
function sameColumns(row: Row, columns: readonly string[]): boolean {
  let i = 0;
  for (const c in row) if (columns[i++] !== c) return false;
  return i === columns.length && i > 0;
}

function blocked(reason: string): TealError {
  return new TealError('TEAL_SCHEMA_BLOCKED', reason, { retriable: true });
}

function letter(record: IncomingRecord, err: unknown): DeadLetter {
  return { record, code: errorCode(err), message: errorMessage(err) };
}

function isBroken(err: unknown): boolean {
  return classifyError(err) === 'transient';
}

function tableOfTopic(topic: string): string {
  const dot = topic.indexOf('.');
  return dot < 0 ? topic : topic.slice(dot + 1);
}
