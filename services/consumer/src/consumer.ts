import {
  deadLetterTopic,
  formatPosition,
  SchemaCache,
  schemasTopic,
  tableOfTopic,
  tableTopicPattern,
} from '@teal/change-event';
import { compileTransforms, type ResolvedConfig } from '@teal/config';
import { redactUrl, TealError } from '@teal/errors';
import { type GroupConsumer, KafkaClient, SchemaTopic } from '@teal/kafka';
import { controlKey, createPool, ensureGreenState, isHeldBack } from '@teal/postgres';
import { abortableDelay, type Logger, rootLogger, type TealMetrics } from '@teal/runtime';
import type pg from 'pg';
import { Applier, type SchemaSource } from './applier.ts';
import { ApplyLanes } from './apply-lanes.ts';
import { DeadLetterWriter } from './dead-letter.ts';
import { GreenCatalog } from './green-catalog.ts';
import { MisplacedFetch } from './offset-contiguity.ts';

// Kafka -> green. One consumer group over every table topic of the prefix (new tables are
// picked up); partitions apply in parallel, each in order, through the Applier. Pause and
// resume come from green's teal.control (so a separate API process can drive them), and the
// consumer's status is written back there every second.

export interface PartitionStatus {
  topic: string;
  partition: number;
  /** Last Kafka offset applied or skipped; -1 when none. */
  appliedOffset: string;
  /** Highest applied position, "LSN:seq". */
  appliedPosition: string;
  highWatermark: string;
  lag: number;
  blocked?: { reason: string };
}

export interface ConsumerStatus {
  state: 'starting' | 'running' | 'paused' | 'failed';
  partitions: PartitionStatus[];
  deadLetters: number;
  error?: string;
}

export interface ConsumerDeps {
  metrics?: TealMetrics;
  logger?: Logger;
  groupId?: string;
  /** Partitions applied at once (kafka concurrency). Default 4. */
  concurrency?: number;
  /** The target sessions' name and startup settings (the reverse apply: the fence's writer token). */
  targetSession?: { applicationName: string; settings?: Readonly<Record<string, string>> };
}

const CONTROL_POLL_MS = 500;
const HELD_POLL_MS = 250;
const HELD_CACHE_MS = 1_000;
const SCHEMA_RELOAD_MIN_MS = 500;

export class Consumer {
  private readonly log: Logger;
  private readonly abort = new AbortController();
  private pool: pg.Pool | undefined;
  private kafka: KafkaClient | undefined;
  private group: GroupConsumer | undefined;
  private applier: Applier | undefined;
  private lanes: ApplyLanes | undefined;
  private timer: NodeJS.Timeout | undefined;
  private state: ConsumerStatus['state'] = 'starting';
  private error: string | undefined;
  private paused = false;
  private ticks = 0;
  private controlBusy = false;
  /** Table topics last seen not held back by a direct copy, with when. */
  private readonly freeTopics = new Map<string, number>();

  constructor(
    private readonly config: ResolvedConfig,
    private readonly deps: ConsumerDeps = {},
  ) {
    this.log = (deps.logger ?? rootLogger()).child({ component: 'consumer' });
  }

