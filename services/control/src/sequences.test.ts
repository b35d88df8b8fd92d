import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { copySequences } from './sequences.ts';

// pg_sequences shows last_value NULL for a sequence teal's role may not read, and for one
// that was never called or was setval(..., false): neither is "fine, left as it is".

function fakeClient(answer: (sql: string, params: unknown[]) => unknown[] | Error) {
  const queries: Array<{ sql: string; params: unknown[] }> = [];
  const client = {
    query: async (sql: string, params: unknown[] = []) => {
      queries.push({ sql, params });
      const rows = answer(sql, params);
      if (rows instanceof Error) throw rows;
      return { rows };
    },
  } as unknown as pg.Client;
  return { client, queries };
}

const blueRow = (name: string) => ({
  schemaname: 'public',
  sequencename: name,
  last_value: null,
  table_schema: null,
  table_name: null,
  column_name: null,
});

describe('copySequences with a NULL last_value on blue', () => {
  it('reports a sequence teal cannot read as not copied, with the reason', async () => {
    const blue = fakeClient((sql) => {
      if (sql.includes('FROM pg_sequences s')) return [blueRow('secret_seq')];
      return Object.assign(new Error('permission denied for sequence secret_seq'), { code: '42501' });
    });
    const green = fakeClient(() => [{ found: 'true' }]);
    const [copy] = await copySequences(blue.client, green.client, undefined);
    expect(copy).toMatchObject({ blue: 'public.secret_seq', green: null, ok: false });
    expect(copy.note).toMatch(
      /not copied: cannot read it on blue \(permission denied for sequence secret_seq\)/,
    );
    expect(green.queries.some((q) => q.sql.includes('setval'))).toBe(false);
  });

  it('copies a sequence set with setval(..., false) as not called, so green hands out the same next value', async () => {
    const blue = fakeClient((sql) => {
      if (sql.includes('FROM pg_sequences s')) return [blueRow('later_seq')];
      return [{ last_value: '500', is_called: 'false' }];
    });
    const green = fakeClient(() => [{ found: 'true' }]);
    const [copy] = await copySequences(blue.client, green.client, undefined);
    expect(copy).toMatchObject({
      blue: 'public.later_seq',
      green: 'public.later_seq',
      value: '500',
      ok: true,
    });
    expect(copy.note).toMatch(/next value is 500/);
    const setval = green.queries.find((q) => q.sql.includes('setval'));
    expect(setval?.params).toEqual(['public', 'later_seq', '500', false]);
  });
});

describe('copySequences that never moves a sequence backwards (rollback)', () => {
  const source = (last: string) =>
    fakeClient((sql) =>
      sql.includes('FROM pg_sequences s') ? [{ ...blueRow('ids'), last_value: last }] : [],
    );
  const target = (last: string, called: boolean, increment = '1') =>
    fakeClient((sql) => {
      if (sql.includes('AS s')) return [{ last_value: last, is_called: String(called), increment }];
      return [{ found: 'true' }];
    });

  it("leaves a target that is ahead of the source's value as it is", async () => {
    const blue = target('900', true);
    const [copy] = await copySequences(source('500').client, blue.client, undefined, {
      neverBackwards: true,
    });
    expect(copy).toMatchObject({ green: 'public.ids', value: '500', ok: true });
    expect(copy.note).toMatch(/left at 900/);
    expect(blue.queries.some((q) => q.sql.includes('setval'))).toBe(false);
  });

  it("moves a target that is behind forward to the source's value", async () => {
    const blue = target('100', true);
    const [copy] = await copySequences(source('500').client, blue.client, undefined, {
      neverBackwards: true,
    });
    expect(copy).toMatchObject({ green: 'public.ids', value: '500', ok: true, note: null });
    expect(blue.queries.find((q) => q.sql.includes('setval'))?.params).toEqual([
      'public',
      'ids',
      '500',
      true,
    ]);
  });

  it('judges a descending sequence in its own direction', async () => {
    const blue = target('-900', true, '-1');
    const [copy] = await copySequences(source('-500').client, blue.client, undefined, {
      neverBackwards: true,
    });
    expect(copy.note).toMatch(/left at -900/);
    const behind = target('-100', true, '-1');
    await copySequences(source('-500').client, behind.client, undefined, { neverBackwards: true });
    expect(behind.queries.some((q) => q.sql.includes('setval'))).toBe(true);
  });
});
