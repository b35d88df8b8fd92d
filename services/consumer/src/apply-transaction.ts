import type { TableSchema } from '@teal/change-event';
import type { ResolvedConfig } from '@teal/config';
import { sqlState, TealError } from '@teal/errors';
import {
  lastTruncateSql,
  lockPositionSql,
  markTruncatedSql,
  positionFromRows,
  type StoredPosition,
  savePositionSql,
  truncateFromRows,
} from '@teal/postgres';
import { quoteIdent } from '@teal/postgres/sql';
import { abortableDelay, type Logger, type TealMetrics } from '@teal/runtime';
import type pg from 'pg';
import { type ApplyMode, planBatch, type TableRef } from './apply-plan.ts';
import { qualified, type Statement, shapeOf, stepStatements, type WriteShape } from './apply-sql.ts';
import { type BatchItem, letter } from './batch-item.ts';
import type { DeadLetter } from './dead-letter.ts';
import { classifyError, errorMessage } from './error-policy.ts';
import type { GreenCatalog } from './green-catalog.ts';
import { applyMode, arbiterIndexes, type GreenTable } from './green-shape.ts';
import { followsStored, MisplacedFetch, offsetBreak, offsetGapError } from './offset-contiguity.ts';
import { itemsToApply, nextStored } from './skip-rule.ts';

// The write to green, effectively once: the rows and the partition's position row commit in
// one transaction, decided against the locked position row. A record green rejects for good
// is isolated by bisecting the range, dead-lettered (acked by Kafka first) and the rest applies.

/** Where a partition stands; `stored` moves with each committed transaction. */
export interface PartitionCursor {
  readonly topic: string;
  readonly partition: number;
  stored: StoredPosition | undefined;
}

export interface ApplyTransactionDeps {
  readonly pool: pg.Pool;
  readonly catalog: GreenCatalog;
  readonly apply: ResolvedConfig['apply'];
  readonly log: Logger;
  readonly metrics?: TealMetrics;
  /** The earliest offset Kafka still holds for a partition (asked only when a batch does not follow green's). */
  readonly earliestOffset?: (topic: string, partition: number) => Promise<bigint>;
  /** config.ordered: per blue table, keep commit order (true) or not (false) whatever green's indexes say. */
  readonly ordered?: ResolvedConfig['ordered'];
  readonly signal?: AbortSignal;
}

/** Sends letters and returns once Kafka acknowledged them. */
export type SendDeadLetters = (letters: DeadLetter[]) => Promise<void>;

export class ApplyTransaction {
  constructor(
    private readonly deps: ApplyTransactionDeps,
    private readonly deadLetter: SendDeadLetters,
  ) {}

  /** Applies `items` in one transaction, or bisects them until a permanent failure is one record. */
  async apply(cursor: PartitionCursor, items: BatchItem[]): Promise<void> {
    await this.isolate(cursor, items, { until: Date.now() + CONTENTION_RETRY_MS });
  }

  private async isolate(
    cursor: PartitionCursor,
    items: BatchItem[],
    budget: { until: number },
  ): Promise<void> {
    try {
      await this.retryContention(cursor, items, budget);
    } catch (err) {
      if (classifyError(err) !== 'permanent') throw err;
      const planned = items.filter((i) => i.plan);
      if (planned.length <= 1) {
        const bad = planned[0];
        if (!bad) throw err;
        bad.plan = undefined;
        bad.failed = letter(bad.record, err);
        await this.deadLetter([bad.failed]);
        await this.retryContention(cursor, items, budget);
        return;
      }
      const middle = items.indexOf(planned[Math.floor(planned.length / 2)]);
      await this.isolate(cursor, items.slice(0, middle), budget);
      await this.isolate(cursor, items.slice(middle), budget);
    }
  }

