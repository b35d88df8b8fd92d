import type {
  ChangeEvent,
  ColumnInfo,
  LogicalMessage,
  Lsn,
  PgType,
  Row,
  TableSchema,
} from '@teal/change-event';
import { TealError } from '@teal/errors';
import { builtinType } from './builtin-types.ts';
import { decodePgoutput } from './decoder.ts';
import type { PgoutputMessage, RelationMessage, TupleData, TupleValue } from './messages.ts';
import type { SpillStore } from './spill-store.ts';

export type AssemblerOutput =
  | {
      readonly kind: 'begin';
      readonly xid: number;
      readonly commitLsn: Lsn;
      readonly commitTimeUs: bigint;
      readonly streamed: boolean;
    }
  | {
      readonly kind: 'change';
      readonly event: ChangeEvent;
      readonly table: TableSchema;
      readonly relationId: number;
    }
  /** endLsn is what to acknowledge once every change of the transaction is durable downstream. */
  | {
      readonly kind: 'commit';
      readonly xid: number;
      readonly commitLsn: Lsn;
      readonly endLsn: Lsn;
      readonly commitTimeUs: bigint;
    }
  | { readonly kind: 'message'; readonly message: LogicalMessage; readonly xid: number }
  /** A relation seen for the first time or with a new shape: a new schema version. */
  | {
      readonly kind: 'relation';
      readonly relationId: number;
      readonly table: TableSchema;
      readonly version: number;
    };

export interface AssemblerOptions {
  readonly protoVersion: number;
  /** Holds streamed transactions until Stream Commit. */
  readonly spill: SpillStore;
  /** Consulted first for every column type; lets the producer give kinds from pg_type. */
  readonly resolveType?: (oid: number) => PgType | undefined;
  /**
   * The event key for a table. Default: the columns pgoutput flags as replica identity — all
   * columns under REPLICA IDENTITY FULL, so the producer should answer with the primary key.
   */
  readonly resolveKeyColumns?: (
    schema: string,
    table: string,
    flagged: readonly string[],
  ) => readonly string[] | undefined;
}

interface CachedRelation {
  readonly message: RelationMessage;
  readonly table: TableSchema;
  readonly version: number;
}

interface OpenTxn {
  readonly xid: number;
  readonly commitLsn: Lsn;
  readonly commitTimeUs: bigint;
  seq: number;
}

function protocolError(message: string): TealError {
  return new TealError('TEAL_PGOUTPUT_PROTOCOL', message);
}

// Turns pgoutput messages into teal events, as a pure state machine (the socket lives in
// replication-client.ts). State: the relation cache, the open transaction, and whether we
// are inside a Stream Start/Stop block.
//
// A plain transaction's Begin carries its final (commit) LSN, so its changes are emitted
// as they arrive with positions (commitLsn, 1..n): memory stays flat whatever its size.
// A streamed transaction's changes arrive before its commit LSN is known, interleaved with
// other transactions; their raw bytes go to the SpillStore and are replayed, one at a
// time, at Stream Commit, or dropped at Stream Abort.
export class TransactionAssembler {
  private readonly relations = new Map<number, CachedRelation>();
  private readonly versions = new Map<number, number>();
  private readonly types = new Map<number, PgType>();
  private txn: OpenTxn | undefined;
  private streamXid: number | undefined;
  /** Top-level xids that have spilled changes not yet committed or aborted. */
  readonly openStreams = new Set<number>();

  constructor(private readonly opts: AssemblerOptions) {}

  get inStreamBlock(): boolean {
    return this.streamXid !== undefined;
  }

  /**
   * Decodes one XLogData payload and yields what it means. Iterate it to the end before the
   * next push. A plain (synchronous) iterable, so no promise per change; the caller may
   * await between items (a Stream Commit replays a whole transaction through one push).
   */
  push(payload: Buffer): Iterable<AssemblerOutput> {
    const msg = decodePgoutput(payload, {
      protoVersion: this.opts.protoVersion,
      inStreamBlock: this.inStreamBlock,
    });
    if (this.streamXid !== undefined) return this.inStream(msg, payload, this.streamXid);
    switch (msg.tag) {
      case 'stream_commit':
        return this.streamCommit(msg.xid, msg.commitLsn, msg.endLsn, msg.commitTimeUs);
      case 'stream_abort':
        return this.streamAbort(msg.xid, msg.subxid);
      default:
        return this.pushOutsideStream(msg);
    }
  }

