import { describe, expect, it } from 'vitest';
import { keyEquals, keysetAfter, keysetOrder, nullPattern } from './keyset.ts';

const notNull = (name: string, type?: string) => ({ name, nullable: false, type });
const nullable = (name: string) => ({ name, nullable: true });

describe('keysetAfter', () => {
  it('keeps the plain row comparison for NOT NULL keys (one index range)', () => {
    expect(keysetAfter([notNull('a', 'text'), notNull('b', 'int4')], ['x', '1'], 3)).toEqual({
      sql: '("a", "b") > ($3::text, $4::int4)',
      values: ['x', '1'],
    });
  });

  it('takes the NULLs ordered last after a non-NULL value of a nullable column', () => {
    expect(keysetAfter([nullable('a')], ['x'], 1)).toEqual({
      sql: '(("a" > $1 OR "a" IS NULL))',
      values: ['x'],
    });
  });

  it('has nothing after a NULL in the last column, and matches a NULL by IS NULL in front', () => {
    expect(keysetAfter([nullable('a')], [null], 1)).toEqual({ sql: 'false', values: [] });
    expect(keysetAfter([nullable('a'), notNull('b')], [null, '2'], 1, 't')).toEqual({
      sql: '((t."a" IS NULL AND t."b" > $1))',
      values: ['2'],
    });
  });

  it('spells out each position for a composite nullable key', () => {
    expect(keysetAfter([nullable('a'), nullable('b')], ['x', 'y'], 1).sql).toBe(
      '(("a" > $1 OR "a" IS NULL) OR ("a" = $1 AND ("b" > $2 OR "b" IS NULL)))',
    );
  });
});

describe('keyEquals and friends', () => {
  it('matches NULL with IS NULL and numbers only the non-NULL values', () => {
    expect(keyEquals([nullable('a'), notNull('b', 'int8')], [null, '5'], 2, 'g')).toEqual({
      sql: 'g."a" IS NULL AND g."b" = $2::int8',
      values: ['5'],
    });
    expect(keysetOrder([nullable('a'), nullable('b')], 'g')).toBe('g."a", g."b"');
    expect(nullPattern(['1', null, ''])).toBe('vnv');
  });
});
