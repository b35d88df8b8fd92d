import { EventEmitter } from 'node:events';
import {
  formatLsn,
  formatPosition,
  type Lsn,
  parseLsn,
  type Row,
  schemasTopic,
  type TableSchema,
} from '@teal/change-event';
import type { ResolvedConfig } from '@teal/config';
import { redactUrl, TealError } from '@teal/errors';
import { KafkaClient, type Publisher, SchemaTopic, type TopicAdmin } from '@teal/kafka';
import { controlKey, createPool, quoteIdent, quoteTable, slotKey } from '@teal/postgres';
import { abortableDelay, type Logger, rootLogger, type TealMetrics } from '@teal/runtime';
import type pg from 'pg';
import { loadTableSchema, TypeCatalog } from './catalog.ts';
import { ChunkSnapshotter } from './chunk-snapshot.ts';
import { EventPublisher, type PublisherLimits } from './event-publisher.ts';
import { Heartbeat } from './heartbeat.ts';
import { runInitialSnapshot, type TableProgress } from './initial-snapshot.ts';
import { checkReplicaIdentity, discoverTables, ensurePublication } from './publication-manager.ts';
import { ensureSlot } from './slot-manager.ts';
import { estimateRows } from './snapshot-reader.ts';
import { StateStore } from './state-store.ts';
import { StreamSession } from './stream-reader.ts';

// blue -> Kafka. start(): tables, publication, slot; then either the initial snapshot in
// the slot's exported snapshot followed by streaming from its consistent point, or (slot
// already there) streaming from the slot's confirmed LSN while unfinished tables are
// snapshotted by chunk. A stream failure restarts the stream from the confirmed LSN with
// backoff; only a lost slot or a protocol error stops the producer (state 'failed').

export type ProducerState = 'starting' | 'snapshotting' | 'streaming' | 'paused' | 'failed' | 'stopped';

export interface ProducerStatus {
  state: ProducerState;
  slot: string;
  publication: string;
  confirmedLsn: string | null;
  lastShippedPosition: string | null;
  lastCommitTimeUs: string | null;
  snapshot: Array<{ table: string; state: string; rowsDone: number; rowsEstimated: number }>;
  slotLagBytes?: number;
  retainedWalBytes?: number;
  error?: { code: string; message: string };
}

export interface ProducerDeps {
  metrics?: TealMetrics;
  logger?: Logger;
  /** Tuning for tests and the benchmark. */
  limits?: Partial<PublisherLimits>;
  statusIntervalMs?: number;
  pausePollMs?: number;
  /** Walsender settings, e.g. { logical_decoding_work_mem: '64kB' } to stream smaller transactions. */
  replicationSettings?: Readonly<Record<string, string>>;
  /** Test hook, see ChunkSnapshotOptions.afterChunkRead. */
  afterChunkRead?: (table: string, rows: readonly Row[]) => Promise<void>;
}

const FATAL_CODES = new Set([
  'TEAL_SLOT_MISSING',
  'TEAL_SLOT_INVALIDATED',
  'TEAL_SLOT_INVALID',
  'TEAL_PUBLICATION_MISSING',
  'TEAL_PGOUTPUT_PROTOCOL',
  'TEAL_PGOUTPUT_MALFORMED',
  'TEAL_PGOUTPUT_UNSUPPORTED',
  'TEAL_CONFIG_INVALID',
]);

export class Producer extends EventEmitter {
  private readonly log: Logger;
  private state: ProducerState = 'starting';
  private error: TealError | undefined;
  private confirmedLsn: Lsn | undefined;
  private lastShipped: string | null = null;
  private lastCommitTimeUs: bigint | undefined;
  private readonly progress = new Map<string, TableProgress>();
  private paused = false;
  private pauseWaiters: Array<() => void> = [];
  private streamingWaiters: Array<() => void> = [];
  private isStreaming = false;
  private readonly abort = new AbortController();
  private readonly timers: NodeJS.Timeout[] = [];
  private blue?: pg.Pool;
  private green?: pg.Pool;
  private store?: StateStore;
  private kafka?: KafkaClient;
  private admin?: TopicAdmin;
  private kafkaPublisher?: Publisher;
  private schemaTopic?: SchemaTopic;
  private heartbeat?: Heartbeat;
  private session?: StreamSession;
  private chunks?: ChunkSnapshotter;
  private holder?: pg.Client;
  private background: Promise<void> = Promise.resolve();
  private slotReady = false;
  private slotLag: { lag?: number; retained?: number } = {};

