import type { Lsn } from './lsn.ts';
import type { Position } from './position.ts';

// Values travel through teal in Postgres's own text form (the output of the type's output
// function under teal's session settings: DateStyle=ISO, TimeZone=UTC, IntervalStyle=postgres,
// extra_float_digits=3, bytea_output=hex). Text is the one form that is lossless for every
// type; the Avro codec turns it into natural Avro values and back.
export type PgText = string | null;
export type Row = Record<string, PgText>;

/** c = insert, u = update, d = delete, r = snapshot read, t = truncate. */
export type Op = 'c' | 'u' | 'd' | 'r' | 't';

export type TypeKind = 'base' | 'array' | 'enum' | 'domain' | 'composite' | 'range' | 'multirange' | 'pseudo';

/** What teal knows of a column's type, from pgoutput's Relation/Type messages and pg_type. */
export interface PgType {
  readonly oid: number;
  /** Qualified display name, e.g. "numeric", "int4[]", "public.mood". */
  readonly name: string;
  readonly kind: TypeKind;
  /** For arrays: element type oid; for domains: base type oid. */
  readonly elementOid?: number;
  readonly baseOid?: number;
}

export interface ColumnInfo {
  readonly name: string;
  readonly type: PgType;
  /** atttypmod, -1 when none (e.g. numeric(10,2) has a typmod, numeric has -1). */
  readonly typmod: number;
  /** Part of the replica identity key (the primary key, or all columns under FULL). */
  readonly isKey: boolean;
}

/** One version of a table's shape. A changed relation gets a new version. */
export interface TableSchema {
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly ColumnInfo[];
  /** Names of the key columns, in key order. Never empty for a replicated table. */
  readonly keyColumns: readonly string[];
}

export interface ChangeEvent {
  readonly op: Op;
  readonly schema: string;
  readonly table: string;
  readonly position: Position;
  /** Transaction id on blue (0 for snapshot rows). */
  readonly xid: number;
  /** Commit time on blue in microseconds since the Unix epoch (snapshot: time of the read). */
  readonly commitTimeUs: bigint;
  /** Key column values. For 't' (truncate) it is empty. */
  readonly key: Row;
  /** The new row for c/u/r; null for d and t. Columns listed in `unchanged` are absent. */
  readonly after: Row | null;
  /** The old row when blue sends one (REPLICA IDENTITY FULL, or the old key on a key change). */
  readonly before: Row | null;
  /** Unchanged TOASTed columns of an update: not data, never to be written as NULL. */
  readonly unchanged: readonly string[];
}

/** A logical decoding message (pg_logical_emit_message) that is not teal's own. */
export interface LogicalMessage {
  readonly position: Position;
  readonly transactional: boolean;
  readonly prefix: string;
  readonly content: Buffer;
  readonly lsn: Lsn;
}
