import { orderingIndexes } from '@teal/postgres/unique-indexes';
import { describe, expect, it } from 'vitest';
import { type BlueUniqueIndex, decideOrdered } from './ordered-tables.ts';

const index = (name: string, columns: string[], extra: Partial<BlueUniqueIndex> = {}): BlueUniqueIndex => ({
  name,
  columns,
  plain: true,
  exclusion: false,
  ...extra,
});

describe('ordered tables', () => {
  it('the index over exactly the key columns is the key; every other unique or exclusion index orders', () => {
    const pk = index('t_pkey', ['id']);
    const email = index('t_email_key', ['email']);
    const partial = index('t_id_live', ['id'], { plain: false });
    const excl = index('t_no_overlap', ['room', 'during'], { exclusion: true });
    expect(orderingIndexes([pk], ['id'])).toEqual([]);
    expect(orderingIndexes([pk, email], ['id'])).toEqual([email]);
    expect(orderingIndexes([pk, partial, excl], ['id'])).toEqual([partial, excl]);
    // Keyed by other columns than the primary key: the primary key itself can collide.
    expect(orderingIndexes([pk, index('t_a_b', ['b', 'a'])], ['a', 'b'])).toEqual([pk]);
  });

  it('the config decides when it names the table, either way', () => {
    const email = [index('t_pkey', ['id']), index('t_email_key', ['email'])];
    expect(decideOrdered('public.t', email, ['id'], {})).toEqual({
      ordered: true,
      reason: 'unique index besides the key on blue: t_email_key',
    });
    expect(decideOrdered('public.t', email, ['id'], { 'public.t': false }).ordered).toBe(false);
    expect(decideOrdered('public.t', [], ['id'], { 'public.t': true }).ordered).toBe(true);
    expect(decideOrdered('public.t', [index('t_pkey', ['id'])], ['id'], {}).ordered).toBe(false);
  });
});
