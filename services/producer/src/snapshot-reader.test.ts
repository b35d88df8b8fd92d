import type { ChangeEvent, ColumnInfo, Row, TableSchema } from '@teal/change-event';
import { describe, expect, it } from 'vitest';
import { fullXid, parseXidSnapshot, rowChange, rowsAfterChanges, visibleIn } from './snapshot-reader.ts';

const col = (name: string, isKey = false): ColumnInfo => ({
  name,
  type: { oid: 25, name: 'text', kind: 'base' },
  typmod: -1,
  isKey,
});
const table: TableSchema = {
  schema: 'public',
  table: 't',
  columns: [col('id', true), col('big'), col('v')],
  keyColumns: ['id'],
};
const row = (id: string, v: string, big = 'B'): Row => ({ id, big, v });
const change = (
  op: ChangeEvent['op'],
  xid: number,
  after: Row | null,
  unchanged: string[] = [],
): ChangeEvent => ({
  op,
  schema: 'public',
  table: 't',
  position: { lsn: 1n, seq: 1 },
  xid,
  commitTimeUs: 0n,
  key: after ? { id: after.id } : {},
  after,
  before: null,
  unchanged,
});

describe('a chunk against the changes the stream sent before its high watermark', () => {
  // xids 100..109 had committed, 103 was still committing (in progress for the snapshot), 110+ came later.
  const snapshot = parseXidSnapshot('100:110:103');
  const rows = [row('1', '0'), row('2', '0'), row('3', '0')];

  it('classes transactions as pg_visible_in_snapshot does', () => {
    expect([99, 100, 103, 109, 110, 200].map((x) => visibleIn(x, snapshot))).toEqual([
      true,
      true,
      false,
      true,
      false,
      false,
    ]);
  });

  it('maps pgoutput 32-bit xids to full ids on either side of an epoch boundary', () => {
    const s = parseXidSnapshot(`${2n ** 32n + 5n}:${2n ** 32n + 10n}:`);
    expect(fullXid(7, s)).toBe(2n ** 32n + 7n);
    expect(fullXid(2 ** 32 - 3, s)).toBe(2n ** 32n - 3n);
    expect(fullXid(20, s)).toBe(2n ** 32n + 20n);
  });

  it('keeps a row whose change the snapshot already holds, drops one a newer change replaces or deletes', () => {
    const changes = [
      rowChange(table, change('u', 101, row('1', '1'))), // visible: the chunk read has it
      rowChange(table, change('u', 103, row('2', '2'))), // committing, invisible: a commit before the low watermark
      rowChange(table, change('d', 111, { id: '3' })),
    ];
    expect(rowsAfterChanges(table, rows, snapshot, changes)).toEqual([row('1', '0')]);
  });

  it('writes a partial update (TOAST left out) into the row instead of dropping it', () => {
    const partial = rowChange(table, change('u', 112, { id: '2', big: null, v: '5' }, ['big']));
    expect(partial).toEqual({ xid: 112, kind: 'partial', key: '["2"]', columns: { id: '2', v: '5' } });
    expect(rowsAfterChanges(table, rows, snapshot, [partial])).toEqual([
      row('1', '0'),
      row('2', '5'),
      row('3', '0'),
    ]);
  });

  it('drops everything for a newer truncate and nothing for one the snapshot holds', () => {
    const truncate = (xid: number) => rowChange(table, change('t', xid, null));
    expect(rowsAfterChanges(table, rows, snapshot, [truncate(102)])).toEqual(rows);
    expect(rowsAfterChanges(table, rows, snapshot, [truncate(120)])).toEqual([]);
  });

  it('acts on every row of a key several rows share (REPLICA IDENTITY FULL), keeping their order otherwise', () => {
    const twins = [row('1', '0'), row('2', 'a'), row('2', 'a'), row('3', '0')];
    expect(
      rowsAfterChanges(table, twins, snapshot, [rowChange(table, change('d', 111, { id: '2' }))]),
    ).toEqual([row('1', '0'), row('3', '0')]);
    expect(
      rowsAfterChanges(table, twins, snapshot, [rowChange(table, change('d', 105, { id: '2' }))]),
    ).toEqual(twins);
  });
});
