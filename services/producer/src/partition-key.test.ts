import { TableCodec, type TableSchema } from '@teal/change-event';
import { describe, expect, it } from 'vitest';
import { keyShape, partitionKey } from './partition-key.ts';

const table = (columns: Array<[string, string, number]>): TableSchema => ({
  schema: 'public',
  table: 'items',
  keyColumns: ['id'],
  columns: columns.map(([name, type, oid]) => ({
    name,
    type: { oid, name: type, kind: 'base' },
    typmod: -1,
    isKey: name === 'id',
  })),
});

describe('partitionKey', () => {
  it('is the same for a key across table versions (a column added, a column retyped, the key widened)', () => {
    const v1 = new TableCodec(
      table([
        ['id', 'int4', 23],
        ['n', 'int4', 23],
      ]),
    );
    const v2 = new TableCodec(
      table([
        ['id', 'int4', 23],
        ['n', 'int8', 20],
        ['c', 'text', 25],
      ]),
    );
    const v3 = new TableCodec(
      table([
        ['id', 'int8', 20],
        ['n', 'int8', 20],
      ]),
    );
    const keys = [v1, v2, v3].map((codec) => codec.encodeKey({ id: '123456' }));
    // The whole single-object encodings differ (their fingerprints name the versions) ...
    expect(new Set(keys.map((k) => k.toString('hex'))).size).toBe(3);
    // ... the bytes the partition is hashed from do not.
    expect(new Set(keys.map((k) => partitionKey(k).toString('hex'))).size).toBe(1);
  });

  it('differs between keys', () => {
    const codec = new TableCodec(table([['id', 'int4', 23]]));
    expect(partitionKey(codec.encodeKey({ id: '1' }))).not.toEqual(
      partitionKey(codec.encodeKey({ id: '2' })),
    );
  });

  it('keyShape: a key widened to bigint or a new non-key column keeps it; a key retyped to text or other key columns do not', () => {
    const base = keyShape(
      table([
        ['id', 'int4', 23],
        ['n', 'int4', 23],
      ]),
    );
    expect(
      keyShape(
        table([
          ['id', 'int8', 20],
          ['n', 'int4', 23],
          ['c', 'text', 25],
        ]),
      ),
    ).toBe(base);
    expect(
      keyShape(
        table([
          ['id', 'text', 25],
          ['n', 'int4', 23],
        ]),
      ),
    ).not.toBe(base);
    expect(
      keyShape({
        ...table([
          ['id', 'int4', 23],
          ['n', 'int4', 23],
        ]),
        keyColumns: ['id', 'n'],
      }),
    ).not.toBe(base);
  });
});
