import type { Op, Row } from '@teal/change-event';
import { describe, expect, it } from 'vitest';
import { type ApplyStep, type PlanEvent, planBatch } from './apply-plan.ts';
import { type ColumnTypes, stepStatements, textArrayLiteral } from './apply-sql.ts';

const stepStatement = (step: ApplyStep, types: ColumnTypes) => stepStatements(step, { types })[0];

const users = { schema: 'public', table: 'users' };

function ev(op: Op, key: string, row: Row | null = null, partial = false): PlanEvent {
  return {
    op,
    table: users,
    keyColumns: ['id'],
    key: op === 't' ? {} : { id: key },
    row: row === null ? null : { id: key, ...row },
    partial,
  };
}

function kinds(steps: ApplyStep[]): string[] {
  return steps.map((s) => s.kind);
}

describe('planBatch', () => {
  it('collapses several events of one key into the last image', () => {
    const steps = planBatch([
      ev('c', '1', { name: 'a' }),
      ev('u', '1', { name: 'b' }),
      ev('u', '1', { name: 'c' }),
    ]);
    expect(steps).toEqual([
      { kind: 'upsert', table: users, keyColumns: ['id'], columns: ['id', 'name'], rows: [['1', 'c']] },
    ]);
  });

  it('merges an update with unchanged TOAST columns into the insert of the same batch (one full upsert)', () => {
    const steps = planBatch([ev('c', '1', { name: 'a', doc: 'big' }), ev('u', '1', { name: 'b' }, true)]);
    expect(steps).toEqual([
      {
        kind: 'upsert',
        table: users,
        keyColumns: ['id'],
        columns: ['id', 'doc', 'name'],
        rows: [['1', 'big', 'b']],
      },
    ]);
  });

  it('keeps a partial update with no earlier image as an UPDATE of the carried columns only', () => {
    const steps = planBatch([ev('u', '1', { name: 'b' }, true)]);
    expect(steps).toEqual([
      { kind: 'update', table: users, keyColumns: ['id'], columns: ['id', 'name'], rows: [['1', 'b']] },
    ]);
  });

  it('merges two partial updates into one partial update, newest value winning', () => {
    const steps = planBatch([ev('u', '1', { a: '1', b: '1' }, true), ev('u', '1', { b: '2', c: '2' }, true)]);
    expect(steps).toEqual([
      {
        kind: 'update',
        table: users,
        keyColumns: ['id'],
        columns: ['id', 'a', 'b', 'c'],
        rows: [['1', '1', '2', '2']],
      },
    ]);
  });

  it('a full update after a partial one is a full upsert', () => {
    const steps = planBatch([ev('u', '1', { a: 'x' }, true), ev('u', '1', { a: 'y', doc: 'd' })]);
    expect(kinds(steps)).toEqual(['upsert']);
  });

  it('insert then delete of one key is a delete', () => {
    const steps = planBatch([ev('c', '1', { name: 'a' }), ev('d', '1')]);
    expect(steps).toEqual([{ kind: 'delete', table: users, keyColumns: ['id'], keys: [['1']] }]);
  });

  it('delete then insert of one key is the final insert as an upsert', () => {
    const steps = planBatch([ev('d', '1'), ev('c', '1', { name: 'new' })]);
    expect(steps).toEqual([
      { kind: 'upsert', table: users, keyColumns: ['id'], columns: ['id', 'name'], rows: [['1', 'new']] },
    ]);
  });

  it('a partial update after a delete of its key does nothing more than the delete', () => {
    const steps = planBatch([ev('d', '1'), ev('u', '1', { name: 'x' }, true)]);
    expect(kinds(steps)).toEqual(['delete']);
  });

  it('a primary-key change (delete old key, insert new key) gives a delete and an upsert', () => {
    const steps = planBatch([ev('c', '1', { name: 'a' }), ev('d', '1'), ev('c', '2', { name: 'a' })]);
    expect(steps).toEqual([
      { kind: 'delete', table: users, keyColumns: ['id'], keys: [['1']] },
      { kind: 'upsert', table: users, keyColumns: ['id'], columns: ['id', 'name'], rows: [['2', 'a']] },
    ]);
  });

  it('a truncate is a barrier: what came before is flushed before it, what came after after it', () => {
    const steps = planBatch([
      ev('c', '1', { name: 'a' }),
      ev('t', ''),
      ev('c', '1', { name: 'b' }),
      ev('d', '2'),
    ]);
    expect(kinds(steps)).toEqual(['upsert', 'truncate', 'delete', 'upsert']);
    expect((steps[3] as { rows: unknown }).rows).toEqual([['1', 'b']]);
    expect((steps[0] as { rows: unknown }).rows).toEqual([['1', 'a']]);
  });

  it('groups upserts per column set and keeps rows in the order of their last change', () => {
    const steps = planBatch([
      ev('c', '1', { name: 'a' }),
      ev('c', '2', { name: 'b', extra: 'e' }),
      ev('c', '3', { name: 'c' }),
      ev('u', '1', { name: 'a2' }),
    ]);
    expect(steps).toEqual([
      {
        kind: 'upsert',
        table: users,
        keyColumns: ['id'],
        columns: ['id', 'extra', 'name'],
        rows: [['2', 'e', 'b']],
      },
      {
        kind: 'upsert',
        table: users,
        keyColumns: ['id'],
        columns: ['id', 'name'],
        rows: [
          ['3', 'c'],
          ['1', 'a2'],
        ],
      },
    ]);
  });

  it('keeps composite keys apart and carries NULL values', () => {
    const orders = { schema: 's', table: 'orders' };
    const e = (a: string, b: string, v: string | null): PlanEvent => ({
      op: 'c',
      table: orders,
      keyColumns: ['a', 'b'],
      key: { a, b },
      row: { a, b, v },
      partial: false,
    });
    const steps = planBatch([e('1', '2', 'x'), e('12', '', null), e('1', '2', 'y')]);
    expect(steps).toEqual([
      {
        kind: 'upsert',
        table: orders,
        keyColumns: ['a', 'b'],
        columns: ['a', 'b', 'v'],
        rows: [
          ['12', '', null],
          ['1', '2', 'y'],
        ],
      },
    ]);
  });

  it('snapshot reads are full images like inserts', () => {
    const steps = planBatch([ev('r', '1', { name: 'a' }), ev('u', '1', { name: 'b' }, true)]);
    expect(kinds(steps)).toEqual(['upsert']);
  });

  it('returns nothing for an empty batch', () => {
    expect(planBatch([])).toEqual([]);
  });
});

