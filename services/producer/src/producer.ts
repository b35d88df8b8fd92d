import { EventEmitter } from 'node:events';
import {
  formatLsn,
  formatPosition,
  type Lsn,
  type Position,
  type Row,
  schemasTopic,
  type TableSchema,
} from '@teal/change-event';
import type { ResolvedConfig } from '@teal/config';
import { redactUrl, type TealError } from '@teal/errors';
import { KafkaClient, SchemaTopic } from '@teal/kafka';
import {
  controlKey,
  createPool,
  needsMessagesError,
  readPgoutputProtocol,
  readSlot,
  slotKey,
} from '@teal/postgres';
import { abortableDelay, type Logger, rootLogger, secondsSinceCommit, type TealMetrics } from '@teal/runtime';
import type pg from 'pg';
import { loadTableSchema, TypeCatalog } from './catalog.ts';
import { CatalogWatch, DEFAULT_CATALOG_POLL_MS } from './catalog-watch.ts';
import { ChunkSnapshotter } from './chunk-snapshot.ts';
import { currentColumnsReader } from './current-row-reader.ts';
import { type DirectCopyTarget, holdTables, runDirectCopy } from './direct-copy.ts';
import { EventPublisher, type PublisherLimits } from './event-publisher.ts';
import type { GreenReachability } from './green-state-writer.ts';
import { Heartbeat } from './heartbeat.ts';
import { runInitialSnapshot, type TableProgress } from './initial-snapshot.ts';
import { checkReplicaIdentity, discoverTables, ensurePublication } from './publication-manager.ts';
import { RelationResolver } from './relation-resolver.ts';
import { ReplicatedTables } from './replicated-tables.ts';
import { SlotLagWatch } from './slot-lag.ts';
import { ensureSlot } from './slot-manager.ts';
import { removeDeadSpillDirs } from './spill-cleanup.ts';
import { StateStore } from './state-store.ts';
import { StreamLoop } from './stream-loop.ts';
import type { PublishingOptions } from './stream-session.ts';
import { stopsProducer, TopicLayouts } from './topic-layout.ts';

// blue -> Kafka. start(): tables, publication, slot; then either the initial snapshot in
// the slot's exported snapshot followed by streaming from its consistent point, or (slot
// already there) streaming from the slot's confirmed LSN while unfinished tables are
// snapshotted by chunk. The StreamLoop keeps the stream running (restarts with backoff on
// retriable errors); an error no restart can fix stops the producer (state 'failed').

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
  /** Whether green answers the producer's state writes; Kafka keeps filling while it does not. */
  green?: GreenReachability;
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
  /** Backoff of the retries of green's reads and writes (tests). */
  greenRetryDelayMs?: { initial: number; max: number };
  /** How often blue's catalog is read for new, renamed and attached tables, ms (default 5000). */
  catalogPollMs?: number;
  /**
   * The slot was made elsewhere at a point where the target already equals the source (the
   * reverse pipeline: `cutover --with-rollback` creates it on green): stream from it, never
   * create it, and count every table as copied (no snapshot).
   */
  attachSlot?: boolean;
  /**
   * The green side of `snapshot.via: 'direct'` (services/cli wires the consumer's writer, as
   * the producer does not import the consumer). Without it the initial snapshot goes through Kafka.
   */
  directCopy?: (config: ResolvedConfig) => DirectCopyTarget;
  /** Test hook: runs after each range of the direct copy is committed in green. */
  afterDirectRange?: (table: string, rows: number) => Promise<void>;
}

export class Producer extends EventEmitter {
  private readonly log: Logger;
  private state: ProducerState = 'starting';
  private error: TealError | undefined;
  /** Newest snapshot record Kafka acknowledged; streamed ones are the loop's. */
  private snapshotShipped: Position | undefined;
  private lastCommitTimeUs: bigint | undefined;
  private readonly progress = new Map<string, TableProgress>();
  private paused = false;
  private pauseUnreadable = false;
  private pauseWaiters: Array<() => void> = [];
  private readonly abort = new AbortController();
  private readonly timers: NodeJS.Timeout[] = [];
  private blue?: pg.Pool;
  private green?: pg.Pool;
  private store?: StateStore;
  private kafka?: KafkaClient;
  private publishing?: PublishingOptions;
  private layouts?: TopicLayouts;
  private heartbeat?: Heartbeat;
  private loop?: StreamLoop;
  private chunks?: ChunkSnapshotter;
  private holder?: pg.Client;
  private background: Promise<void> = Promise.resolve();
  private slotReady = false;
  /** The direct initial copy runs (the stream may run beside it). */
  private copying = false;
  private slotLag?: SlotLagWatch;
  private catalogWatch?: CatalogWatch;