  async start(): Promise<void> {
    const { config } = this;
    const prefix = config.kafka.topicPrefix;
    try {
      const concurrency = this.deps.concurrency ?? 4;
      // A session green ends while its client is checked out but between queries (57P01,
      // a restart) fails the next query on it, and that failure is retried
      // (regression-consumer-green-terminate-crash).
      this.pool = createPool(config.green.url, {
        applicationName: 'teal-consumer',
        ...this.deps.targetSession,
        max: concurrency + 2,
        onConnectionError: (err) => this.log.warn({ err }, 'green connection failed'),
      });
      const kafka = new KafkaClient({
        brokers: [...config.kafka.brokers],
        clientId: 'teal-consumer',
        client: config.kafka.client,
        tls: config.kafka.tls,
        sasl: config.kafka.sasl,
        // The dead-letter topic takes, and the group fetches, records as large as the producer writes.
        maxMessageBytes: config.kafka.maxMessageBytes,
      });
      this.kafka = kafka;
      const schemas = new SchemaRegistry(new SchemaTopic(kafka, schemasTopic(prefix)), this.log);
      // Independent start-up steps overlap (each is a few round trips to green or Kafka).
      const [, deadLetters] = await Promise.all([
        ensureGreenState(this.pool),
        (async () => {
          const admin = kafka.admin();
          const writer = new DeadLetterWriter(await kafka.publisher(), deadLetterTopic(prefix));
          await writer.ensureTopic(admin, config.kafka.partitions);
          await admin.close();
          return writer;
        })(),
        schemas.reload(),
      ]);
      this.applier = new Applier({
        pool: this.pool,
        schemas,
        transforms: compileTransforms(config),
        catalog: new GreenCatalog(this.pool),
        deadLetters,
        apply: config.apply,
        ordered: config.ordered,
        topicPrefix: prefix,
        log: this.log,
        metrics: this.deps.metrics,
        signal: this.abort.signal,
        earliestOffset: (topic, partition) => this.earliestOffset(topic, partition),
      });
      const applier = this.applier;
      this.group = this.kafka.groupConsumer({
        groupId: this.deps.groupId ?? `${prefix}-consumer`,
        topics: tableTopicPattern(prefix),
        concurrency,
        // Bounds memory: a fetch holds at most this much per partition (~5,000 teal records).
        // With apply-lanes two rounds are in memory (one applying, one fetched); 1 MiB was as
        // fast as 2 MiB at 200k records and peaked ~90 MB lower.
        maxBytesPerPartition: 1024 * 1024,
      });
      const group = this.group;
      this.lanes = new ApplyLanes(
        async (batch) => {
          await this.whileHeldBack(batch.topic);
          let offset: bigint;
          try {
            offset = await applier.applyBatch(batch);
          } catch (err) {
            // Nothing of the batch was applied; the partition reads again from green's next offset.
            if (!(err instanceof MisplacedFetch) || !group.seek) throw err;
            this.log.warn({ topic: err.topic, partition: err.partition }, err.message);
            group.seek(err.topic, err.partition, err.next);
            return;
          }
          await group.commit(batch.topic, batch.partition, offset);
        },
        { log: this.log, signal: this.abort.signal },
      );
      const lanes = this.lanes;
      await this.pollControl();
      await group.run({
        onAssign: (assigned) => {
          lanes.assigned(assigned);
          return applier.assign(assigned);
        },
        // Returns once the batch has started (its partition's previous one applied): the next
        // fetch overlaps green's apply (apply-lanes.ts).
        eachBatch: (batch) => lanes.push(batch),
      });
      if (!this.paused) this.setState('running');
      this.timer = setInterval(() => void this.pollControl(), CONTROL_POLL_MS);
      this.timer.unref();
      this.log.info({ green: redactUrl(config.green.url), prefix }, 'consumer started');
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
      this.setState('failed');
      throw err;
    }
  }

  async stop(): Promise<void> {
    this.abort.abort();
    if (this.timer) clearInterval(this.timer);
    await this.group?.close().catch(() => undefined);
    await this.lanes?.drain();
    await this.kafka?.close().catch(() => undefined);
    await this.writeStatus().catch(() => undefined);
    await this.pool?.end().catch(() => undefined);
    this.pool = undefined;
  }

  // A table whose direct initial copy is under way (teal.snapshot_progress `direct`, written by
  // the producer before its stream starts) keeps its changes in Kafka until the copy is in
  // green: they come after the copy's rows (docs/architecture.md, "Direct initial copy"). Read
  // per batch, in green, so a separate consumer process agrees; holds only this partition.
  private async whileHeldBack(topic: string): Promise<void> {
    // A table seen free stays free for a second: at most one read per second and partition.
    const free = this.freeTopics.get(topic);
    if (free !== undefined && Date.now() - free < HELD_CACHE_MS) return;
    const name = tableOfTopic(topic, this.config.kafka.topicPrefix);
    const dot = name.indexOf('.');
    let logged = false;
    let readFailed = false;
    while (!this.abort.signal.aborted) {
      let held: boolean;
      try {
        held = await isHeldBack(this.pool!, name.slice(0, dot), name.slice(dot + 1));
      } catch (err) {
        // Not known is held: applying before the copy is in green would put stream changes
        // under the copy's rows. Green away: the apply could not run either; wait for it.
        if (!readFailed) this.log.warn({ err, topic }, 'cannot read whether the table is held back; waiting');
        readFailed = true;
        await abortableDelay(HELD_POLL_MS, this.abort.signal).catch(() => {});
        continue;
      }
      if (!held) {
        this.freeTopics.set(topic, Date.now());
        if (logged) this.log.info({ table: name }, 'direct copy done in green: applying its changes');
        return;
      }
      if (!logged)
        this.log.info(
          { table: name },
          'holding the changes of a table back until its direct copy is in green',
        );
      logged = true;
      await abortableDelay(HELD_POLL_MS, this.abort.signal).catch(() => {});
    }
    // Stopping while held: the batch must not be applied (ApplyLanes drops it once aborted).
    throw new TealError('TEAL_STOPPING', 'the consumer is stopping');
  }

