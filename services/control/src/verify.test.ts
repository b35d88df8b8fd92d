import { compileTransforms, resolveConfig } from '@teal/config';
import { describe, expect, it } from 'vitest';
import { type CompareRow, DiffCollector, diffChunk, summarizeChunk } from './verify-diff.ts';
import {
  blueChunkQuery,
  type ColumnMeta,
  greenKeyPageQuery,
  greenLookupQueries,
  type PlanInput,
  planTable,
} from './verify-plan.ts';

const row = (id: string, ...values: (string | null)[]): CompareRow => ({ key: [id], values });

describe('summarizeChunk', () => {
  it('does not depend on row order', () => {
    const a = [row('1', 'x'), row('2', 'y'), row('3', null)];
    expect(summarizeChunk(a)).toEqual(summarizeChunk([...a].reverse()));
    expect(summarizeChunk(a).count).toBe(3);
    expect(summarizeChunk([])).toEqual({ count: 0, checksum: '0'.repeat(32) });
  });

  it('tells NULL from empty text and keeps value boundaries', () => {
    expect(summarizeChunk([row('1', null)]).checksum).not.toBe(summarizeChunk([row('1', '')]).checksum);
    expect(summarizeChunk([row('1', 'a\tb', 'c')]).checksum).not.toBe(
      summarizeChunk([row('1', 'a', 'b\tc')]).checksum,
    );
    expect(summarizeChunk([row('1', 'ab', '')]).checksum).not.toBe(
      summarizeChunk([row('1', 'a', 'b')]).checksum,
    );
    expect(summarizeChunk([{ key: ['1', '2'], values: [] }]).checksum).not.toBe(
      summarizeChunk([{ key: ['1'], values: ['2'] }]).checksum,
    );
  });

  it('changes when a single value changes', () => {
    expect(summarizeChunk([row('1', 'x'), row('2', 'y')]).checksum).not.toBe(
      summarizeChunk([row('1', 'x'), row('2', 'z')]).checksum,
    );
  });
});

describe('diffChunk', () => {
  it('names missing, extra and different keys with the differing columns', () => {
    const blue = [row('1', 'a', 'b'), row('2', 'a', null), row('3', 'c', 'd'), row('5', 'e', 'f')];
    const green = [row('1', 'a', 'b'), row('2', 'a', ''), row('4', 'x', 'y'), row('5', 'E', 'F')];
    expect(diffChunk(blue, green)).toEqual({
      missingInGreen: [['3']],
      extraInGreen: [['4']],
      different: [
        { key: ['2'], columns: [1] },
        { key: ['5'], columns: [0, 1] },
      ],
    });
  });

  it('finds nothing in equal chunks, whatever their order', () => {
    const blue = [row('1', 'a'), row('2', 'b')];
    expect(diffChunk(blue, [...blue].reverse())).toEqual({
      missingInGreen: [],
      extraInGreen: [],
      different: [],
    });
  });

  it('matches composite keys as a whole, NULL apart from empty', () => {
    const blue = [{ key: ['a', 'b'], values: ['1'] }];
    const green = [
      { key: ['a', 'b'], values: ['1'] },
      { key: ['ab', ''], values: ['1'] },
    ];
    expect(diffChunk(blue, green).extraInGreen).toEqual([['ab', '']]);
  });
});

describe('DiffCollector', () => {
  it('turns keys into records of green key columns and stops listing at the limit', () => {
    const collector = new DiffCollector(['tenant', 'id'], ['name', 'email'], 3);
    collector.add({
      missingInGreen: [['t', '1']],
      extraInGreen: [['t', '2']],
      different: [{ key: ['t', '3'], columns: [1] }],
    });
    expect(collector.truncated).toBe(false);
    collector.add({ missingInGreen: [['t', '4']], extraInGreen: [], different: [] });
    expect(collector.missingInGreen).toEqual([{ tenant: 't', id: '1' }]);
    expect(collector.extraInGreen).toEqual([{ tenant: 't', id: '2' }]);
    expect(collector.different).toEqual([{ key: { tenant: 't', id: '3' }, columns: ['email'] }]);
    expect(collector.truncated).toBe(true);
  });
});

