import type { Op, Row } from '@teal/change-event';
import { describe, expect, it } from 'vitest';
import { type ApplyMode, type PlanEvent, planBatch } from './apply-plan.ts';
import { shapeOf, stepStatements } from './apply-sql.ts';
import { applyMode, type GreenColumn, type GreenTable } from './green-shape.ts';

// Planning and SQL for the shapes green has: ordered tables, keyless ones, NULL in keys,
// identity and generated columns, a truncate of a table another one references.

const t = { schema: 'public', table: 't' };

function ev(op: Op, key: Row, row: Row | null = null, keyColumns = ['id']): PlanEvent {
  return {
    op,
    table: t,
    keyColumns,
    key: op === 't' ? {} : key,
    row: row === null ? null : { ...key, ...row },
    partial: false,
  };
}

function green(columns: Record<string, Partial<GreenColumn>>, extra: Partial<GreenTable> = {}): GreenTable {
  return {
    columns: new Map(
      Object.entries(columns).map(([n, c]) => [n, { type: 'integer', identity: '', generated: '', ...c }]),
    ),
    uniqueIndexes: [{ name: 't_pkey', columns: ['id'], plain: true }],
    referenced: false,
    ...extra,
  };
}

const mode = (m: ApplyMode) => (): ApplyMode => m;

describe('ordered planning', () => {
  it('a swap through a temporary value keeps every change, in stream order', () => {
    const steps = planBatch(
      [
        ev('u', { id: '1' }, { email: 'tmp' }),
        ev('u', { id: '2' }, { email: 'a' }),
        ev('u', { id: '1' }, { email: 'b' }),
        ev('d', { id: '3' }),
        ev('c', { id: '4' }, { email: 'c' }),
      ],
      { mode: mode('ordered') },
    );
    expect(
      steps.map((s) =>
        s.kind === 'delete' ? ['delete', s.keys] : s.kind === 'truncate' ? [s.kind] : [s.kind, s.rows],
      ),
    ).toEqual([
      [
        'upsert',
        [
          ['1', 'tmp'],
          ['2', 'a'],
        ],
      ],
      ['upsert', [['1', 'b']]],
      ['delete', [['3']]],
      ['upsert', [['4', 'c']]],
    ]);
  });

  it('collapse mode still keeps only the last image per key', () => {
    const steps = planBatch([ev('u', { id: '1' }, { email: 'tmp' }), ev('u', { id: '1' }, { email: 'b' })]);
    expect(steps).toHaveLength(1);
  });

  it('keyless tables insert plainly and never collapse equal rows', () => {
    const cols = ['a', 'b'];
    const steps = planBatch(
      [
        ev('c', { a: '1', b: 'x' }, {}, cols),
        ev('c', { a: '1', b: 'x' }, {}, cols),
        ev('d', { a: '1', b: 'x' }, null, cols),
      ],
      { mode: mode('keyless') },
    );
    expect(steps.map((s) => s.kind)).toEqual(['insert', 'insert', 'delete']);
  });

  it('keyless snapshot rows fill: equal rows stay in one statement, each counted', () => {
    const cols = ['a', 'b'];
    const steps = planBatch(
      [
        ev('r', { a: '1', b: 'x' }, {}, cols),
        ev('r', { a: '1', b: 'x' }, {}, cols),
        ev('r', { a: '2', b: 'y' }, {}, cols),
      ],
      { mode: mode('keyless') },
    );
    expect(steps.map((s) => [s.kind, s.kind === 'fill' ? s.rows.length : 0])).toEqual([['fill', 3]]);
    const g = green({ a: {}, b: {} }, { uniqueIndexes: [] });
    const [statement] = stepStatements(steps[0], shapeOf(g, cols, 'replica'));
    expect(statement.text).toMatch(/row_number\(\) OVER \(PARTITION BY c1, c2 ORDER BY src\.o\) AS n/);
    expect(statement.text).toMatch(
      /WHERE r\.n > \(SELECT count\(\*\) FROM "public"\."t" AS t WHERE t\."a" = r\.c1 AND t\."b" = r\.c2\)$/,
    );
  });

  it('a change of NULL pattern in the key starts a new statement', () => {
    const cols = ['a', 'b'];
    const steps = planBatch(
      [ev('u', { a: '1', b: null }, { v: '1' }, cols), ev('u', { a: '2', b: 'y' }, { v: '2' }, cols)],
      { mode: mode('ordered') },
    );
    expect(steps).toHaveLength(2);
  });
});