  private *pushOutsideStream(msg: PgoutputMessage): Generator<AssemblerOutput> {
    switch (msg.tag) {
      case 'begin':
        if (this.txn) throw protocolError(`Begin of xid ${msg.xid} while xid ${this.txn.xid} is still open`);
        this.txn = { xid: msg.xid, commitLsn: msg.finalLsn, commitTimeUs: msg.commitTimeUs, seq: 0 };
        yield {
          kind: 'begin',
          xid: msg.xid,
          commitLsn: msg.finalLsn,
          commitTimeUs: msg.commitTimeUs,
          streamed: false,
        };
        return;
      case 'commit': {
        const txn = this.txn;
        if (!txn) throw protocolError('Commit without a Begin');
        this.txn = undefined;
        yield {
          kind: 'commit',
          xid: txn.xid,
          commitLsn: txn.commitLsn,
          endLsn: msg.endLsn,
          commitTimeUs: txn.commitTimeUs,
        };
        return;
      }
      case 'stream_start':
        if (this.txn)
          throw protocolError(`Stream Start of xid ${msg.xid} inside transaction ${this.txn.xid}`);
        this.streamXid = msg.xid;
        this.openStreams.add(msg.xid);
        return;
      case 'stream_stop':
        throw protocolError('Stream Stop outside a stream block');
      case 'origin':
        return;
      case 'begin_prepare':
      case 'prepare':
      case 'stream_prepare':
      case 'commit_prepared':
      case 'rollback_prepared':
        throw new TealError(
          'TEAL_PGOUTPUT_UNSUPPORTED',
          `received a two-phase message (${msg.tag}); teal does not request two_phase — the slot must have been created with two_phase = true: recreate it without`,
        );
      default:
        yield* this.apply(msg, this.txn);
    }
  }

  private streamAbort(xid: number, subxid: number): Iterable<AssemblerOutput> {
    if (subxid === xid) {
      this.openStreams.delete(xid);
      this.opts.spill.discard(xid);
    } else {
      this.opts.spill.discardSub(xid, subxid);
    }
    return [];
  }

  private *inStream(msg: PgoutputMessage, payload: Buffer, topXid: number): Generator<AssemblerOutput> {
    switch (msg.tag) {
      case 'stream_stop':
        this.streamXid = undefined;
        return;
      case 'message':
        if (!msg.transactional) {
          yield* this.apply(msg, undefined);
          return;
        }
        break;
      case 'relation':
      case 'type':
      case 'insert':
      case 'update':
      case 'delete':
      case 'truncate':
        break;
      default:
        throw protocolError(`${msg.tag} inside the stream block of xid ${topXid}`);
    }
    // Relation and Type messages are spilled too: they describe the streamed transaction's
    // view (it may have altered the table) and must not leak into other transactions.
    this.opts.spill.append(topXid, msg.xid ?? topXid, payload);
  }

  private *streamCommit(
    xid: number,
    commitLsn: Lsn,
    endLsn: Lsn,
    commitTimeUs: bigint,
  ): Generator<AssemblerOutput> {
    if (this.txn) throw protocolError(`Stream Commit of xid ${xid} inside transaction ${this.txn.xid}`);
    const txn: OpenTxn = { xid, commitLsn, commitTimeUs, seq: 0 };
    yield { kind: 'begin', xid, commitLsn, commitTimeUs, streamed: true };
    for (const { item } of this.opts.spill.read(xid)) {
      const msg = decodePgoutput(item, { protoVersion: this.opts.protoVersion, inStreamBlock: true });
      yield* this.apply(msg, txn);
    }
    this.openStreams.delete(xid);
    this.opts.spill.discard(xid);
    yield { kind: 'commit', xid, commitLsn, endLsn, commitTimeUs };
  }

