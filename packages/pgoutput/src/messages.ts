import type { Lsn } from '@teal/change-event';

// The messages of the pgoutput plugin, protocol versions 1-4, as decoded by decoder.ts.
// Source: PostgreSQL docs, "Logical Replication Message Formats" (protocol.sgml,
// section protocol-logicalrep-message-formats) and src/backend/replication/logical/proto.c.
// Timestamps are converted from the Postgres epoch (2000-01-01) to Unix microseconds;
// LSNs are bigints; xids are unsigned 32-bit numbers.

/** One column of a TupleData: 'n' null, 'u' unchanged TOASTed value (not data!), 't' text, 'b' binary. */
export type TupleValue =
  | { readonly kind: 'null' }
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'text'; readonly value: string }
  | { readonly kind: 'binary'; readonly value: Buffer };

export type TupleData = readonly TupleValue[];

export const NULL_VALUE: TupleValue = Object.freeze({ kind: 'null' });
export const UNCHANGED_VALUE: TupleValue = Object.freeze({ kind: 'unchanged' });

export interface BeginMessage {
  readonly tag: 'begin';
  /** LSN of the commit record: the transaction's final LSN, known before its first change. */
  readonly finalLsn: Lsn;
  readonly commitTimeUs: bigint;
  readonly xid: number;
}

export interface CommitMessage {
  readonly tag: 'commit';
  readonly flags: number;
  readonly commitLsn: Lsn;
  readonly endLsn: Lsn;
  readonly commitTimeUs: bigint;
}

export interface OriginMessage {
  readonly tag: 'origin';
  readonly originLsn: Lsn;
  readonly name: string;
}

export interface RelationColumn {
  /** Bit 1: part of the replica identity key. */
  readonly flags: number;
  readonly isKey: boolean;
  readonly name: string;
  readonly typeOid: number;
  readonly typmod: number;
}

/** relreplident: 'd' default (primary key), 'n' nothing, 'f' full, 'i' index. */
export type ReplicaIdentity = 'd' | 'n' | 'f' | 'i';

export interface RelationMessage {
  readonly tag: 'relation';
  /** Present only inside a stream block (protocol >= 2). */
  readonly xid?: number;
  readonly relationId: number;
  readonly namespace: string;
  readonly name: string;
  readonly replicaIdentity: ReplicaIdentity;
  readonly columns: readonly RelationColumn[];
}

export interface TypeMessage {
  readonly tag: 'type';
  readonly xid?: number;
  readonly typeOid: number;
  readonly namespace: string;
  readonly name: string;
}

export interface InsertMessage {
  readonly tag: 'insert';
  readonly xid?: number;
  readonly relationId: number;
  readonly newTuple: TupleData;
}

export interface UpdateMessage {
  readonly tag: 'update';
  readonly xid?: number;
  readonly relationId: number;
  /** 'K': the old key (replica identity index columns; others are null) when the key changed. */
  readonly keyTuple?: TupleData;
  /** 'O': the whole old row under REPLICA IDENTITY FULL. */
  readonly oldTuple?: TupleData;
  readonly newTuple: TupleData;
}

export interface DeleteMessage {
  readonly tag: 'delete';
  readonly xid?: number;
  readonly relationId: number;
  readonly keyTuple?: TupleData;
  readonly oldTuple?: TupleData;
}

export interface TruncateMessage {
  readonly tag: 'truncate';
  readonly xid?: number;
  readonly cascade: boolean;
  readonly restartIdentity: boolean;
  readonly relationIds: readonly number[];
}

export interface LogicalDecodingMessage {
  readonly tag: 'message';
  readonly xid?: number;
  readonly transactional: boolean;
  readonly lsn: Lsn;
  readonly prefix: string;
  readonly content: Buffer;
}

export interface StreamStartMessage {
  readonly tag: 'stream_start';
  readonly xid: number;
  readonly firstSegment: boolean;
}

export interface StreamStopMessage {
  readonly tag: 'stream_stop';
}

export interface StreamCommitMessage {
  readonly tag: 'stream_commit';
  readonly xid: number;
  readonly flags: number;
  readonly commitLsn: Lsn;
  readonly endLsn: Lsn;
  readonly commitTimeUs: bigint;
}

export interface StreamAbortMessage {
  readonly tag: 'stream_abort';
  readonly xid: number;
  /** Equal to xid when the whole transaction aborted, else the aborted sub-transaction. */
  readonly subxid: number;
  /** Protocol 4, only with streaming = parallel. */
  readonly abortLsn?: Lsn;
  readonly abortTimeUs?: bigint;
}

// Two-phase messages (protocol 3, only with two_phase on). teal does not request them, but
// the decoder knows them so that an unexpected one is named, not reported as garbage.
export interface BeginPrepareMessage {
  readonly tag: 'begin_prepare';
  readonly prepareLsn: Lsn;
  readonly endLsn: Lsn;
  readonly prepareTimeUs: bigint;
  readonly xid: number;
  readonly gid: string;
}

export interface PrepareMessage {
  readonly tag: 'prepare' | 'stream_prepare';
  readonly flags: number;
  readonly prepareLsn: Lsn;
  readonly endLsn: Lsn;
  readonly prepareTimeUs: bigint;
  readonly xid: number;
  readonly gid: string;
}

export interface CommitPreparedMessage {
  readonly tag: 'commit_prepared';
  readonly flags: number;
  readonly commitLsn: Lsn;
  readonly endLsn: Lsn;
  readonly commitTimeUs: bigint;
  readonly xid: number;
  readonly gid: string;
}

export interface RollbackPreparedMessage {
  readonly tag: 'rollback_prepared';
  readonly flags: number;
  readonly prepareEndLsn: Lsn;
  readonly rollbackEndLsn: Lsn;
  readonly prepareTimeUs: bigint;
  readonly rollbackTimeUs: bigint;
  readonly xid: number;
  readonly gid: string;
}

export type PgoutputMessage =
  | BeginMessage
  | CommitMessage
  | OriginMessage
  | RelationMessage
  | TypeMessage
  | InsertMessage
  | UpdateMessage
  | DeleteMessage
  | TruncateMessage
  | LogicalDecodingMessage
  | StreamStartMessage
  | StreamStopMessage
  | StreamCommitMessage
  | StreamAbortMessage
  | BeginPrepareMessage
  | PrepareMessage
  | CommitPreparedMessage
  | RollbackPreparedMessage;