  constructor(
    readonly config: ResolvedConfig,
    private readonly deps: ProducerDeps = {},
  ) {
    super();
    this.log = (deps.logger ?? rootLogger()).child({ component: 'producer' });
  }

  status(): ProducerStatus {
    const status: ProducerStatus = {
      state: this.state,
      slot: this.config.slot,
      publication: this.config.publication,
      confirmedLsn: this.confirmedLsn === undefined ? null : formatLsn(this.confirmedLsn),
      lastShippedPosition: this.lastShipped,
      lastCommitTimeUs: this.lastCommitTimeUs === undefined ? null : String(this.lastCommitTimeUs),
      snapshot: [...this.progress.values()].map((p) => ({ ...p })),
    };
    if (this.slotLag.lag !== undefined) status.slotLagBytes = this.slotLag.lag;
    if (this.slotLag.retained !== undefined) status.retainedWalBytes = this.slotLag.retained;
    if (this.error) status.error = { code: this.error.code, message: this.error.message };
    return status;
  }

  async start(): Promise<void> {
    const { config } = this;
    this.log.info(
      { blue: redactUrl(config.blue.url), slot: config.slot, publication: config.publication },
      'producer starting',
    );
    this.blue = createPool(config.blue.url, { max: 4, applicationName: 'teal-producer' });
    this.green = createPool(config.green.url, { max: 2, applicationName: 'teal-producer' });
    this.store = new StateStore(this.green);
    await this.store.init();
    const previous = await this.store.readControl<{ slot?: string; slotCreated?: boolean }>(
      controlKey('producer', this.config),
    );
    // The slot's own record survives other producers' status rows (one green, several slots in tests).
    const slotRecord = await this.store.readControl(slotKey(config.slot));
    const hadSlot =
      slotRecord !== undefined || (previous?.slot === config.slot && previous?.slotCreated === true);

    const tables = await discoverTables(this.blue, config.tables, config.keyColumns);
    await checkReplicaIdentity(this.blue, tables);
    await ensurePublication(this.blue, config.publication, tables);
    const types = new TypeCatalog(this.blue);
    await types.loadAll();
    const schemas = new Map<string, TableSchema>();
    for (const t of tables)
      schemas.set(t.name, await loadTableSchema(this.blue, types, t.schema, t.table, t.keyColumns));
    const keys = new Map([...schemas].map(([name, s]) => [name, s.keyColumns] as const));

    this.kafka = new KafkaClient({ brokers: [...config.kafka.brokers], clientId: 'teal-producer' });
    this.admin = this.kafka.admin();
    this.kafkaPublisher = await this.kafka.publisher();
    this.schemaTopic = new SchemaTopic(this.kafka, schemasTopic(config.kafka.topicPrefix));
    await this.schemaTopic.ensure();

    const plan = await ensureSlot(this.blue, {
      blueUrl: config.blue.url,
      slot: config.slot,
      hadSlot,
      topicPrefix: config.kafka.topicPrefix,
    });
    this.slotReady = true;
    if (plan.kind === 'created') {
      await this.store.writeControl(slotKey(config.slot), {
        createdAt: new Date().toISOString(),
        consistentPoint: formatLsn(plan.consistentPoint),
      });
    }
    await this.store.writeControl(controlKey('producer', this.config), {
      ...this.status(),
      slotCreated: true,
      updatedAt: new Date().toISOString(),
    });
    const protoVersion = await this.protoVersion();

    this.chunks = new ChunkSnapshotter({
      blue: this.blue,
      store: this.store,
      chunkRows: config.snapshot.chunkRows,
      progress: this.progress,
      metrics: this.deps.metrics,
      streaming: () => this.streaming(),
      signal: this.abort.signal,
      onError: (err, table) => this.log.warn({ err, table }, 'chunk snapshot failed; retrying the chunk'),
      afterChunkRead: this.deps.afterChunkRead,
    });
    this.heartbeat = new Heartbeat(this.blue, config.heartbeatMs);
    this.startTimers();

    if (plan.kind === 'created') {
      this.holder = plan.holder;
      this.confirmedLsn = plan.consistentPoint;
      this.setState('snapshotting');
      for (const s of schemas.values()) {
        const name = `${s.schema}.${s.table}`;
        this.progress.set(name, { table: name, state: 'pending', rowsDone: 0, rowsEstimated: 0 });
      }
      this.background = this.runInitial(
        plan.snapshotName,
        plan.consistentPoint,
        [...schemas.values()],
        keys,
        protoVersion,
        types,
      );
    } else {
      this.confirmedLsn = plan.startLsn;
      this.background = this.runStreaming(plan.startLsn, keys, protoVersion, types, schemas);
    }
    this.background.catch(() => {});
  }

