import { describe, expect, it } from 'vitest';
import { type CompareRow, DiffCollector, diffChunk, summarizeChunk } from './verify-diff.ts';

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