  constructor(
    readonly config: ResolvedConfig,
    private readonly deps: ProducerDeps = {},
  ) {
    super();
    this.log = (deps.logger ?? rootLogger()).child({ component: 'producer' });
  }

  status(): ProducerStatus {
    const shipped = this.loop?.lastShipped ?? this.snapshotShipped;
    const status: ProducerStatus = {
      state: this.state,
      slot: this.config.slot,
      publication: this.config.publication,
      confirmedLsn: this.loop ? formatLsn(this.loop.confirmedLsn) : null,
      lastShippedPosition: shipped ? formatPosition(shipped) : null,
      lastCommitTimeUs: this.lastCommitTimeUs === undefined ? null : String(this.lastCommitTimeUs),
      snapshot: [...this.progress.values()].map((p) => ({ ...p })),
    };
    const lag = this.slotLag;
    if (lag?.lagBytes !== undefined) status.slotLagBytes = lag.lagBytes;
    if (lag?.retainedWalBytes !== undefined) status.retainedWalBytes = lag.retainedWalBytes;
    if (this.store) status.green = this.store.reachability;
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
    // A green host that stopped answering TCP fails a connect in seconds, not minutes.
    this.green = createPool(config.green.url, {
      max: 2,
      applicationName: 'teal-producer',
      connectionTimeoutMillis: 5_000,
    });
    this.store = new StateStore(this.green, {
      log: this.log,
      signal: this.abort.signal,
      retryDelayMs: this.deps.greenRetryDelayMs,
    });
    await this.store.init();
    const previous = await this.store.readControlUntilAnswered<{ slot?: string; slotCreated?: boolean }>(
      controlKey('producer', this.config),
    );
    // The slot's own record survives other producers' status rows (one green, several slots in tests).
    const slotRecord = await this.store.readControlUntilAnswered(slotKey(config.slot));
    const hadSlot =
      this.deps.attachSlot === true ||
      slotRecord !== undefined ||
      (previous?.slot === config.slot && previous?.slotCreated === true);

    const tables = await discoverTables(this.blue, config.tables, config.keyColumns);
    await checkReplicaIdentity(this.blue, tables);
    const publication = await ensurePublication(this.blue, config.publication, tables);
    if (publication.viaRootSet)
      this.log.info(
        { publication: config.publication },
        'publication altered to publish_via_partition_root = true: changes of partitions now arrive as changes of their partitioned table',
      );
    const types = new TypeCatalog(this.blue);
    await types.loadAll();
    const replicated = new ReplicatedTables();
    for (const t of tables)
      replicated.add({
        ...t,
        shape: await loadTableSchema(this.blue, types, t.schema, t.table, t.keyColumns),
      });
    const schemas = replicated.shapes();

    this.kafka = new KafkaClient({
      brokers: [...config.kafka.brokers],
      clientId: 'teal-producer',
      client: config.kafka.client,
      tls: config.kafka.tls,
      sasl: config.kafka.sasl,
      maxMessageBytes: config.kafka.maxMessageBytes,
    });
    const admin = this.kafka.admin();
    const publisher = await this.kafka.publisher();
    const schemaTopic = new SchemaTopic(this.kafka, schemasTopic(config.kafka.topicPrefix));
    await schemaTopic.ensure();
    // Partition counts, ordered tables and size limits per topic (topic-layout.ts).
    this.layouts = new TopicLayouts({
      admin,
      prefix: config.kafka.topicPrefix,
      partitions: config.kafka.partitions,
      maxMessageBytes: config.kafka.maxMessageBytes,
      ordered: config.ordered,
      blue: this.blue,
      green: this.green,
      store: this.store,
      controlKey: controlKey('topic_layout', config),
      log: this.log,
    });
    await this.layouts.start([...schemas.values()]);
    this.publishing = {
      publisher,
      admin,
      layouts: this.layouts,
      schemas: schemaTopic,
      prefix: config.kafka.topicPrefix,
      partitions: config.kafka.partitions,
      headers: config.kafka.headers,
      limits: this.deps.limits,
      metrics: this.deps.metrics,
    };

    const plan = await ensureSlot(this.blue, {
      blueUrl: config.blue.url,
      slot: config.slot,
      hadSlot,
      topicPrefix: config.kafka.topicPrefix,
    });
    this.slotReady = true;
    // One walsender at a time streams a slot: when none streams it now (or it is new), the
    // spill directories of this slot are a crashed producer's.
    if (plan.kind === 'created' || !(await readSlot(this.blue, config.slot))?.active)
      removeDeadSpillDirs(config.slot, this.log);
    this.slotLag = new SlotLagWatch({
      blue: this.blue,
      slot: config.slot,
      thresholds: config.lag,
      metrics: this.deps.metrics,
      log: this.log,
    });
    if (plan.kind === 'created') {
      this.store.writeControl(slotKey(config.slot), {
        createdAt: new Date().toISOString(),
        consistentPoint: formatLsn(plan.consistentPoint),
      });
    }
    this.store.writeControl(controlKey('producer', this.config), {
      ...this.status(),
      slotCreated: true,
      updatedAt: new Date().toISOString(),
    });
    const protocol = await readPgoutputProtocol(this.blue);

    this.chunks = new ChunkSnapshotter({
      blue: this.blue,
      store: this.store,
      chunkRows: config.snapshot.chunkRows,
      progress: this.progress,
      metrics: this.deps.metrics,
      streaming: () => this.loop!.whenStreaming(),
      signal: this.abort.signal,
      onError: (err, table) => this.log.warn({ err, table }, 'chunk snapshot failed; retrying the chunk'),
      afterChunkRead: this.deps.afterChunkRead,
      refuse: protocol.messages
        ? undefined
        : (table) =>
            needsMessagesError(
              protocol,
              `snapshotting ${table} while streaming (a table added later, or the rest of an interrupted initial snapshot)`,
            ),
      onFatal: (err) => this.halt(err),
    });
    this.heartbeat = new Heartbeat(this.blue, config.heartbeatMs);
    const mode = config.tables === 'all' ? 'all' : 'listed';
    const watch = new CatalogWatch({
      blue: this.blue,
      tables: replicated,
      mode,
      keyColumns: config.keyColumns,
      publication: config.publication,
      topicPrefix: config.kafka.topicPrefix,
      types,
      chunks: this.chunks,
      store: this.store,
      progress: this.progress,
      intervalMs: this.deps.catalogPollMs ?? DEFAULT_CATALOG_POLL_MS,
      signal: this.abort.signal,
      log: this.log,
      onFatal: (err) => this.halt(err),
    });
    this.catalogWatch = watch;
    await watch.init();
    const relations = new RelationResolver({
      blue: this.blue,
      tables: replicated,
      mode,
      topicPrefix: config.kafka.topicPrefix,
      log: this.log,
      adopt: (oid) => watch.adopt(oid),
    });
    this.loop = new StreamLoop({
      startLsn: plan.kind === 'created' ? plan.consistentPoint : plan.startLsn,
      signal: this.abort.signal,
      log: this.log,
      // During the direct copy the producer says 'snapshotting', streaming or not.
      onStreaming: () => {
        if (!this.copying) this.setState(this.paused ? 'paused' : 'streaming');
      },
      session: {
        blueUrl: config.blue.url,
        slot: config.slot,
        publication: config.publication,
        protocol,
        publishing: this.publishing,
        types,
        tables: replicated.keys,
        relations,
        chunks: this.chunks,
        settings: this.deps.replicationSettings,
        topicPrefix: config.kafka.topicPrefix,
        log: this.log,
        whilePaused: () => this.whilePaused(),
        onCommit: (us) => {
          this.lastCommitTimeUs = us;
          this.deps.metrics?.streamLatencySeconds.observe({ point: 'decoded' }, secondsSinceCommit(us));
        },
        readCurrentColumns: currentColumnsReader(this.blue, this.abort.signal),
      },
    });
    this.startTimers();
    watch.start();

    if (plan.kind === 'created') {
      this.holder = plan.holder;
      this.setState('snapshotting');
      for (const s of schemas.values()) {
        const name = `${s.schema}.${s.table}`;
        this.progress.set(name, { table: name, state: 'pending', rowsDone: 0, rowsEstimated: 0 });
      }
      this.background = this.runInitial(plan.snapshotName, plan.consistentPoint, schemas);
    } else {
      if (this.deps.attachSlot) await this.markCopied(schemas);
      this.background = this.runStreaming(schemas);
    }
    this.background.catch(() => {});
  }