describe('applyMode: green decides', () => {
  it('secondary unique index -> ordered, unless the config says false; no key index -> keyless', () => {
    const withEmail = green(
      { id: {}, email: {} },
      {
        uniqueIndexes: [
          { name: 't_pkey', columns: ['id'], plain: true },
          { name: 't_email_key', columns: ['email'], plain: true },
        ],
      },
    );
    expect(applyMode(withEmail, ['id'])).toBe('ordered');
    expect(applyMode(withEmail, ['id'], false)).toBe('collapse');
    expect(applyMode(green({ id: {} }), ['id'])).toBe('collapse');
    expect(applyMode(green({ id: {} }), ['id'], true)).toBe('ordered');
    expect(applyMode(green({ a: {} }, { uniqueIndexes: [] }), ['a'])).toBe('keyless');
  });
});

describe('statements for green shapes', () => {
  it('identity GENERATED ALWAYS: OVERRIDING SYSTEM VALUE, never in SET, checked first; generated columns never written', () => {
    const g = green({ id: { identity: 'a' }, n: { identity: 'a' }, a: {}, b: { generated: 's' } });
    const s = stepStatements(
      {
        kind: 'upsert',
        table: t,
        keyColumns: ['id'],
        columns: ['id', 'a', 'b', 'n'],
        rows: [['1', '2', '4', '7']],
      },
      shapeOf(g, ['id'], 'replica'),
    );
    expect(s).toHaveLength(2);
    expect(s[0].identityCheck).toBe('n');
    expect(s[0].text).toMatch(/t\."n" IS DISTINCT FROM v\.c3::integer/);
    expect(s[1].text).toBe(
      'INSERT INTO "public"."t" ("id", "a", "n") OVERRIDING SYSTEM VALUE SELECT v.c1::integer, v.c2::integer, v.c3::integer ' +
        'FROM unnest($1::text[], $2::text[], $3::text[]) AS v(c1, c2, c3) ON CONFLICT ("id") DO UPDATE SET "a" = EXCLUDED."a"',
    );
    expect(s[1].values).toEqual(['{"1"}', '{"2"}', '{"7"}']);
  });

  it('NULL in a key: matched with IS NULL, upserted as UPDATE + INSERT of the rest', () => {
    const g = green(
      { a: {}, b: {}, v: {} },
      { uniqueIndexes: [{ name: 'ab', columns: ['a', 'b'], plain: true }] },
    );
    const shape = shapeOf(g, ['a', 'b'], 'replica');
    const up = stepStatements(
      {
        kind: 'upsert',
        table: t,
        keyColumns: ['a', 'b'],
        columns: ['a', 'b', 'v'],
        rows: [
          ['1', 'x', '1'],
          ['2', null, '2'],
        ],
      },
      shape,
    );
    expect(up).toHaveLength(2);
    expect(up[0].text).toMatch(/ON CONFLICT/);
    expect(up[1].text).toMatch(
      /^WITH src AS .* upd AS \(UPDATE "public"\."t" AS t SET "v" = src\.c3 FROM src WHERE t\."a" = src\.c1 AND t\."b" IS NULL RETURNING src\.o\) INSERT/,
    );
    const del = stepStatements(
      { kind: 'delete', table: t, keyColumns: ['a', 'b'], keys: [['2', null]] },
      shape,
    );
    expect(del[0].text).toBe(
      'DELETE FROM "public"."t" AS t USING unnest($1::text[], $2::text[]) AS v(c1, c2) WHERE t."a" = v.c1::integer AND t."b" IS NULL',
    );
  });

  it('keyless: a delete removes one matching row per key', () => {
    const g = green({ a: {} }, { uniqueIndexes: [] });
    const del = stepStatements(
      { kind: 'delete', table: t, keyColumns: ['a'], keys: [['1']] },
      shapeOf(g, ['a'], 'replica'),
    );
    expect(del[0].text).toMatch(/LIMIT 1\) AS f\) DELETE FROM "public"\."t" AS t WHERE t\.ctid = ANY/);
  });

  it('a truncate of a table another references is a DELETE under replica, after an EXCLUSIVE lock', () => {
    const g = green({ id: {} }, { referenced: true });
    expect(stepStatements({ kind: 'truncate', table: t }, shapeOf(g, [], 'origin'))[0].text).toBe(
      'LOCK TABLE "public"."t" IN EXCLUSIVE MODE;\nSET LOCAL session_replication_role = replica;\nDELETE FROM "public"."t";\nSET LOCAL session_replication_role = origin',
    );
    expect(
      stepStatements({ kind: 'truncate', table: t }, shapeOf(green({ id: {} }), [], 'replica'))[0].text,
    ).toBe('TRUNCATE "public"."t"');
  });
});