  private async earliestOffset(topic: string, partition: number): Promise<bigint> {
    if (this.group?.earliestOffset) return this.group.earliestOffset(topic, partition);
    throw new TealError('TEAL_NOT_READY', `cannot read the earliest offset of ${topic}[${partition}]`, {
      retriable: true,
    });
  }

  status(): ConsumerStatus {
    const partitions: PartitionStatus[] = [];
    for (const p of this.applier?.partitions.values() ?? []) {
      const offset = p.stored?.kafkaOffset ?? -1n;
      const lag = p.highWatermark > offset + 1n ? Number(p.highWatermark - offset - 1n) : 0;
      partitions.push({
        topic: p.topic,
        partition: p.partition,
        appliedOffset: offset.toString(),
        appliedPosition: p.stored ? formatPosition(p.stored.position) : '0/0:0',
        highWatermark: p.highWatermark.toString(),
        lag,
        ...(p.blocked ? { blocked: { reason: p.blocked.reason } } : {}),
      });
    }
    partitions.sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
    return {
      state: this.state,
      partitions,
      deadLetters: this.applier?.deadLetterCount ?? 0,
      ...(this.error ? { error: this.error } : {}),
    };
  }

  private setState(state: ConsumerStatus['state']): void {
    this.state = state;
    const gauge = this.deps.metrics?.state;
    if (!gauge) return;
    for (const s of ['starting', 'running', 'paused', 'failed'])
      gauge.set({ state: `consumer_${s}` }, s === state ? 1 : 0);
  }

  // teal.control: `paused` (jsonb true) pauses fetching; every other tick the status goes
  // back as `consumer` (and `consumer_blocked`) for an API running in another process.
  private async pollControl(): Promise<void> {
    if (!this.pool || this.controlBusy) return;
    this.controlBusy = true;
    try {
      const { rows } = await this.pool.query<{ value: string | null }>(
        'SELECT value::text AS value FROM teal.control WHERE key = $1',
        [controlKey('paused', this.config)],
      );
      const paused = rows[0]?.value === 'true';
      if (paused !== this.paused) {
        this.paused = paused;
        if (paused) this.group?.pause();
        else this.group?.resume();
        this.log.info(paused ? 'consumer paused' : 'consumer resumed');
      }
      if (this.state !== 'failed' && this.group) this.setState(paused ? 'paused' : 'running');
      if (this.ticks++ % 2 === 0) await this.writeStatus();
    } catch (err) {
      this.log.warn({ err }, 'cannot read teal.control in green');
    } finally {
      this.controlBusy = false;
    }
  }

  private async writeStatus(): Promise<void> {
    if (!this.pool) return;
    const status = this.status();
    const blocked = status.partitions.filter((p) => p.blocked);
    this.deps.metrics?.blockedPartitions.set(blocked.length);
    await this.pool.query(
      `INSERT INTO teal.control (key, value, updated_at) VALUES ($3, $1::jsonb, now()), ($4, $2::jsonb, now())
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at`,
      [
        JSON.stringify(status),
        JSON.stringify(
          blocked.map((p) => ({ topic: p.topic, partition: p.partition, reason: p.blocked!.reason })),
        ),
        controlKey('consumer', this.config),
        controlKey('consumer_blocked', this.config),
      ],
    );
  }
}

/** The `_schemas` topic behind a SchemaCache; reloads are coalesced and spaced. */
class SchemaRegistry implements SchemaSource {
  readonly cache = new SchemaCache();
  private pending: Promise<void> | undefined;
  private lastLoad = 0;

  constructor(
    private readonly topic: SchemaTopic,
    private readonly log: Logger,
  ) {}

  reload(): Promise<void> {
    this.pending ??= this.load().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async load(): Promise<void> {
    const wait = this.lastLoad + SCHEMA_RELOAD_MIN_MS - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const all = await this.topic.loadAll();
    this.lastLoad = Date.now();
    for (const [fp, json] of all) {
      if (this.cache.has(fp)) continue;
      try {
        this.cache.add(fp, json);
      } catch (err) {
        this.log.error({ err, fingerprint: fp }, 'ignoring a corrupt entry of the schema topic');
      }
    }
  }
}
