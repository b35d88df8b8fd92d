import type { ChangeEvent, PgText, Row, TableSchema } from '@teal/change-event';
import type { TransformSet } from '@teal/config';
import type { StoredPosition } from '@teal/postgres';
import { keyId, type PlanEvent, type TableRef } from './apply-plan.ts';
import type { BatchItem } from './batch-item.ts';
import { isSkipped } from './skip-rule.ts';

// Event + writer schema + transforms -> the green row to write (a PlanEvent). Pure but for
// one injected read: a derive or filter that needs the unchanged TOAST columns of an update
// with no earlier image in the batch gets green's current values of them (brief item 5).
// What a throwing transform means is the caller's error policy, injected too.

/** Green's current text of `columns` for the row at `key`; undefined when green has no such row. */
export type ReadGreenColumns = (
  table: TableRef,
  key: Row,
  columns: readonly string[],
) => Promise<readonly PgText[] | undefined>;

/** Marks `item` failed (to be dead-lettered), or rethrows `err` when it is not the record's fault. */
export type RejectItem = (item: BatchItem, err: unknown) => void;

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

export class RowMapper {
  private readonly mappings = new WeakMap<TableSchema, TableMapping>();

  constructor(
    private readonly transforms: TransformSet,
    private readonly readGreen: ReadGreenColumns,
    private readonly reject: RejectItem,
  ) {}

  /** Plans the decoded items the skip rule keeps, in order; a transform that throws rejects its item. */
  async planItems(items: BatchItem[], stored: StoredPosition): Promise<void> {
    // Last full blue image per key in this batch: completes a later update whose unchanged
    // TOAST columns it lacks, before transforms read the row. Kept only when needed.
    const partials = items.some((i) => i.event !== undefined && i.event.unchanged.length > 0);
    const images = partials ? new Map<string, Row>() : undefined;
    for (const item of items) {
      const { event, writer } = item;
      if (!event || !writer || isSkipped(stored, item.record.offset, event.position)) continue;
      try {
        // Await only when green was read: a promise per record costs a microtask.
        const planned = this.map(event, writer, images);
        item.plan = planned instanceof Promise ? await planned : planned;
      } catch (err) {
        this.reject(item, err);
      }
    }
  }

  // What the transforms decide per table version, computed once per writer schema: the green
  // table (one TableRef object, so the planner groups by identity), the green key columns.
  private mapping(writer: TableSchema): TableMapping {
    let m = this.mappings.get(writer);
    if (m) return m;
    const { transforms } = this;
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

  private map(
    event: ChangeEvent,
    writer: TableSchema,
    images: Map<string, Row> | undefined,
  ): PlanEvent | Promise<PlanEvent> {
    const { transforms } = this;
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
    const { transforms } = this;
    const { schema, table } = event;
    if (images && unchanged.length === 0) images.set(imageId, row);
    const out = transforms.applyRow(schema, table, row);
    // A row the filter rejects leaves green (it may have matched before this update).
    if (out === null) return plan('d', m, greenKey, null, false);
    const partial =
      unchanged.length > 0 && unchanged.some((c) => transforms.columnName(schema, table, c) !== null);
    return plan(event.op, m, greenKey, out, partial);
  }

  // Green holds the same text blue had for the unchanged columns: read them there, by their
  // green names, and put them back under blue's names for the transforms.
  private async completeFromGreen(
    event: ChangeEvent,
    target: TableRef,
    greenKey: Row,
    row: Row,
  ): Promise<Row> {
    const { transforms } = this;
    const wanted = event.unchanged
      .map((c) => [c, transforms.columnName(event.schema, event.table, c)] as const)
      .filter((p): p is readonly [string, string] => p[1] !== null);
    if (wanted.length === 0) return row;
    const values = await this.readGreen(
      target,
      greenKey,
      wanted.map(([, green]) => green),
    );
    if (!values) return row;
    const completed: Row = { ...row };
    wanted.forEach(([blue], i) => {
      completed[blue] = values[i] ?? null;
    });
    return completed;
  }
}
