import { keysetAfter } from '@teal/postgres/keyset';
import { describe, expect, it } from 'vitest';
import { inline } from './direct-copy.ts';

describe('inline', () => {
  it("puts keyset's parameters in as literals, leaving quoted identifiers alone", () => {
    const cols = [
      { name: 'a$1', nullable: false },
      { name: 'b', nullable: false },
    ];
    const sql = inline(keysetAfter(cols, ["it's", 'back\\slash'], 1));
    expect(sql).toBe(`("a$1", "b") > ('it''s',  E'back\\\\slash')`);
  });

  it('numbers past 9 and NULL-aware forms', () => {
    const part = { sql: '"k" > $10 AND "j" = $2', values: ['x', 'two', '', '', '', '', '', '', '', 'ten'] };
    expect(inline(part)).toBe(`"k" > 'ten' AND "j" = 'two'`);
    const nullable = inline(keysetAfter([{ name: 'k', nullable: true }], [null], 1));
    expect(nullable).not.toContain('$');
  });
});
