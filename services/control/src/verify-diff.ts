import { createHash } from 'node:crypto';
import type { PgText } from '@teal/change-event';
import type { Key } from './verify-report.ts';

// Canonical rows, chunk checksums, and narrowing a mismatched chunk to keys. Pure: the run
// (verify-table-run.ts) hands in rows it read, these functions never touch a server.

/** One row reduced to what is compared: key texts and the compared columns' texts, in order. */
export interface CompareRow {
  readonly key: readonly PgText[];
  readonly values: readonly PgText[];
}

export interface ChunkSummary {
  count: number;
  /** Hex; the sum modulo 2^128 of each row's truncated sha256, so row order does not matter. */
  checksum: string;
}

const MOD_128 = (1n << 128n) - 1n;

/** JSON keeps NULL apart from '' and cannot be confused by tabs or quotes inside values. */
export function canonicalKey(key: readonly PgText[]): string {
  return JSON.stringify(key);
}

export function rowHash(row: CompareRow): bigint {
  const digest = createHash('sha256')
    .update(JSON.stringify([row.key, row.values]))
    .digest();
  return digest.readBigUInt64BE(0) * (1n << 64n) + digest.readBigUInt64BE(8);
}

export function summarizeChunk(rows: readonly CompareRow[]): ChunkSummary {
  let sum = 0n;
  for (const row of rows) sum = (sum + rowHash(row)) & MOD_128;
  return { count: rows.length, checksum: sum.toString(16).padStart(32, '0') };
}

export interface ChunkDiff {
  missingInGreen: (readonly PgText[])[];
  extraInGreen: (readonly PgText[])[];
  /** Differing column indices per key. */
  different: { key: readonly PgText[]; columns: number[] }[];
}

/**
 * Matches the rows of one chunk by key. A key is usually unique per side (a primary key); under
 * REPLICA IDENTITY FULL without one, rows may repeat, and the rows of a key compare as a
 * multiset: equal rows pair first, then the rest pair as different, and what is left over is
 * missing (blue) or extra (green).
 */
export function diffChunk(blue: readonly CompareRow[], green: readonly CompareRow[]): ChunkDiff {
  const greenByKey = new Map<string, CompareRow[]>();
  for (const row of green) {
    const k = canonicalKey(row.key);
    greenByKey.set(k, [...(greenByKey.get(k) ?? []), row]);
  }
  const diff: ChunkDiff = { missingInGreen: [], extraInGreen: [], different: [] };
  const unpaired: CompareRow[] = [];
  for (const row of blue) {
    const others = greenByKey.get(canonicalKey(row.key));
    const equal = others?.findIndex((o) => JSON.stringify(o.values) === JSON.stringify(row.values)) ?? -1;
    if (others && equal >= 0) others.splice(equal, 1);
    else unpaired.push(row);
  }
  for (const row of unpaired) {
    const other = greenByKey.get(canonicalKey(row.key))?.shift();
    if (!other) {
      diff.missingInGreen.push(row.key);
      continue;
    }
    const columns: number[] = [];
    row.values.forEach((value, i) => {
      if (value !== other.values[i]) columns.push(i);
    });
    diff.different.push({ key: row.key, columns });
  }
  for (const rows of greenByKey.values()) for (const row of rows) diff.extraInGreen.push(row.key);
  return diff;
}

/** Collects a table's differences up to a limit of keys, then only counts. */
export class DiffCollector {
  readonly missingInGreen: Key[] = [];
  readonly extraInGreen: Key[] = [];
  readonly different: { key: Key; columns: string[] }[] = [];
  readonly transformFailures: { key: Key; error: string }[] = [];
  truncated = false;
  private listed = 0;

  constructor(
    private readonly keyColumns: readonly string[],
    private readonly columns: readonly string[],
    private readonly maxKeys: number,
  ) {}

  private room(): boolean {
    if (this.listed < this.maxKeys) {
      this.listed++;
      return true;
    }
    this.truncated = true;
    return false;
  }

  key(values: readonly PgText[]): Key {
    return Object.fromEntries(this.keyColumns.map((name, i) => [name, values[i]]));
  }

  add(diff: ChunkDiff): void {
    for (const key of diff.missingInGreen) if (this.room()) this.missingInGreen.push(this.key(key));
    for (const key of diff.extraInGreen) if (this.room()) this.extraInGreen.push(this.key(key));
    for (const { key, columns } of diff.different) {
      if (this.room())
        this.different.push({ key: this.key(key), columns: columns.map((i) => this.columns[i]) });
    }
  }

  failure(key: readonly PgText[], error: string): void {
    if (this.room()) this.transformFailures.push({ key: this.key(key), error });
  }
}
