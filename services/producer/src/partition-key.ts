import { avroTypeForColumn, SINGLE_OBJECT_HEADER_LENGTH, type TableSchema } from '@teal/change-event';

// The bytes a change record's partition is hashed from: the key's Avro body, without its
// single-object header. The header's fingerprint names the table version (every column and
// its type), so hashing the whole key moved a row's changes to another partition at every
// ALTER TABLE on blue, and two partitions apply in parallel: an older image could win over a
// newer one. The body depends on the key's values and Avro types only (int4 and int8 write the
// same zig-zag varint, so even a key widened to bigint keeps its partition).

export function partitionKey(key: Buffer): Buffer {
  return key.subarray(SINGLE_OBJECT_HEADER_LENGTH);
}

/**
 * What decides the bytes partitionKey() returns for a table's keys: the key columns, in order,
 * with the Avro type each is written as (int and long write the same bytes). Two versions of a
 * table with different key shapes put the same row in different partitions.
 */
export function keyShape(table: TableSchema): string {
  const byName = new Map(table.columns.map((c) => [c.name, c] as const));
  return JSON.stringify(
    table.keyColumns.map((k) => {
      const column = byName.get(k);
      return [k, column ? JSON.stringify(avroTypeForColumn(column)).replaceAll('"int"', '"long"') : null];
    }),
  );
}