  /** Relation, Type, Message and data messages, in or out of a transaction. */
  private *apply(msg: PgoutputMessage, txn: OpenTxn | undefined): Generator<AssemblerOutput> {
    switch (msg.tag) {
      case 'relation': {
        const out = this.cacheRelation(msg);
        if (out) yield out;
        return;
      }
      case 'type':
        this.types.set(msg.typeOid, {
          oid: msg.typeOid,
          name: msg.namespace && msg.namespace !== 'pg_catalog' ? `${msg.namespace}.${msg.name}` : msg.name,
          kind: 'base',
        });
        return;
      case 'message':
        // Non-transactional messages are sent as they are decoded, outside any transaction:
        // their own LSN is their position.
        yield {
          kind: 'message',
          xid: txn?.xid ?? msg.xid ?? 0,
          message: {
            position:
              txn && msg.transactional ? { lsn: txn.commitLsn, seq: ++txn.seq } : { lsn: msg.lsn, seq: 0 },
            transactional: msg.transactional,
            prefix: msg.prefix,
            content: msg.content,
            lsn: msg.lsn,
          },
        };
        return;
      case 'insert':
      case 'update':
      case 'delete':
      case 'truncate':
        if (!txn) throw protocolError(`${msg.tag} outside a transaction`);
        yield* this.change(msg, txn);
        return;
      default:
        throw protocolError(`unexpected ${msg.tag} message`);
    }
  }

  private *change(
    msg: Extract<PgoutputMessage, { tag: 'insert' | 'update' | 'delete' | 'truncate' }>,
    txn: OpenTxn,
  ): Generator<AssemblerOutput> {
    const event = changeOutput;

    if (msg.tag === 'truncate') {
      for (const id of msg.relationIds) {
        yield event(txn, this.relation(id), 't', {}, null, null, []);
      }
      return;
    }
    const rel = this.relation(msg.relationId);
    const keys = rel.table.keyColumns;
    if (msg.tag === 'insert') {
      const { row, unchanged } = toRow(rel, msg.newTuple, 'new tuple');
      yield event(txn, rel, 'c', pick(row, keys), row, null, unchanged);
      return;
    }
    if (msg.tag === 'delete') {
      const old = toRow(rel, (msg.oldTuple ?? msg.keyTuple)!, 'old tuple').row;
      yield event(txn, rel, 'd', pick(old, keys), null, msg.oldTuple ? old : null, []);
      return;
    }
    // Update.
    const { row: after, unchanged } = toRow(rel, msg.newTuple, 'new tuple');
    const old = msg.oldTuple ? toRow(rel, msg.oldTuple, 'old tuple').row : undefined;
    const stillUnchanged: string[] = [];
    for (const name of unchanged) {
      // Under REPLICA IDENTITY FULL the old row carries the value in full: the update then
      // carries a complete row. Otherwise the column is "unchanged", never NULL.
      if (old && name in old) after[name] = old[name] ?? null;
      else stillUnchanged.push(name);
    }
    const oldKey = msg.keyTuple
      ? pick(toRow(rel, msg.keyTuple, 'old key').row, keys)
      : old
        ? pick(old, keys)
        : undefined;
    const newKey = pick(after, keys);
    for (const k of keys) if (!(k in newKey) && oldKey && k in oldKey) newKey[k] = oldKey[k] ?? null;
    if (oldKey && keyChanged(oldKey, newKey, keys)) {
      // A key change is a delete of the old key and an insert of the new one (contract item 2),
      // so each key's events stay in its own partition.
      yield event(txn, rel, 'd', oldKey, null, old ?? { ...oldKey }, []);
      yield event(txn, rel, 'c', newKey, after, null, stillUnchanged);
      return;
    }
    yield event(txn, rel, 'u', newKey, after, old ?? null, stillUnchanged);
  }

  private relation(id: number): CachedRelation {
    const rel = this.relations.get(id);
    if (!rel) throw protocolError(`change for relation ${id} before its Relation message`);
    return rel;
  }

