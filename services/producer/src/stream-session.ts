import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  ChangeEvent,
  LogicalMessage,
  Lsn,
  PgType,
  Position,
  Row,
  TableSchema,
} from '@teal/change-event';
import { TealError } from '@teal/errors';
import { type AssemblerOutput, FileSpillStore, TransactionAssembler } from '@teal/pgoutput';
import { isTealMessage, type PgoutputProtocol, ReplicationClient, WATERMARK_PREFIX } from '@teal/postgres';
import type { Logger } from '@teal/runtime';
import type { TypeCatalog } from './catalog.ts';
import type { ChunkSnapshotter } from './chunk-snapshot.ts';
import { EventPublisher, type EventPublisherOptions } from './event-publisher.ts';
import { keyShape } from './partition-key.ts';
import type { RelationResolver } from './relation-resolver.ts';

// One stream session: from the slot's confirmed LSN, XLogData -> TransactionAssembler ->
// EventPublisher, in order, with backpressure all the way to the walsender socket (the
// loop stops pulling while Kafka is saturated or teal is paused, the client then pauses the
// socket). The session owns its ReplicationClient and its EventPublisher, whose FlushTracker
// alone decides what is confirmed: the LSN it releases is acknowledged here, on this
// session's socket, and goes nowhere else. A failure ends the session; the stream loop
// starts a new one from the LSN this one confirmed.

/** How to publish: everything an EventPublisher needs but the handlers the session binds itself. */
export type PublishingOptions = Omit<EventPublisherOptions, 'startLsn' | 'onConfirm' | 'onError'>;

export interface StreamSessionOptions {
  blueUrl: string;
  slot: string;
  publication: string;
  /** What blue's pgoutput speaks (readPgoutputProtocol). */
  protocol: PgoutputProtocol;
  startLsn: Lsn;
  publishing: PublishingOptions;
  types: TypeCatalog;
  /** Replicated tables ("schema.table") -> key columns (grows while streaming: tables added later). */
  tables: ReadonlyMap<string, readonly string[]>;
  /** Which table a relation of the stream is (by oid: renames, partitions, tables created later). */
  relations: RelationResolver;
  chunks: ChunkSnapshotter;
  settings?: Readonly<Record<string, string>>;
  /** The pipeline's topic prefix (for the start-over advice when the slot is gone). */
  topicPrefix: string;
  log: Logger;
  /** Resolves when not paused. */
  whilePaused(): Promise<void>;
  onCommit?(commitTimeUs: bigint): void;
  /**
   * Blue's current values of `columns` for the row with `key`, or undefined when blue has
   * no such row now. Used to complete a key change whose TOASTed values blue did not send.
   */
  readCurrentColumns?(
    table: TableSchema,
    key: Row,
    columns: readonly string[],
    xid: number,
  ): Promise<Row | undefined>;
}

/**
 * A replicated table's key (its columns, or their types) changed within the stream: its rows'
 * later changes would go to other Kafka partitions than their earlier ones, which apply in
 * parallel. Stopped before the first change under the new key; nothing after it is confirmed.
 */
function keyChangedError(name: string, before: TableSchema, after: TableSchema): TealError {
  const describe = (t: TableSchema) =>
    t.keyColumns.map((k) => `${k} ${t.columns.find((c) => c.name === k)?.type.name ?? '?'}`).join(', ');
  return new TealError(
    'TEAL_TABLE_KEY_CHANGED',
    `the key of ${name} changed on blue while teal streamed it: (${describe(before)}) -> (${describe(after)}). ` +
      "Its rows' later changes would land on other Kafka partitions than their earlier ones, and partitions apply " +
      'in parallel, so teal stopped before the first change under the new key (the slot is confirmed up to the ' +
      "changes already in Kafka). To go on: make green's table match (same key columns and types), let the " +
      'consumer apply what is in Kafka (teal status shows no lag), then restart teal: the stream goes on from ' +
      'where it stopped, under the new key.',
    { details: { table: name } },
  );
}

/**
 * `event` of a relation replicated under another table's name (a leaf partition as its root,
 * an earlier name as the current one): that name, and its key from that table's key columns.
 */
function asTable(table: TableSchema, event: ChangeEvent): ChangeEvent {
  if (event.op === 't') return { ...event, schema: table.schema, table: table.table };
  const source = event.op === 'd' ? event.before : (event.after ?? event.before);
  const key: Row = {};
  for (const k of table.keyColumns) key[k] = source?.[k] ?? event.key[k] ?? null;
  return { ...event, schema: table.schema, table: table.table, key };
}