  private async runInitial(
    snapshotName: string,
    consistentPoint: Lsn,
    tables: TableSchema[],
    keys: Map<string, readonly string[]>,
    protoVersion: number,
    types: TypeCatalog,
  ): Promise<void> {
    const publisher = this.newPublisher(consistentPoint);
    try {
      await runInitialSnapshot({
        blueUrl: this.config.blue.url,
        snapshotName,
        consistentPoint,
        tables,
        chunkRows: this.config.snapshot.chunkRows,
        publisher,
        store: this.store!,
        progress: this.progress,
        metrics: this.deps.metrics,
        signal: this.abort.signal,
        afterChunkRead: this.deps.afterChunkRead,
      });
      if (publisher.lastShipped) this.lastShipped = formatPosition(publisher.lastShipped.position);
    } catch (err) {
      if (this.abort.signal.aborted) return;
      // The exported snapshot is gone with this failure: the unfinished tables are read by chunk while streaming.
      this.log.warn({ err }, 'initial snapshot failed; finishing it by chunks while streaming');
    } finally {
      await this.holder?.end().catch(() => {});
      this.holder = undefined;
    }
    if (this.abort.signal.aborted) return;
    await this.runStreaming(
      consistentPoint,
      keys,
      protoVersion,
      types,
      new Map(tables.map((t) => [`${t.schema}.${t.table}`, t])),
    );
  }

  private async runStreaming(
    startLsn: Lsn,
    keys: Map<string, readonly string[]>,
    protoVersion: number,
    types: TypeCatalog,
    schemas: Map<string, TableSchema>,
  ): Promise<void> {
    // Tables whose snapshot is not recorded as done are read by chunk once the stream runs.
    const done = await this.store!.readProgress();
    const pending = [...schemas.values()].filter((s) => done.get(`${s.schema}.${s.table}`)?.state !== 'done');
    for (const [name, row] of done) {
      if (schemas.has(name) && row.state === 'done') {
        this.progress.set(name, {
          table: name,
          state: 'done',
          rowsDone: row.rowsDone,
          rowsEstimated: row.rowsEstimated,
        });
      }
    }
    const chunkWork = (async () => {
      for (const table of pending) {
        const row = done.get(`${table.schema}.${table.table}`);
        const estimate = await this.estimate(table);
        await this.chunks!.snapshotTable(table, row?.lastKey ?? null, row?.rowsDone ?? 0, estimate);
      }
    })();
    chunkWork.catch((err) => this.log.error({ err }, 'chunk snapshot stopped'));
    this.heartbeat!.start();
    let lsn = startLsn;
    for (let attempt = 0; !this.abort.signal.aborted; attempt++) {
      const publisher = this.newPublisher(lsn);
      const session = new StreamSession({
        blueUrl: this.config.blue.url,
        slot: this.config.slot,
        publication: this.config.publication,
        protoVersion,
        startLsn: lsn,
        publisher,
        types,
        tables: keys,
        chunks: this.chunks!,
        settings: this.deps.replicationSettings,
        topicPrefix: this.config.kafka.topicPrefix,
        whilePaused: () => this.whilePaused(),
        onCommit: (us) => {
          this.lastCommitTimeUs = us;
        },
        readCurrentColumns: (table, key, columns, xid) => this.readCurrentColumns(table, key, columns, xid),
      });
      this.session = session;
      // A failed send ends the session at once, even when the stream is idle.
      publisher.onError = (err) => {
        this.log.warn({ err }, 'Kafka did not acknowledge a batch; restarting the stream from the slot');
        void session.client.close();
      };
      publisher.onConfirm = (confirmed) => {
        session.client.acknowledge(confirmed);
        this.confirmedLsn = confirmed;
      };
      try {
        await session.start();
        this.isStreaming = true;
        this.setState(this.paused ? 'paused' : 'streaming');
        for (const wake of this.streamingWaiters.splice(0)) wake();
        const shipping = setInterval(() => {
          if (publisher.lastShipped) this.lastShipped = formatPosition(publisher.lastShipped.position);
        }, 200);
        try {
          await session.run();
        } finally {
          clearInterval(shipping);
          if (publisher.lastShipped) this.lastShipped = formatPosition(publisher.lastShipped.position);
        }
        if (this.abort.signal.aborted) break;
        throw new TealError('TEAL_REPLICATION_CONNECTION_LOST', 'the replication stream ended', {
          retriable: true,
        });
      } catch (err) {
        this.isStreaming = false;
        this.chunks!.abortWindows(err);
        if (this.abort.signal.aborted) break;
        if (err instanceof TealError && FATAL_CODES.has(err.code)) {
          this.fail(err);
          return;
        }
        const delay = Math.min(10_000, 200 * 2 ** Math.min(attempt, 6));
        this.log.warn({ err, delayMs: delay }, 'stream failed; restarting from the slot confirmed LSN');
        await abortableDelay(delay, this.abort.signal);
      } finally {
        this.isStreaming = false;
        await session.close();
      }
      lsn = this.confirmedLsn ?? lsn;
      if (attempt > 20) attempt = 6;
    }
  }

