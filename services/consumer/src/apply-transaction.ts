import type { TableSchema } from '@teal/change-event';
import type { ResolvedConfig } from '@teal/config';
import {
  lastTruncateSql,
  lockPositionSql,
  markTruncatedSql,
  positionFromRows,
  type StoredPosition,
  savePositionSql,
  truncateFromRows,
} from '@teal/postgres';
import type { Logger, TealMetrics } from '@teal/runtime';
import type pg from 'pg';
import { planBatch, type TableRef } from './apply-plan.ts';
import { qualified, stepStatement } from './apply-sql.ts';
import { type BatchItem, letter } from './batch-item.ts';
import type { DeadLetter } from './dead-letter.ts';
import { classifyError } from './error-policy.ts';
import type { GreenCatalog } from './green-catalog.ts';
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
    try {
      await this.transaction(cursor, items);
    } catch (err) {
      if (classifyError(err) !== 'permanent') throw err;
      const planned = items.filter((i) => i.plan);
      if (planned.length <= 1) {
        const bad = planned[0];
        if (!bad) throw err;
        bad.plan = undefined;
        bad.failed = letter(bad.record, err);
        await this.deadLetter([bad.failed]);
        await this.transaction(cursor, items);
        return;
      }
      const middle = items.indexOf(planned[Math.floor(planned.length / 2)]);
      await this.apply(cursor, items.slice(0, middle));
      await this.apply(cursor, items.slice(middle));
    }
  }

  // One green transaction in few round trips: the prelude (BEGIN, replication role, the locked
  // position row, ROW EXCLUSIVE on the targets, the last truncate) is one simple query, each
  // step one statement, and the position row goes with COMMIT.
  private async transaction(cursor: PartitionCursor, items: BatchItem[]): Promise<void> {
    if (items.length === 0) return;
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
      const prelude = ['BEGIN'];
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
      next = nextStored(stored, items);
      const epilogue: string[] = [];
      for (const i of applied)
        if (i.event!.op === 't') epilogue.push(markTruncatedSql(cursor.topic, i.event!.position));
      epilogue.push(savePositionSql(cursor.topic, cursor.partition, next), 'COMMIT');
      await client.query(epilogue.join(';\n'));
    } catch (err) {
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

// A transient failure may have left the session unusable: the pool drops it.
function isBroken(err: unknown): boolean {
  return classifyError(err) === 'transient';
}