  private async runInitial(
    snapshotName: string,
    consistentPoint: Lsn,
    schemas: Map<string, TableSchema>,
  ): Promise<void> {
    if (this.config.snapshot.via === 'direct' && this.deps.directCopy) {
      // The stream runs into Kafka during the copy (blue's WAL keeps moving) once green holds
      // every table back; if green cannot say so now, the stream starts after the copy.
      const tables = [...schemas.values()];
      const held = await holdTables(this.green!, tables, consistentPoint).then(
        () => true,
        (err) => {
          this.log.warn(
            { err },
            'cannot hold the tables back in green; streaming starts after the direct copy',
          );
          return false;
        },
      );
      this.copying = true;
      const stream = held ? this.startStream() : undefined;
      await this.runDirect(snapshotName, consistentPoint, schemas);
      this.copying = false;
      if (this.loop?.streaming) this.setState(this.paused ? 'paused' : 'streaming');
      if (this.abort.signal.aborted) return;
      await this.runStreaming(schemas, stream);
      return;
    }
    if (this.config.snapshot.via === 'direct')
      this.log.info('no green writer wired for snapshot.via direct: the initial snapshot goes through Kafka');
    // Snapshot records confirm nothing: streaming starts at the consistent point either way.
    const publisher = new EventPublisher({
      ...this.publishing!,
      startLsn: consistentPoint,
      onError: (err) => this.log.warn({ err }, 'Kafka did not acknowledge a batch'),
    });
    try {
      await runInitialSnapshot({
        blueUrl: this.config.blue.url,
        snapshotName,
        consistentPoint,
        tables: [...schemas.values()],
        chunkRows: this.config.snapshot.chunkRows,
        publisher,
        store: this.store!,
        progress: this.progress,
        metrics: this.deps.metrics,
        signal: this.abort.signal,
        afterChunkRead: this.deps.afterChunkRead,
      });
      this.snapshotShipped = publisher.lastShipped?.position;
    } catch (err) {
      if (this.abort.signal.aborted) return;
      // A row too large or a changed partition count: streaming would meet it again.
      if (stopsProducer(err)) return this.fail(err);
      // The exported snapshot is gone with this failure: the unfinished tables are read by chunk while streaming.
      this.log.warn({ err }, 'initial snapshot failed; finishing it by chunks while streaming');
    } finally {
      await this.holder?.end().catch(() => {});
      this.holder = undefined;
    }
    if (this.abort.signal.aborted) return;
    await this.runStreaming(schemas);
  }