  private newPublisher(startLsn: Lsn): EventPublisher {
    return new EventPublisher({
      publisher: this.kafkaPublisher!,
      admin: this.admin!,
      schemas: this.schemaTopic!,
      prefix: this.config.kafka.topicPrefix,
      partitions: this.config.kafka.partitions,
      headers: this.config.kafka.headers,
      startLsn,
      limits: this.deps.limits,
      metrics: this.deps.metrics,
      onError: (err) => this.log.warn({ err }, 'Kafka did not acknowledge a batch'),
    });
  }

  private async estimate(table: TableSchema): Promise<number> {
    return estimateRows(this.blue!, table.schema, table.table);
  }

  private async readCurrentColumns(
    table: TableSchema,
    key: Row,
    columns: readonly string[],
    xid: number,
  ): Promise<Row | undefined> {
    const where = table.keyColumns.map((k, i) => `${quoteIdent(k)} = $${i + 1}`).join(' AND ');
    // The walsender sends a commit once its WAL is flushed, before the transaction is visible
    // to other sessions: read only in a snapshot that sees it (xid widened to xid8 by epoch).
    for (;;) {
      const client = await this.blue!.connect();
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const vis = await client.query<{ v: boolean | string }>(
          `SELECT pg_visible_in_snapshot(((((nx >> 32) - CASE WHEN $1::bigint >= (nx & 4294967295) THEN 1 ELSE 0 END) << 32) | $1::bigint)::text::xid8, snap)::text AS v
             FROM (SELECT pg_snapshot_xmax(s)::text::bigint AS nx, s AS snap FROM pg_current_snapshot() s) n`,
          [xid],
        );
        if (String(vis.rows[0].v) === 'true') {
          const result = await client.query<Row>(
            `SELECT ${columns.map(quoteIdent).join(', ')} FROM ${quoteTable(table.schema, table.table)} WHERE ${where}`,
            table.keyColumns.map((k) => key[k]),
          );
          await client.query('COMMIT');
          return result.rows[0];
        }
        await client.query('ROLLBACK');
      } finally {
        client.release();
      }
      await abortableDelay(10, this.abort.signal);
      if (this.abort.signal.aborted) throw new TealError('TEAL_ABORTED', 'producer stopping');
    }
  }

  private async protoVersion(): Promise<number> {
    // Not SHOW: its column is named after the setting, and a missing `v` meant proto 1 (no streaming).
    const result = await this.blue!.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    const v = Number(result.rows[0].v);
    return v >= 160000 ? 4 : v >= 150000 ? 3 : v >= 140000 ? 2 : 1;
  }

  /** Resolves when a stream session runs. */
  private streaming(): Promise<void> {
    if (this.isStreaming) return Promise.resolve();
    return new Promise((resolve) => this.streamingWaiters.push(resolve));
  }

  private whilePaused(): Promise<void> {
    if (!this.paused) return Promise.resolve();
    return new Promise((resolve) => this.pauseWaiters.push(resolve));
  }

  private setState(state: ProducerState): void {
    if (this.state === 'failed' || this.state === 'stopped') return;
    this.state = state;
    const metrics = this.deps.metrics;
    if (metrics)
      for (const s of ['starting', 'snapshotting', 'streaming', 'paused', 'failed'])
        metrics.state.set({ state: s }, s === state ? 1 : 0);
  }

  private fail(err: TealError): void {
    this.error = err;
    this.setState('failed');
    this.state = 'failed';
    this.log.error({ err }, 'producer failed');
    void this.writeStatus();
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private startTimers(): void {
    const every = (ms: number, fn: () => Promise<void>) => {
      let running = false;
      const timer = setInterval(() => {
        if (running) return;
        running = true;
        fn()
          .catch((err) => this.log.debug({ err }, 'periodic task failed'))
          .finally(() => {
            running = false;
          });
      }, ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.deps.pausePollMs ?? 500, async () => {
      const paused = await this.store!.isPaused(controlKey('paused', this.config));
      if (paused === this.paused) return;
      this.paused = paused;
      this.log.info({ paused }, paused ? 'paused: not reading the slot' : 'resumed');
      if (!paused) for (const wake of this.pauseWaiters.splice(0)) wake();
      if (this.isStreaming) this.setState(paused ? 'paused' : 'streaming');
    });
    every(this.deps.statusIntervalMs ?? 1000, () => this.writeStatus());
  }

  private async writeStatus(): Promise<void> {
    // Only a producer that has its slot may say so: the next start trusts `slotCreated`.
    if (!this.slotReady) return;
    await this.measureLag().catch(() => {});
    await this.store?.writeControl(controlKey('producer', this.config), {
      ...this.status(),
      slotCreated: true,
      pid: process.pid,
      updatedAt: new Date().toISOString(),
    });
  }

  private async measureLag(): Promise<void> {
    const result = await this.blue!.query<{
      lag: string | null;
      retained: string | null;
      confirmed: string | null;
    }>(
      `SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8::text AS lag,
              (pg_current_wal_lsn() - restart_lsn)::int8::text AS retained, confirmed_flush_lsn::text AS confirmed
         FROM pg_replication_slots WHERE slot_name = $1`,
      [this.config.slot],
    );
    const row = result.rows[0];
    if (!row) return;
    this.slotLag = { lag: Number(row.lag ?? 0), retained: Number(row.retained ?? 0) };
    const metrics = this.deps.metrics;
    metrics?.slotLagBytes.set(this.slotLag.lag ?? 0);
    metrics?.slotRetainedWalBytes.set(this.slotLag.retained ?? 0);
    if (
      this.lastCommitTimeUs !== undefined &&
      row.confirmed &&
      this.confirmedLsn !== undefined &&
      parseLsn(row.confirmed) >= this.confirmedLsn
    ) {
      metrics?.slotLagSeconds.set(Math.max(0, (Date.now() * 1000 - Number(this.lastCommitTimeUs)) / 1e6));
    }
    const retained = this.slotLag.retained ?? 0;
    if (retained >= this.config.lag.criticalBytes)
      this.log.error({ retained }, 'slot retains critical amount of WAL on blue');
    else if (retained >= this.config.lag.warnBytes)
      this.log.warn({ retained }, 'slot retains much WAL on blue');
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.abort.abort();
    for (const t of this.timers) clearInterval(t);
    this.heartbeat?.stop();
    for (const wake of this.pauseWaiters.splice(0)) wake();
    for (const wake of this.streamingWaiters.splice(0)) wake();
    await this.session?.close();
    await Promise.race([this.background, abortableDelay(5000)]);
    if (this.state !== 'failed') {
      await this.writeStatus().catch(() => {});
      this.state = 'stopped';
    }
    await this.holder?.end().catch(() => {});
    await this.kafka?.close();
    await this.blue?.end().catch(() => {});
    await this.green?.end().catch(() => {});
  }
}