describe('stepStatement', () => {
  const types = (c: string) =>
    ({ id: 'integer', name: 'text', tags: 'integer[]', 'we"ird': 'public.mood' })[c];

  it('upserts with unnest of text arrays, casting each element, updating only carried columns', () => {
    const s = stepStatement(
      {
        kind: 'upsert',
        table: users,
        keyColumns: ['id'],
        columns: ['id', 'name', 'tags'],
        rows: [['1', 'a', '{{1,2},{3,4}}']],
      },
      types,
    );
    expect(s.text).toBe(
      'INSERT INTO "public"."users" ("id", "name", "tags") SELECT v.c1::integer, v.c2::text, v.c3::integer[] ' +
        'FROM unnest($1::text[], $2::text[], $3::text[]) AS v(c1, c2, c3) ' +
        'ON CONFLICT ("id") DO UPDATE SET "name" = EXCLUDED."name", "tags" = EXCLUDED."tags"',
    );
    expect(s.values).toEqual(['{"1"}', '{"a"}', '{"{{1,2},{3,4}}"}']);
  });

  it('does nothing on conflict when only key columns are carried', () => {
    const s = stepStatement(
      { kind: 'upsert', table: users, keyColumns: ['id'], columns: ['id'], rows: [['1']] },
      types,
    );
    expect(s.text).toMatch(/ON CONFLICT \("id"\) DO NOTHING$/);
  });

  it('deletes by key tuple', () => {
    const s = stepStatement(
      { kind: 'delete', table: users, keyColumns: ['id'], keys: [['1'], ['2']] },
      types,
    );
    expect(s.text).toBe(
      'DELETE FROM "public"."users" WHERE ("id") IN (SELECT v.c1::integer FROM unnest($1::text[]) AS v(c1))',
    );
    expect(s.values).toEqual(['{"1","2"}']);
  });

  it('updates carried columns only, joined on the key, quoting identifiers', () => {
    const s = stepStatement(
      { kind: 'update', table: users, keyColumns: ['id'], columns: ['id', 'we"ird'], rows: [['1', 'happy']] },
      types,
    );
    expect(s.text).toBe(
      'UPDATE "public"."users" AS t SET "we""ird" = v.c2::public.mood ' +
        'FROM unnest($1::text[], $2::text[]) AS v(c1, c2) WHERE t."id" = v.c1::integer',
    );
  });

  it('writes text[] literals as pg would: NULL bare, quotes and backslashes escaped, the text NULL quoted', () => {
    const rows = [['a'], [null], ['NULL'], [''], ['say "hi"'], ['C:\\dir\\'], [' {x, y} ']];
    expect(textArrayLiteral(rows, 0)).toBe('{"a",NULL,"NULL","","say \\"hi\\"","C:\\\\dir\\\\"," {x, y} "}');
  });

  it('refuses a column without a known type', () => {
    expect(() =>
      stepStatement(
        { kind: 'upsert', table: users, keyColumns: ['id'], columns: ['id', 'nope'], rows: [['1', 'x']] },
        types,
      ),
    ).toThrow(/public\.users\.nope/);
  });
});