  // Straight into green while the slot's creating connection holds the snapshot; what is not
  // done (refused, failed, interrupted) is finished by chunk while streaming (runStreaming).
  private async runDirect(snapshotName: string, consistentPoint: Lsn, schemas: Map<string, TableSchema>) {
    const target = this.deps.directCopy!(this.config);
    try {
      const left = await runDirectCopy({
        blueUrl: this.config.blue.url,
        snapshotName,
        consistentPoint,
        tables: [...schemas.values()],
        parallel: this.config.snapshot.parallel,
        rangeRows: this.config.snapshot.rangeRows,
        target,
        progress: this.progress,
        log: this.log,
        metrics: this.deps.metrics,
        signal: this.abort.signal,
        whilePaused: () => this.whilePaused(),
        afterRange: this.deps.afterDirectRange,
      });
      if (left.length > 0 && !this.abort.signal.aborted)
        this.log.warn(
          { tables: left },
          'tables not copied directly: snapshotting them by chunk while streaming',
        );
    } catch (err) {
      if (this.abort.signal.aborted) return;
      this.log.warn({ err }, 'direct copy failed; finishing the initial snapshot by chunks while streaming');
    } finally {
      await target.close().catch(() => {});
      await this.holder?.end().catch(() => {});
      this.holder = undefined;
    }
  }