interface KnownTable {
  /** As published: the replicated table's name and key columns, the relation's columns. */
  table: TableSchema;
  /** "schema.table", computed once: the per-change path looks it up. */
  name: string;
  /** False: a table teal does not copy (its changes are skipped). */
  replicated: boolean;
  /** The relation's events carry another name (a leaf partition, an earlier name): renamed to `table`'s. */
  mapped: boolean;
}

export class StreamSession {
  private readonly client: ReplicationClient;
  private readonly publisher: EventPublisher;
  private readonly assembler: TransactionAssembler;
  private readonly spillDir: string;
  private readonly spill: FileSpillStore;
  /** Our own table versions by relation id: types resolved from pg_type, keys as configured. */
  private readonly tables = new Map<number, KnownTable>();
  private received = 0;
  private processed = 0;
  private readonly keepalives: Array<{ at: number; walEnd: Lsn }> = [];
  private closed = false;

  constructor(private readonly opts: StreamSessionOptions) {
    this.client = new ReplicationClient({
      connectionString: opts.blueUrl,
      slot: opts.slot,
      publication: opts.publication,
      protoVersion: opts.protocol.protoVersion,
      streaming:
        opts.protocol.streaming === 'off'
          ? false
          : opts.protocol.streaming === 'parallel'
            ? 'parallel'
            : true,
      messages: opts.protocol.messages,
      settings: opts.settings,
      topicPrefix: opts.topicPrefix,
    });
    this.publisher = new EventPublisher({
      ...opts.publishing,
      startLsn: opts.startLsn,
      // What Kafka made durable is confirmed on the socket that received it (contract item 1).
      onConfirm: (lsn) => this.client.acknowledge(lsn),
      // A failed send ends the session at once, even when the stream is idle.
      onError: (err) => {
        opts.log.warn({ err }, 'Kafka did not acknowledge a batch; restarting the stream from the slot');
        void this.client.close();
      },
    });
    this.spillDir = mkdtempSync(join(tmpdir(), `teal-spill-${opts.slot}-`));
    this.spill = new FileSpillStore(this.spillDir);
    this.assembler = new TransactionAssembler({
      protoVersion: opts.protocol.protoVersion,
      spill: this.spill,
      resolveType: (oid) => opts.types.cached(oid),
      resolveKeyColumns: (schema, table) => opts.tables.get(`${schema}.${table}`),
    });
    this.client.on('xlog', () => this.received++);
    // A keepalive's WAL end may be confirmed only after every XLogData before it is handled.
    this.client.on('keepalive', ({ walEnd }: { walEnd: Lsn }) => {
      if (this.processed === this.received) this.publisher.between(walEnd);
      else this.keepalives.push({ at: this.received, walEnd });
    });
  }

  /** How far this session confirmed the slot (its start LSN until Kafka acknowledged more). */
  get confirmedLsn(): Lsn {
    return this.publisher.tracker.confirmed;
  }

  /** Position of the newest record of this session that Kafka acknowledged. */
  get lastShipped(): Position | undefined {
    return this.publisher.lastShipped?.position;
  }

  async start(): Promise<void> {
    await this.client.start(this.opts.startLsn);
  }

  /** Runs until the client fails or closes; rejects with the cause of a failure. */
  async run(): Promise<void> {
    const pub = this.publisher;
    for await (const x of this.client.messages()) {
      if (this.closed) break;
      await this.opts.whilePaused();
      // Backpressure per event, not per message: one Stream Commit replays a whole spilled
      // transaction, and a buffer that grew past the batch limits became one Produce request
      // larger than the broker accepts (found by the soak: 53k records, rejected forever).
      // No promise per change unless one is needed (a new table, a key change, Kafka full).
      for (const out of this.assembler.push(x.payload)) {
        const pending = this.handle(out);
        if (pending) await pending;
        if (pub.saturated) await pub.waitForCapacity();
      }
      this.processed++;
      while (this.keepalives.length > 0 && this.keepalives[0].at <= this.processed) {
        pub.between(this.keepalives.shift()!.walEnd);
      }
      if (pub.failed !== undefined) throw pub.failed;
      if (pub.saturated) await pub.waitForCapacity();
    }
    if (pub.failed !== undefined) throw pub.failed;
  }

