import type { Op, PgText, Row } from '@teal/change-event';

// Turns the events of one partition batch (decoded, transformed, in order) into a short list
// of set-based steps, in the manner of Debezium's JDBC sink ReducedRecordBuffer: the last
// event per key wins. Pure: no server, tested from values (apply-plan.test.ts).
//
// Invariants kept:
// - An update with unchanged TOAST columns (partial) never writes those columns: it merges
//   into the earlier image of its key in the batch, or stays a partial UPDATE ... WHERE key
//   (never an insert with NULLs: a row green lacks is brought later by the snapshot).
// - Truncates are barriers: everything before them is flushed first.
// - Within a segment, deletes run before upserts, upserts before partial updates, so a
//   unique value moved from one row to another does not collide.

export interface TableRef {
  readonly schema: string;
  readonly table: string;
}

export interface PlanEvent {
  readonly op: Op;
  /** Green table (already mapped by the transforms). */
  readonly table: TableRef;
  /** Green key column names, in key order. */
  readonly keyColumns: readonly string[];
  /** Key values by green column name (empty for a truncate). */
  readonly key: Row;
  /** Green row for c/u/r (the key columns included); null for d and t. */
  readonly row: Row | null;
  /** True when the row lacks unchanged TOAST columns: it carries only some columns. */
  readonly partial: boolean;
}

export type ApplyStep =
  | {
      readonly kind: 'upsert';
      readonly table: TableRef;
      readonly keyColumns: readonly string[];
      /** Key columns first, then the others; every row has a value per column. */
      readonly columns: readonly string[];
      readonly rows: PgText[][];
    }
  | {
      readonly kind: 'update';
      readonly table: TableRef;
      readonly keyColumns: readonly string[];
      readonly columns: readonly string[];
      readonly rows: PgText[][];
    }
  | {
      readonly kind: 'delete';
      readonly table: TableRef;
      readonly keyColumns: readonly string[];
      readonly keys: PgText[][];
    }
  | { readonly kind: 'truncate'; readonly table: TableRef };

type Pending =
  | { kind: 'full' | 'partial'; table: TableRef; keyColumns: readonly string[]; key: Row; row: Row }
  | { kind: 'delete'; table: TableRef; keyColumns: readonly string[]; key: Row; row: null };

export function planBatch(events: readonly PlanEvent[]): ApplyStep[] {
  const steps: ApplyStep[] = [];
  let pending = new Map<string, Pending>();
  for (const event of events) {
    if (event.op === 't') {
      steps.push(...flush(pending), { kind: 'truncate', table: event.table });
      pending = new Map();
      continue;
    }
    const id = `${tableId(event.table)}\u0000${keyId(event.keyColumns, event.key)}`;
    const before = pending.get(id);
    const next = reduce(before, event);
    // Re-inserting moves the key to the end: rows keep the order of their last change.
    pending.delete(id);
    if (next) pending.set(id, next);
  }
  steps.push(...flush(pending));
  return steps;
}

function reduce(before: Pending | undefined, event: PlanEvent): Pending | undefined {
  const base = { table: event.table, keyColumns: event.keyColumns, key: event.key };
  if (event.op === 'd' || event.row === null) return { ...base, kind: 'delete', row: null };
  if (!event.partial) return { ...base, kind: 'full', row: event.row };
  if (before === undefined) return { ...base, kind: 'partial', row: event.row };
  // A partial image of a key deleted earlier in the batch updates a row that is gone.
  if (before.kind === 'delete') return before;
  // Unchanged columns are absent from event.row, so the earlier values stay.
  return { ...base, kind: before.kind, row: { ...before.row, ...event.row } };
}

function flush(pending: Map<string, Pending>): ApplyStep[] {
  const deletes = new Map<string, { table: TableRef; keyColumns: readonly string[]; keys: PgText[][] }>();
  const upserts = new Map<
    string,
    { table: TableRef; keyColumns: readonly string[]; columns: string[]; rows: PgText[][] }
  >();
  const updates = new Map<
    string,
    { table: TableRef; keyColumns: readonly string[]; columns: string[]; rows: PgText[][] }
  >();
  for (const p of pending.values()) {
    if (p.kind === 'delete') {
      const id = tableId(p.table);
      let group = deletes.get(id);
      if (!group) {
        group = { table: p.table, keyColumns: p.keyColumns, keys: [] };
        deletes.set(id, group);
      }
      group.keys.push(p.keyColumns.map((k) => p.key[k] ?? null));
      continue;
    }
    const groups = p.kind === 'full' ? upserts : updates;
    // Rows of one writer schema list their columns in one order: that order names the group
    // without sorting (the same set in another order makes another, equally correct, statement).
    const rowColumns = Object.keys(p.row);
    const id = `${tableId(p.table)}\u0000${rowColumns.join('\u0000')}`;
    let group = groups.get(id);
    if (!group) {
      const keySet = new Set(p.keyColumns);
      const others = rowColumns.filter((c) => !keySet.has(c)).sort();
      group = { table: p.table, keyColumns: p.keyColumns, columns: [...p.keyColumns, ...others], rows: [] };
      groups.set(id, group);
    }
    const { row, key } = p;
    const values: PgText[] = new Array(group.columns.length);
    for (let i = 0; i < values.length; i++) {
      const c = group.columns[i];
      const v = row[c];
      values[i] = v === undefined ? (key[c] ?? null) : v;
    }
    group.rows.push(values);
  }
  const steps: ApplyStep[] = [];
  for (const g of deletes.values()) steps.push({ kind: 'delete', ...g });
  for (const g of upserts.values()) steps.push({ kind: 'upsert', ...g });
  // A partial update with only key columns has nothing to set.
  for (const g of updates.values())
    if (g.columns.length > g.keyColumns.length) steps.push({ kind: 'update', ...g });
  return steps;
}

/** A key's identity within a table: text values cannot hold NUL, so NUL marks SQL NULL. */
export function keyId(keyColumns: readonly string[], key: Row): string {
  if (keyColumns.length === 1) return key[keyColumns[0]] ?? '\u0000';
  return JSON.stringify(keyColumns.map((k) => key[k] ?? null));
}

function tableId(t: TableRef): string {
  return `${t.schema}\u0000${t.table}`;
}
