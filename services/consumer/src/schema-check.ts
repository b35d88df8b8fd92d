import type { Row, TableSchema } from '@teal/change-event';
import type { ResolvedConfig, TransformSet } from '@teal/config';
import { TealError } from '@teal/errors';
import type { Logger } from '@teal/runtime';
import type { TableRef } from './apply-plan.ts';
import type { BatchItem } from './batch-item.ts';
import type { GreenCatalog } from './green-catalog.ts';
import { ddlType, decideColumns, missingTableReason } from './schema-policy.ts';

// Before a batch is written: every green table and column it writes exists, or is made to by
// the policy (schema-policy.ts, brief item 8). A block is a retriable TEAL_SCHEMA_BLOCKED: the
// partition waits for the operator rather than dead-letter a stream green cannot take.

export interface SchemaCheckDeps {
  readonly catalog: GreenCatalog;
  readonly apply: ResolvedConfig['apply'];
  readonly transforms: TransformSet;
  readonly log: Logger;
}

export async function checkSchemas(deps: SchemaCheckDeps, items: BatchItem[]): Promise<void> {
  const { catalog, apply, transforms } = deps;
  const byTable = new Map<string, BatchItem[]>();
  let lastTable: TableRef | undefined;
  let lastList: BatchItem[] = [];
  for (const item of items) {
    if (!item.plan) continue;
    // Events of one table share one TableRef (row-mapping.ts): no id string per record.
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
      await catalog.createTable(target, greenColumns(transforms, source, writer), list[0].plan!.keyColumns);
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
        for (const [c, t] of greenColumns(transforms, source, item.writer!)) types.set(c, t);
      const adds = decision.add.map(
        (c) => [c, types.get(c) ?? transforms.castType(source.schema, source.table, c) ?? 'text'] as const,
      );
      deps.log.info(
        { table: `${target.schema}.${target.table}`, columns: decision.add },
        'adding columns to green',
      );
      await catalog.addColumns(target, adds);
    }
  }
}

/** Green column -> DDL type, from the writer schema and the transforms. */
function greenColumns(
  transforms: TransformSet,
  source: TableRef,
  writer: TableSchema,
): Array<readonly [string, string]> {
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

/** True when `row`'s own keys are exactly `columns`, in that order. */
function sameColumns(row: Row, columns: readonly string[]): boolean {
  let i = 0;
  for (const c in row) if (columns[i++] !== c) return false;
  return i === columns.length && i > 0;
}

function blocked(reason: string): TealError {
  return new TealError('TEAL_SCHEMA_BLOCKED', reason, { retriable: true });
}
