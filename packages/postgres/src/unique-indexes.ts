// Which of a table's unique (or exclusion) indexes let one value move between rows. One rule,
// read by the producer (ordered-tables.ts: such a table goes to partition 0 and keeps blue's
// commit order) and by `teal check` (which says so before a start). Pure.

/** A unique or exclusion index as the rule needs it. */
export interface UniqueIndexShape {
  /** Column names in index order; empty entries for expressions. */
  readonly columns: readonly string[];
  /** Neither partial nor over an expression. */
  readonly plain: boolean;
  /** An exclusion constraint: rows collide by overlap, the same hazard as a unique value. */
  readonly exclusion: boolean;
}

/** The index over exactly the key columns (any order): the primary key or replica identity index. */
export function isKeyIndex(index: UniqueIndexShape, keyColumns: readonly string[]): boolean {
  const key = new Set(keyColumns);
  return (
    index.plain &&
    !index.exclusion &&
    index.columns.length === key.size &&
    index.columns.every((c) => key.has(c))
  );
}

/** Every unique or exclusion index but the key's: each one makes the table ordered. */
export function orderingIndexes<T extends UniqueIndexShape>(
  indexes: readonly T[],
  keyColumns: readonly string[],
): T[] {
  return indexes.filter((i) => !isKeyIndex(i, keyColumns));
}
