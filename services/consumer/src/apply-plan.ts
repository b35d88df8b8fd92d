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

// The last event per key, as a PlanEvent: a delete (op 'd' or no row), a full image, or a
// partial one. Most events are stored as they come; only a merge allocates.
type Pending = PlanEvent;

export function planBatch(events: readonly PlanEvent[]): ApplyStep[] {
  const steps: ApplyStep[] = [];
  // Table -> key -> last event. Events of one table share one TableRef object, so the table's
  // map is found without building an id string per event.
  let tables = new Map<string, Map<string, Pending>>();
  let lastTable: TableRef | undefined;
  let lastMap: Map<string, Pending> | undefined;
  for (const event of events) {
    if (event.op === 't') {
      steps.push(...flush(tables), { kind: 'truncate', table: event.table });
      tables = new Map();
      lastTable = undefined;
      lastMap = undefined;
      continue;
    }
    let pending = lastMap;
    if (event.table !== lastTable || pending === undefined) {
      const tid = tableId(event.table);
      pending = tables.get(tid);
      if (!pending) {
        pending = new Map();
        tables.set(tid, pending);
      }
      lastTable = event.table;
      lastMap = pending;
    }
    const id = keyId(event.keyColumns, event.key);
    const before = pending.get(id);
    if (before === undefined) {
      pending.set(id, event);
      continue;
    }
    // Re-inserting moves the key to the end: rows keep the order of their last change.
    pending.delete(id);
    pending.set(id, reduce(before, event));
  }
  steps.push(...flush(tables));
  return steps;
}

function isDelete(p: Pending): boolean {
  return p.op === 'd' || p.row === null;
}

function reduce(before: Pending, event: PlanEvent): Pending {
  if (isDelete(event) || !event.partial) return event;
  // A partial image of a key deleted earlier in the batch updates a row that is gone.
  if (isDelete(before)) return before;
  // Unchanged columns are absent from event.row, so the earlier values stay.
  return {
    op: event.op,
    table: event.table,
    keyColumns: event.keyColumns,
    key: event.key,
    row: { ...before.row, ...event.row },
    partial: before.partial,
  };
}

interface RowGroup {
  readonly table: TableRef;
  readonly keyColumns: readonly string[];
  readonly columns: string[];
  readonly rows: PgText[][];
  /** The row columns in the order that names this group. */
  readonly order: readonly string[];
}

/** True when `row`'s own keys are exactly `order`, in that order (no allocation). */
function sameOrder(row: Row, order: readonly string[]): boolean {
  let i = 0;
  for (const c in row) if (order[i++] !== c) return false;
  return i === order.length;
}

function flush(tables: Map<string, Map<string, Pending>>): ApplyStep[] {
  const deletes = new Map<string, { table: TableRef; keyColumns: readonly string[]; keys: PgText[][] }>();
  const upserts = new Map<string, RowGroup>();
  const updates = new Map<string, RowGroup>();
  let lastGroup: RowGroup | undefined;
  let lastPartial = false;
  for (const [tid, pending] of tables) {
    for (const p of pending.values()) {
      if (isDelete(p)) {
        let group = deletes.get(tid);
        if (!group) {
          group = { table: p.table, keyColumns: p.keyColumns, keys: [] };
          deletes.set(tid, group);
        }
        const keyValues: PgText[] = new Array(p.keyColumns.length);
        for (let i = 0; i < keyValues.length; i++) keyValues[i] = p.key[p.keyColumns[i]] ?? null;
        group.keys.push(keyValues);
        continue;
      }
      const row = p.row!;
      // Rows of one writer schema list their columns in one order: that order names the group
      // without sorting (the same set in another order makes another, equally correct, statement).
      let group =
        lastGroup !== undefined &&
        lastPartial === p.partial &&
        lastGroup.table === p.table &&
        sameOrder(row, lastGroup.order)
          ? lastGroup
          : undefined;
      if (!group) {
        const groups = p.partial ? updates : upserts;
        const rowColumns = Object.keys(row);
        const id = `${tid}\u0000${rowColumns.join('\u0000')}`;
        group = groups.get(id);
        if (!group) {
          const keySet = new Set(p.keyColumns);
          const others = rowColumns.filter((c) => !keySet.has(c)).sort();
          group = {
            table: p.table,
            keyColumns: p.keyColumns,
            columns: [...p.keyColumns, ...others],
            rows: [],
            order: rowColumns,
          };
          groups.set(id, group);
        }
        lastGroup = group;
        lastPartial = p.partial;
      }
      const { columns } = group;
      const key = p.key;
      const values: PgText[] = new Array(columns.length);
      for (let i = 0; i < values.length; i++) {
        const c = columns[i];
        const v = row[c];
        values[i] = v === undefined ? (key[c] ?? null) : v;
      }
      group.rows.push(values);
    }
  }
  const steps: ApplyStep[] = [];
  for (const g of deletes.values()) steps.push({ kind: 'delete', ...g });
  for (const { table, keyColumns, columns, rows } of upserts.values())
    steps.push({ kind: 'upsert', table, keyColumns, columns, rows });
  // A partial update with only key columns has nothing to set.
  for (const { table, keyColumns, columns, rows } of updates.values())
    if (columns.length > keyColumns.length) steps.push({ kind: 'update', table, keyColumns, columns, rows });
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
