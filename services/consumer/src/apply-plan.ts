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
// - An ordered table (green enforces a unique index besides the key) and a keyless one (green
//   has no unique index on the key, so a key may name several rows) are not collapsed: their
//   changes become statements in stream order, a run of consecutive same-kind rows with
//   distinct keys per statement (docs/architecture.md, "Green's shapes").

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
  | {
      /**
       * Plain INSERT (`insert`): a keyless table's insert adds a row even when an equal one
       * exists. `fill`: a keyless table's snapshot rows, keys repeating: green ends with at
       * least as many rows of a key as the step has (updated, then the missing ones inserted).
       */
      readonly kind: 'insert' | 'fill';
      readonly table: TableRef;
      readonly keyColumns: readonly string[];
      readonly columns: readonly string[];
      readonly rows: PgText[][];
    }
  | { readonly kind: 'truncate'; readonly table: TableRef };

/**
 * How a table's changes are planned: `collapse` keeps the last event per key; `ordered` keeps
 * every change in stream order; `keyless` too, and its inserts are plain INSERTs.
 */
export type ApplyMode = 'collapse' | 'ordered' | 'keyless';

export interface PlanOptions {
  /** The table's mode (asked once per table and batch); default collapse. */
  readonly mode?: (table: TableRef) => ApplyMode;
}

// The last event per key, as a PlanEvent: a delete (op 'd' or no row), a full image, or a
// partial one. Most events are stored as they come; only a merge allocates.
type Pending = PlanEvent;

export function planBatch(events: readonly PlanEvent[], options: PlanOptions = {}): ApplyStep[] {
  const steps: ApplyStep[] = [];
  const modes = new Map<TableRef, ApplyMode>();
  const modeOf = (t: TableRef): ApplyMode => {
    let m = modes.get(t);
    if (m === undefined) {
      m = options.mode?.(t) ?? 'collapse';
      modes.set(t, m);
    }
    return m;
  };
  const runs = new StreamOrder();
  // Table -> key -> last event. Events of one table share one TableRef object, so the table's
  // map is found without building an id string per event.
  let tables = new Map<string, Map<string, Pending>>();
  let lastTable: TableRef | undefined;
  let lastMap: Map<string, Pending> | undefined;
  for (const event of events) {
    if (event.op === 't') {
      steps.push(...flush(tables), ...runs.close(), { kind: 'truncate', table: event.table });
      tables = new Map();
      lastTable = undefined;
      lastMap = undefined;
      continue;
    }
    const mode = modeOf(event.table);
    if (mode !== 'collapse') {
      runs.add(event, mode);
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
  steps.push(...flush(tables), ...runs.close());
  return steps;
}

type RunKind = 'delete' | 'upsert' | 'update' | 'insert' | 'fill';

interface Run {
  readonly kind: RunKind;
  readonly table: TableRef;
  readonly keyColumns: readonly string[];
  /** The row columns in the order that names this run (empty for deletes). */
  readonly order: readonly string[];
  readonly columns: readonly string[];
  readonly rows: PgText[][];
  readonly keys: Set<string>;
  readonly nullMask: number;
}

/**
 * Statements in stream order for ordered and keyless tables. A run takes consecutive rows of
 * one kind, column list and NULL pattern of the key, each key once: rows of one statement are
 * written in the order given (INSERT ... SELECT FROM unnest), so the run is applied as its
 * events were. A partial update is a statement of its own: UPDATE ... FROM joins in an order
 * of the planner's choosing, which a unique value moving between rows would notice.
 */
class StreamOrder {
  private readonly steps: ApplyStep[] = [];
  private run: Run | undefined;

  add(event: PlanEvent, mode: ApplyMode): void {
    const kind: RunKind = isDelete(event)
      ? 'delete'
      : event.partial
        ? 'update'
        : mode === 'keyless' && event.op === 'c'
          ? 'insert'
          : mode === 'keyless' && event.op === 'r'
            ? 'fill'
            : 'upsert';
    const id = keyId(event.keyColumns, event.key);
    const mask = nullMask(event.keyColumns, event.key);
    const row = kind === 'delete' ? null : event.row!;
    let run = this.run;
    if (
      run === undefined ||
      run.kind !== kind ||
      kind === 'update' ||
      run.table !== event.table ||
      run.nullMask !== mask ||
      (run.keys.has(id) && kind !== 'fill') ||
      (row !== null && !sameOrder(row, run.order))
    ) {
      this.end();
      const order = row === null ? [] : Object.keys(row);
      const keySet = new Set(event.keyColumns);
      run = {
        kind,
        table: event.table,
        keyColumns: event.keyColumns,
        order,
        columns: [...event.keyColumns, ...order.filter((c) => !keySet.has(c)).sort()],
        rows: [],
        keys: new Set(),
        nullMask: mask,
      };
      this.run = run;
    }
    run.keys.add(id);
    const values: PgText[] = new Array(run.columns.length);
    for (let i = 0; i < values.length; i++) {
      const c = run.columns[i];
      const v = row?.[c];
      values[i] = v === undefined ? (event.key[c] ?? null) : v;
    }
    run.rows.push(values);
  }

  /** The steps so far, the open run included; the list starts empty again. */
  close(): ApplyStep[] {
    this.end();
    return this.steps.splice(0);
  }

  private end(): void {
    const run = this.run;
    if (!run) return;
    this.run = undefined;
    const { kind, table, keyColumns, columns, rows } = run;
    if (kind === 'delete') this.steps.push({ kind, table, keyColumns, keys: rows });
    else if (kind !== 'update' || columns.length > keyColumns.length)
      this.steps.push({ kind, table, keyColumns, columns, rows });
  }
}

/** Which key columns are NULL, as bits (key columns past 31 share the last bit). */
export function nullMask(keyColumns: readonly string[], key: Row): number {
  let mask = 0;
  for (let i = 0; i < keyColumns.length; i++)
    if ((key[keyColumns[i]] ?? null) === null) mask |= 1 << Math.min(i, 30);
  return mask;
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