describe('diffChunk with repeated keys (REPLICA IDENTITY FULL without a primary key)', () => {
  it('compares the rows of a key as a multiset', () => {
    const blue = [row('1', 'a'), row('1', 'a'), row('2', 'b'), row('3', 'c')];
    const green = [row('1', 'a'), row('2', 'b'), row('2', 'b'), row('3', 'x'), row('3', 'c')];
    expect(diffChunk(blue, green)).toEqual({
      missingInGreen: [['1']],
      extraInGreen: [['2'], ['3']],
      different: [],
    });
  });
});

describe('planTable and its queries', () => {
  const meta = (
    name: string,
    type: string,
    keyPosition: number | null = null,
    nullable = true,
  ): ColumnMeta => ({
    name,
    type,
    category: type === 'text' ? 'S' : 'N',
    nullable,
    keyPosition,
  });
  const config = resolveConfig(undefined);
  const transforms = compileTransforms(config);
  const input = (blueColumns: ColumnMeta[], extra: Partial<PlanInput> = {}): PlanInput => ({
    blueName: 'public.t',
    blue: { schema: 'public', table: 't' },
    green: { schema: 'public', table: 't' },
    blueColumns,
    greenColumns: blueColumns,
    ...extra,
  });
  const plan = (i: PlanInput, keyColumns: Record<string, string[]> = {}) => {
    const p = planTable(i, { keyColumns }, transforms);
    if ('error' in p) throw new Error(p.error);
    return p;
  };

  it('pages blue in its own collation by its key index, with no COLLATE "C"', () => {
    const p = plan(
      input([meta('code', 'text', 0, false), meta('v', 'integer')], { blueUniqueIndexes: [['code']] }),
    );
    expect(p.blueKeyUnique).toBe(true);
    const q = blueChunkQuery(p, ['k1'], 100);
    expect(q.text).toBe(
      'SELECT "code", "v" FROM "public"."t" WHERE ("code") > ($1::text) ORDER BY "code" LIMIT 100',
    );
    expect(q.text).not.toContain('COLLATE');
  });

  it('looks green rows up by key, one statement per pattern of NULLs', () => {
    const p = plan(input([meta('a', 'integer'), meta('b', 'text')], { blueReplicaIdentityFull: true }));
    expect(p.blueKeys.map((k) => k.name)).toEqual(['a', 'b']);
    expect(p.blueKeyUnique).toBe(false);
    const queries = greenLookupQueries(p, [
      ['1', 'x'],
      ['1', 'x'],
      ['2', null],
      [null, null],
    ]);
    expect(queries).toEqual([
      {
        text: 'SELECT l.* FROM unnest($1::text[], $2::text[]) AS k(v0, v1) CROSS JOIN LATERAL (SELECT t."a", t."b" FROM "public"."t" t WHERE t."a" = k.v0::integer AND t."b" = k.v1::text OFFSET 0) l',
        values: [['1'], ['x']],
      },
      {
        text: 'SELECT l.* FROM unnest($1::text[]) AS k(v0) CROSS JOIN LATERAL (SELECT t."a", t."b" FROM "public"."t" t WHERE t."a" = k.v0::integer AND t."b" IS NULL OFFSET 0) l',
        values: [['2']],
      },
      { text: 'SELECT t."a", t."b" FROM "public"."t" t WHERE t."a" IS NULL AND t."b" IS NULL', values: [] },
    ]);
  });

  it('keys by configured keyColumns first, as the producer does', () => {
    const p = plan(input([meta('id', 'integer', 0, false), meta('x', 'text'), meta('y', 'integer')]), {
      'public.t': ['x', 'y'],
    });
    expect(p.blueKeys.map((k) => k.name)).toEqual(['x', 'y']);
    expect(greenKeyPageQuery(p, ['a', null], 10).text).toBe(
      'SELECT "x", "y", count(*)::text FROM "public"."t" WHERE (("x" > $1::text OR "x" IS NULL)) GROUP BY "x", "y" ORDER BY "x", "y" LIMIT 10',
    );
  });
});
