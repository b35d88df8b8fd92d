import type { ApplyMode } from './apply-plan.ts';

// What green's table looks like to the statements that write it: per column its declared type
// and whether green computes it (identity, stored generated), the unique indexes, whether
// another table's foreign key points at it. Read by green-catalog.ts; pure, so apply planning
// and the SQL builder decide from values (docs/architecture.md, "Green's shapes").

export interface GreenColumn {
  /** format_type of the column: what its text is cast to. */
  readonly type: string;
  /** pg_attribute.attidentity: 'a' GENERATED ALWAYS, 'd' BY DEFAULT, '' none. */
  readonly identity: '' | 'a' | 'd';
  /** pg_attribute.attgenerated: 's' stored (or, from 18, 'v' virtual) generated, '' none. */
  readonly generated: string;
}

export interface UniqueIndex {
  readonly name: string;
  /** Column names; empty when the index has an expression. */
  readonly columns: readonly string[];
  /** A partial index (WHERE ...) or one over an expression cannot be an ON CONFLICT (columns) arbiter. */
  readonly plain: boolean;
}

export interface GreenTable {
  readonly columns: ReadonlyMap<string, GreenColumn>;
  readonly uniqueIndexes: readonly UniqueIndex[];
  /** Another table's foreign key references this one: TRUNCATE alone is refused (0A000). */
  readonly referenced: boolean;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((c) => set.has(c));
}

/** The unique indexes `ON CONFLICT (keyColumns)` infers as arbiters. */
export function arbiterIndexes(table: GreenTable, keyColumns: readonly string[]): UniqueIndex[] {
  return table.uniqueIndexes.filter((i) => i.plain && sameSet(i.columns, keyColumns));
}

/**
 * A unique index other than the key's: then the order of changes matters in green (a value
 * moving from one row to another collides if the rows are written out of commit order).
 */
export function hasSecondaryUnique(table: GreenTable, keyColumns: readonly string[]): boolean {
  return table.uniqueIndexes.some((i) => !(i.plain && sameSet(i.columns, keyColumns)));
}

/** No unique index over the key: a key may match several rows, and ON CONFLICT cannot be used. */
export function isKeyless(table: GreenTable, keyColumns: readonly string[]): boolean {
  return arbiterIndexes(table, keyColumns).length === 0;
}

/** Columns green computes itself and never takes a value for. */
export function isGenerated(table: GreenTable, column: string): boolean {
  const generated = table.columns.get(column)?.generated;
  return generated !== undefined && generated !== '';
}

/** Columns INSERT writes only with OVERRIDING SYSTEM VALUE and UPDATE never. */
export function isIdentityAlways(table: GreenTable, column: string): boolean {
  return table.columns.get(column)?.identity === 'a';
}

/**
 * Which side decides the order: green's. Collisions happen in green's unique indexes, so a
 * table green enforces one on besides the key is applied in stream order, unless the config
 * says otherwise for its blue table; a table without a unique key in green is never collapsed.
 */
export function applyMode(green: GreenTable, keyColumns: readonly string[], configured?: boolean): ApplyMode {
  if (isKeyless(green, keyColumns)) return 'keyless';
  return (configured ?? hasSecondaryUnique(green, keyColumns)) ? 'ordered' : 'collapse';
}