  private startStream(): Promise<void> {
    this.heartbeat!.start();
    return this.loop!.run().catch((err: TealError) => this.fail(err));
  }

  private async runStreaming(schemas: Map<string, TableSchema>, stream?: Promise<void>): Promise<void> {
    // Unfinished tables are read by chunk; each chunk waits until a session streams. A table
    // a direct copy left unfinished (it failed, or the process died) is held back no more.
    const chunkWork = this.releaseHeld(schemas).then(() => this.chunks!.resumeUnfinished(schemas));
    chunkWork.catch((err) => this.log.error({ err }, 'chunk snapshot stopped'));
    await (stream ?? this.startStream());
  }

  private async releaseHeld(schemas: Map<string, TableSchema>): Promise<void> {
    const recorded = await this.store!.readProgress();
    for (const [name, row] of recorded)
      if (row.direct && schemas.has(name)) await this.store!.writeProgress({ ...row, direct: false });
  }

  /** attachSlot: tables without a finished snapshot are recorded done, so nothing is snapshotted. */
  private async markCopied(schemas: Map<string, TableSchema>): Promise<void> {
    const recorded = await this.store!.readProgress();
    for (const s of schemas.values()) {
      if (recorded.get(`${s.schema}.${s.table}`)?.state === 'done') continue;
      await this.store!.writeProgress({
        schema: s.schema,
        table: s.table,
        state: 'done',
        lastKey: null,
        rowsDone: 0,
        rowsEstimated: 0,
        snapshotLsn: null,
      });
    }
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

  /** A failure found beside the stream (the catalog watch): the stream stops where it is, nothing more is confirmed. */
  private halt(err: TealError): void {
    this.fail(err);
    this.abort.abort();
    this.catalogWatch?.stop();
    this.heartbeat?.stop();
    void this.loop?.close();
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
      let paused: boolean;
      try {
        paused = await this.store!.isPaused(controlKey('paused', this.config));
      } catch (err) {
        // Green unreachable is no change: the last known flag holds until green answers.
        if (!this.pauseUnreadable)
          this.log.warn(
            { err, paused: this.paused },
            'cannot read the pause flag in green; keeping the last known value',
          );
        this.pauseUnreadable = true;
        return;
      }
      if (this.pauseUnreadable) this.log.info({ paused }, 'pause flag readable again');
      this.pauseUnreadable = false;
      if (paused === this.paused) return;
      this.paused = paused;
      this.log.info({ paused }, paused ? 'paused: not reading the slot' : 'resumed');
      if (!paused) for (const wake of this.pauseWaiters.splice(0)) wake();
      if (this.loop?.streaming && !this.copying) this.setState(paused ? 'paused' : 'streaming');
    });
    every(this.deps.statusIntervalMs ?? 1000, () => this.writeStatus());
  }

  private async writeStatus(): Promise<void> {
    // Only a producer that has its slot may say so: the next start trusts `slotCreated`.
    if (!this.slotReady) return;
    await this.slotLag?.measure(this.loop?.confirmedLsn, this.lastCommitTimeUs).catch(() => {});
    this.store?.writeControl(controlKey('producer', this.config), {
      ...this.status(),
      slotCreated: true,
      pid: process.pid,
      updatedAt: new Date().toISOString(),
    });
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.abort.abort();
    for (const t of this.timers) clearInterval(t);
    this.catalogWatch?.stop();
    this.heartbeat?.stop();
    this.layouts?.close();
    for (const wake of this.pauseWaiters.splice(0)) wake();
    await this.loop?.close();
    await Promise.race([this.background, abortableDelay(5000)]);
    if (this.state !== 'failed') {
      await this.writeStatus().catch(() => {});
      this.state = 'stopped';
    }
    // What green has not taken by now is lost; the next start resumes from what it holds.
    await this.store
      ?.flushed(3_000)
      .catch((err) => this.log.warn({ err }, 'green did not take the last state writes before the stop'));
    this.store?.close();
    await this.holder?.end().catch(() => {});
    await this.kafka?.close();
    await this.blue?.end().catch(() => {});
    await this.green?.end().catch(() => {});
  }
}