  /** Handles one output; returns a promise only when it has to wait (new table, key change, watermark). */
  private handle(out: AssemblerOutput): Promise<void> | undefined {
    const pub = this.publisher;
    switch (out.kind) {
      case 'begin':
        pub.begin();
        if (this.opts.chunks.recording) this.opts.chunks.onTransaction(out.xid);
        return;
      case 'commit':
        pub.commit(out.endLsn);
        this.opts.onCommit?.(out.commitTimeUs);
        return;
      case 'relation':
        return this.know(out.relationId, out.table).then(() => undefined);
      case 'change': {
        const known = this.tables.get(out.relationId);
        // The assembler emits a relation's Relation output before any of its changes.
        if (!known) throw new Error(`change of relation ${out.relationId} before the session knew it`);
        if (!known.replicated) return;
        const event = known.mapped ? asTable(known.table, out.event) : out.event;
        const codec = pub.codecFor(known.table);
        if (!codec || (event.op === 'c' && event.unchanged.length > 0))
          return this.handleChangeAsync(known, event);
        if (this.opts.chunks.watching(known.name)) this.opts.chunks.onChange(known.name, event);
        pub.addEvent(codec, event);
        return;
      }
      case 'message':
        return this.handleMessage(out.xid, out.message);
    }
  }

  private async handleChangeAsync(known: KnownTable, change: ChangeEvent): Promise<void> {
    const pub = this.publisher;
    const codec = pub.codecFor(known.table) ?? (await pub.prepare(known.table));
    let event = change;
    if (event.op === 'c' && event.unchanged.length > 0)
      event = await this.completeKeyChange(known.table, event);
    if (this.opts.chunks.watching(known.name)) this.opts.chunks.onChange(known.name, event);
    pub.addEvent(codec, event);
  }

  private async know(relationId: number, assembled: TableSchema): Promise<KnownTable> {
    const target = await this.opts.relations.resolve(relationId, assembled.schema, assembled.table);
    let known: KnownTable;
    if (target.kind === 'ignored') {
      known = {
        table: assembled,
        name: `${assembled.schema}.${assembled.table}`,
        replicated: false,
        mapped: false,
      };
    } else {
      const t = target.table;
      const mapped = t.schema !== assembled.schema || t.table !== assembled.table;
      const keyColumns = mapped ? t.shape.keyColumns : assembled.keyColumns;
      const table = await this.rebuild({ ...assembled, schema: t.schema, table: t.table, keyColumns });
      const previous = this.tables.get(relationId);
      if (previous?.replicated && keyShape(previous.table) !== keyShape(table))
        throw keyChangedError(t.name, previous.table, table);
      known = { table, name: t.name, replicated: true, mapped };
    }
    this.tables.set(relationId, known);
    return known;
  }

  private async handleMessage(xid: number, m: LogicalMessage): Promise<void> {
    const pub = this.publisher;
    if (m.prefix === WATERMARK_PREFIX) {
      await this.opts.chunks.onWatermark(m.content.toString('utf8'), m.lsn, pub);
    } else if (!isTealMessage(m.prefix)) {
      await pub.ensureTopic(pub.messagesTopic);
      pub.addMessage(m, xid);
    }
    // Heartbeats and other teal.* messages carry no data: only their position counts.
    if (!m.transactional) pub.between(m.lsn);
  }

  /**
   * An UPDATE that changes the primary key is sent on as delete(old key) + insert(new key),
   * but blue does not send the TOASTed values it left unchanged, and green's old row (which
   * has them) is on another partition. The insert is completed with blue's current values:
   * if blue changed them since, a later event of that row carries the change again; if blue
   * has no row with the new key any more, a later event deletes or moves it, so the insert
   * goes on as it came (the consumer writes no unchanged value, so it changes nothing).
   * Either way green ends equal to blue, and a value is never written as NULL.
   */
  private async completeKeyChange(table: TableSchema, event: ChangeEvent): Promise<ChangeEvent> {
    const read = this.opts.readCurrentColumns;
    if (!read) return event;
    const current = await read(table, event.key, event.unchanged, event.xid);
    if (!current) return event;
    return { ...event, after: { ...event.after, ...current }, unchanged: [] };
  }

  /** The assembler's table with types from pg_type (resolved now if new) and isKey from the key columns. */
  private async rebuild(table: TableSchema): Promise<TableSchema> {
    const types = await this.opts.types.resolve(table.columns.map((c) => c.type.oid));
    const keys = new Set(table.keyColumns);
    return Object.freeze({
      ...table,
      columns: table.columns.map((c) => ({
        ...c,
        type: types.get(c.type.oid) as PgType,
        isKey: keys.has(c.name),
      })),
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.client.close().catch(() => {});
    rmSync(this.spillDir, { recursive: true, force: true });
  }
}