  private cacheRelation(msg: RelationMessage): AssemblerOutput | undefined {
    const known = this.relations.get(msg.relationId);
    if (known && sameShape(known.message, msg)) return undefined;
    const schema = msg.namespace === '' ? 'pg_catalog' : msg.namespace;
    const columns: ColumnInfo[] = msg.columns.map((c) => ({
      name: c.name,
      type: this.typeOf(c.typeOid),
      typmod: c.typmod,
      isKey: c.isKey,
    }));
    const flagged = msg.columns.filter((c) => c.isKey).map((c) => c.name);
    const keyColumns = this.opts.resolveKeyColumns?.(schema, msg.name, flagged) ?? flagged;
    const table: TableSchema = Object.freeze({ schema, table: msg.name, columns, keyColumns });
    const version = (this.versions.get(msg.relationId) ?? 0) + 1;
    this.versions.set(msg.relationId, version);
    this.relations.set(msg.relationId, { message: msg, table, version });
    return { kind: 'relation', relationId: msg.relationId, table, version };
  }

  private typeOf(oid: number): PgType {
    return (
      this.opts.resolveType?.(oid) ??
      builtinType(oid) ??
      this.types.get(oid) ?? { oid, name: `unknown_type_${oid}`, kind: 'base' }
    );
  }
}

function sameShape(a: RelationMessage, b: RelationMessage): boolean {
  return (
    a.namespace === b.namespace &&
    a.name === b.name &&
    a.replicaIdentity === b.replicaIdentity &&
    a.columns.length === b.columns.length &&
    a.columns.every((c, i) => {
      const d = b.columns[i]!;
      return c.name === d.name && c.typeOid === d.typeOid && c.typmod === d.typmod && c.flags === d.flags;
    })
  );
}

/**
 * One object literal in ChangeEvent's field order (as the snapshot reader builds it), so
 * every event has the same hidden class downstream. A module function and no spreads:
 * this runs per change.
 */
function changeOutput(
  txn: OpenTxn,
  rel: CachedRelation,
  op: ChangeEvent['op'],
  key: Row,
  after: Row | null,
  before: Row | null,
  unchanged: readonly string[],
) {
  return {
    kind: 'change',
    relationId: rel.message.relationId,
    table: rel.table,
    event: {
      op,
      schema: rel.table.schema,
      table: rel.table.table,
      position: { lsn: txn.commitLsn, seq: ++txn.seq },
      xid: txn.xid,
      commitTimeUs: txn.commitTimeUs,
      key,
      after,
      before,
      unchanged,
    },
  } as const;
}

function keyChanged(oldKey: Row, newKey: Row, keys: readonly string[]): boolean {
  for (const k of keys) if (k in oldKey && k in newKey && oldKey[k] !== newKey[k]) return true;
  return false;
}

function toRow(
  rel: CachedRelation,
  tuple: TupleData,
  what: string,
): { row: Record<string, string | null>; unchanged: string[] } {
  const cols = rel.table.columns;
  if (tuple.length !== cols.length) {
    throw new TealError(
      'TEAL_PGOUTPUT_MALFORMED',
      `${what} of ${rel.table.schema}.${rel.table.table} has ${tuple.length} columns, its Relation message ${cols.length}`,
    );
  }
  const row: Row & Record<string, string | null> = {};
  const unchanged: string[] = [];
  for (let i = 0; i < cols.length; i++) {
    const v: TupleValue = tuple[i]!;
    const name = cols[i]!.name;
    switch (v.kind) {
      case 'null':
        row[name] = null;
        break;
      case 'unchanged':
        unchanged.push(name);
        break;
      case 'text':
        row[name] = v.value;
        break;
      case 'binary':
        throw new TealError(
          'TEAL_PGOUTPUT_UNSUPPORTED',
          `binary tuple data for ${rel.table.schema}.${rel.table.table}.${name}: teal starts replication with binary off`,
        );
    }
  }
  return { row, unchanged };
}

function pick(row: Record<string, string | null>, keys: readonly string[]): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const k of keys) if (k in row) out[k] = row[k] ?? null;
  return out;
}