  // A unique value another partition has not yet moved away (23505 on an index that is not
  // the statement's arbiter), a deadlock or a serialization failure between partitions: the
  // same rows succeed once the other side commits. Retried with backoff until the batch's
  // budget is spent, and only then judged (a 23505 is then the record's, and bisected).
  private async retryContention(
    cursor: PartitionCursor,
    items: BatchItem[],
    budget: { until: number },
  ): Promise<void> {
    let delay = CONTENTION_FIRST_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.transaction(cursor, items);
        return;
      } catch (err) {
        if (!contended.has(err as object) || Date.now() >= budget.until || this.deps.signal?.aborted)
          throw err;
        this.deps.log.warn(
          {
            topic: cursor.topic,
            partition: cursor.partition,
            attempt,
            code: sqlState(err),
            reason: errorMessage(err),
          },
          `green refused a batch for a change another partition or transaction holds; retrying in ${delay} ms`,
        );
        await abortableDelay(Math.min(delay, Math.max(0, budget.until - Date.now())), this.deps.signal).catch(
          () => undefined,
        );
        delay = Math.min(delay * 2, CONTENTION_MAX_MS);
      }
    }
  }

  // One green transaction in few round trips: the prelude (BEGIN, replication role, the locked
  // position row, ROW EXCLUSIVE on the targets, the last truncate) is one simple query, each
  // step one statement, and the position row goes with COMMIT.
  private async transaction(cursor: PartitionCursor, items: BatchItem[]): Promise<void> {
    if (items.length === 0) return;
    const tables = await this.greenTables(items);
    const client = await this.deps.pool.connect();
    // A checked-out client has no pool listener: a session green ends between two statements
    // (57P01, restart) would be an unhandled 'error' event and end the process. The next
    // query fails with the same error, which the retry path handles.
    const onError = (err: Error) => this.deps.log.warn({ err }, 'green connection lost mid-transaction');
    client.on('error', onError);
    let applied: BatchItem[] = [];
    let next: StoredPosition;
    try {
      const targets = new Map<string, TableRef>();
      let lastTable: TableRef | undefined;
      for (const i of items) {
        if (!i.plan || i.plan.table === lastTable) continue;
        lastTable = i.plan.table;
        targets.set(`${lastTable.schema}.${lastTable.table}`, lastTable);
      }
      // Deferrable constraints (unique, foreign keys) are checked at COMMIT: rows of one blue
      // transaction may pass through states that are valid only when all of them are in.
      const prelude = ['BEGIN', 'SET CONSTRAINTS ALL DEFERRED'];
      // replica: triggers and FK checks are off, as for native logical replication apply;
      // green's triggers do not fire twice for rows blue's triggers already shaped.
      if (this.deps.apply.sessionReplicationRole === 'replica')
        prelude.push('SET LOCAL session_replication_role = replica');
      // The locked row is authoritative (another consumer may have moved it since assignment).
      const positionAt = prelude.push(lockPositionSql(cursor.topic, cursor.partition)) - 1;
      // A truncate reaches every partition of its topic, but partitions apply in parallel.
      // Taking ROW EXCLUSIVE on the targets first orders this transaction against another
      // partition's TRUNCATE (ACCESS EXCLUSIVE): the truncate position read after the lock is
      // the one that holds for the rows written here.
      let truncateAt = -1;
      if (targets.size > 0) {
        prelude.push(`LOCK TABLE ${[...targets.values()].map(qualified).join(', ')} IN ROW EXCLUSIVE MODE`);
        truncateAt = prelude.push(lastTruncateSql(cursor.topic)) - 1;
      }
      const results = (await client.query(prelude.join(';\n'))) as unknown as pg.QueryResult[];
      const stored = positionFromRows(results[positionAt].rows);
      await this.checkContiguity(cursor, stored, items[0].record.offset);
      const truncated = truncateAt >= 0 ? truncateFromRows(results[truncateAt].rows) : undefined;
      // What any partition wrote before the truncate is gone, and the truncate itself runs
      // once, on the first partition that reaches it.
      applied = itemsToApply(items, stored, truncated);
      const steps = planBatch(
        applied.map((i) => i.plan!),
        { mode: (t) => tables.get(t)?.mode ?? 'collapse' },
      );
      for (const step of steps) {
        const target = tables.get(step.table);
        const shape = target?.shape ?? { types: () => undefined };
        for (const statement of stepStatements(step, shape)) await this.run(client, step.table, statement);
      }
      next = nextStored(stored, items);
      const epilogue: string[] = [];
      for (const i of applied)
        if (i.event!.op === 't') epilogue.push(markTruncatedSql(cursor.topic, i.event!.position));
      epilogue.push(savePositionSql(cursor.topic, cursor.partition, next), 'COMMIT');
      await client.query(epilogue.join(';\n'));
    } catch (err) {
      if (isContention(err, tables)) contended.add(err as object);
      await client.query('ROLLBACK').catch(() => undefined);
      client.removeListener('error', onError);
      client.release(isBroken(err) ? (err as Error) : undefined);
      throw err;
    }
    client.removeListener('error', onError);
    client.release();
    cursor.stored = next;
    this.count(items, applied);
  }

  private async run(client: pg.PoolClient, table: TableRef, statement: Statement): Promise<void> {
    const result = await client.query(statement.text, statement.values);
    if (statement.identityCheck === undefined || result.rows.length === 0) return;
    const column = statement.identityCheck;
    const name = `${table.schema}.${table.table}`;
    throw new TealError(
      'TEAL_APPLY_FAILED',
      `green table ${name} has "${column}" as an identity column GENERATED ALWAYS, and blue changed its value ` +
        `(key ${Object.values(result.rows[0]).join(', ')}); green refuses to UPDATE such a column: make it ` +
        `BY DEFAULT (ALTER TABLE ${qualified(table)} ALTER COLUMN ${quoteIdent(column)} SET GENERATED BY DEFAULT), ` +
        'then replay the dead letter',
    );
  }

  // Green's shape of every table the items write, with how their changes are planned; read
  // before a client is checked out (the catalog queries through the pool).
  private async greenTables(items: BatchItem[]): Promise<Map<TableRef, TargetTable>> {
    const out = new Map<TableRef, TargetTable>();
    const role = this.deps.apply.sessionReplicationRole === 'replica' ? 'replica' : 'origin';
    for (const i of items) {
      const plan = i.plan;
      if (!plan || out.has(plan.table) || plan.op === 't') continue;
      const green = await this.deps.catalog.table(plan.table);
      if (!green) continue;
      const source = `${i.event!.schema}.${i.event!.table}`;
      out.set(plan.table, {
        green,
        keyColumns: plan.keyColumns,
        shape: shapeOf(green, plan.keyColumns, role),
        mode: applyMode(green, plan.keyColumns, this.deps.ordered?.[source]),
      });
    }
    // A truncate alone in a batch still needs to know whether a foreign key references its table.
    for (const i of items) {
      const plan = i.plan;
      if (!plan || out.has(plan.table) || plan.op !== 't') continue;
      const green = await this.deps.catalog.table(plan.table);
      if (green)
        out.set(plan.table, { green, keyColumns: [], shape: shapeOf(green, [], role), mode: 'collapse' });
    }
    return out;
  }

  // Against the locked row: a batch that does not follow green's offset is never applied.
  private async checkContiguity(
    cursor: PartitionCursor,
    stored: StoredPosition,
    first: bigint,
  ): Promise<void> {
    if (followsStored(stored.kafkaOffset, first)) return;
    const earliest = this.deps.earliestOffset
      ? await this.deps.earliestOffset(cursor.topic, cursor.partition)
      : stored.kafkaOffset + 1n;
    const broken = offsetBreak(stored.kafkaOffset, first, earliest);
    if (!broken) return;
    if (broken.kind === 'expired')
      throw offsetGapError(cursor.topic, cursor.partition, stored.kafkaOffset, broken.earliest);
    throw new MisplacedFetch(cursor.topic, cursor.partition, broken.next, first);
  }

  // One counter increment per (table, op) and transaction: prom-client's labelled inc is
  // costly per record. `applied` is a subsequence of `items`, walked alongside.
  private count(items: BatchItem[], applied: BatchItem[]): void {
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
}

const CONTENTION_RETRY_MS = 30_000;
const CONTENTION_FIRST_MS = 50;
const CONTENTION_MAX_MS = 2_000;

/** Errors of a transaction that another partition's progress can undo (see retryContention). */
const contended = new WeakSet<object>();

interface TargetTable {
  readonly green: GreenTable;
  readonly keyColumns: readonly string[];
  readonly shape: WriteShape;
  readonly mode: ApplyMode;
}

function isContention(err: unknown, tables: ReadonlyMap<TableRef, TargetTable>): boolean {
  const state = sqlState(err);
  if (state === '40P01' || state === '40001') return true;
  if (state !== '23505') return false;
  // A conflict on the arbiter of an upsert cannot happen; one on another unique index can be a
  // value that a change still in flight elsewhere frees.
  const constraint = (err as { constraint?: unknown }).constraint;
  for (const t of tables.values())
    if (arbiterIndexes(t.green, t.keyColumns).some((i) => i.name === constraint)) return false;
  return true;
}

// A transient failure may have left the session unusable: the pool drops it.
function isBroken(err: unknown): boolean {
  return classifyError(err) === 'transient';
}
