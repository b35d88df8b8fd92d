import { tableTopic } from '@teal/change-event';
import { TealError } from '@teal/errors';
import type { TopicAdmin } from '@teal/kafka';
import { readAppliedPositions } from '@teal/postgres';
import { type Logger, rootLogger } from '@teal/runtime';
import type pg from 'pg';
import { type OrderedDecision, type OrderedTableRef, readOrderedTables } from './ordered-tables.ts';
import type { StateStore } from './state-store.ts';

// How a table's records sit on its topic's partitions, and the guard that keeps one key's
// history on one partition (contract item 2). A key's partition is murmur2(key) mod the
// partition count, or 0 for an ordered table; the producer assigns it itself, from the count
// it read once, so neither Kafka client moves a key when its metadata learns of new partitions.
// The layout (count, ordered) each topic was written with is kept in green (teal.control
// `topic_layout:<prefix>`). When it differs at a start (an operator ran kafka-topics --alter,
// or a table became ordered), the new one is taken only once green has applied every record
// of the topic: then no older record of a key waits on its old partition. Otherwise the
// producer refuses with TEAL_TOPIC_PARTITIONS_CHANGED. While streaming, the counts are read
// again every `checkIntervalMs` and before every truncate (which goes to each partition); a
// change stops the producer the same way (docs/architecture.md).

type Queryable = Pick<pg.ClientBase, 'query'>;

export interface TopicLayout {
  readonly topic: string;
  /** The partition count keys are hashed over (the one recorded for the topic). */
  readonly partitions: number;
  /** Every record (and truncate) goes to partition 0. */
  readonly ordered: boolean;
  /** The largest record batch the topic takes: kafka.maxMessageBytes, or the topic's lower limit. */
  readonly maxRecordBytes: number;
  /** Whether the limit is the topic's own (it could not be raised to kafka.maxMessageBytes). */
  readonly limitIsTopics: boolean;
}

interface StoredLayout {
  partitions: number;
  ordered: boolean;
}

export interface TopicLayoutsOptions {
  admin: TopicAdmin;
  /** kafka.topicPrefix: start() resolves the topics of the tables it is given. */
  prefix?: string;
  /** Partitions of a topic teal creates (kafka.partitions). */
  partitions: number;
  /** kafka.maxMessageBytes; absent: no limit of teal's own (tests). */
  maxMessageBytes?: number;
  /** config.ordered. */
  ordered?: Readonly<Record<string, boolean>>;
  /** Blue, for the ordered decision of tables not known at start; absent: nothing is ordered. */
  blue?: Queryable;
  /** Green's pool (applied positions) and the producer's store (teal.control); absent: nothing is recorded. */
  green?: Queryable;
  store?: Pick<StateStore, 'readControlUntilAnswered' | 'writeControl' | 'flushed'>;
  /** teal.control key of this pipeline's layouts (`controlKey('topic_layout', config)`). */
  controlKey?: string;
  /** How often partition counts are read again while streaming (default 10 s). */
  checkIntervalMs?: number;
  log?: Logger;
}

/** The producer stops for these: a restart from the slot cannot fix them (the operator must). */
export function stopsProducer(err: unknown): err is TealError {
  return (
    err instanceof TealError &&
    (err.code === 'TEAL_ROW_TOO_LARGE' || err.code === 'TEAL_TOPIC_PARTITIONS_CHANGED')
  );
}

const same = (a: StoredLayout, b: StoredLayout) =>
  a.ordered === b.ordered && (a.ordered || a.partitions === b.partitions);

const describe = (l: StoredLayout) =>
  l.ordered ? 'all on partition 0 (ordered)' : `over ${l.partitions} partitions`;

export class TopicLayouts {
  private readonly stored = new Map<string, StoredLayout>();
  private readonly decisions = new Map<string, OrderedDecision>();
  private readonly pending = new Map<string, Promise<TopicLayout>>();
  /** Layouts of the table topics that are checked for partition changes. */
  private readonly tracked = new Map<string, TopicLayout>();
  private readonly untracked = new Map<string, TopicLayout>();
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  private readonly log: Logger;
  /** Set when a topic's partition count changed under the producer; the publisher stops on it. */
  failure: TealError | undefined;

  constructor(private readonly opts: TopicLayoutsOptions) {
    this.log = opts.log ?? rootLogger().child({ component: 'producer' });
  }

  /**
   * Reads the recorded layouts, decides (and logs) which of `tables` are ordered, and resolves
   * their topics: a layout that changed and may not be taken yet refuses the start.
   */
  async start(tables: readonly OrderedTableRef[]): Promise<void> {
    const { store, controlKey, blue } = this.opts;
    if (store && controlKey) {
      const recorded = await store.readControlUntilAnswered<Record<string, StoredLayout>>(controlKey);
      for (const [topic, layout] of Object.entries(recorded ?? {})) this.stored.set(topic, layout);
    }
    if (blue) {
      const decided = await readOrderedTables(blue, tables, this.opts.ordered ?? {});
      for (const [name, d] of decided) this.decisions.set(name, d);
      const ordered = [...decided].filter(([, d]) => d.ordered);
      this.log.info(
        {
          ordered: Object.fromEntries(ordered.map(([name, d]) => [name, d.reason])),
          optedOut: [...decided].filter(([, d]) => !d.ordered && d.reason.includes('config')).map(([n]) => n),
        },
        ordered.length === 0
          ? 'no ordered tables: every table spreads its keys over its partitions'
          : `ordered tables (every record on partition 0, applied in commit order): ${ordered.map(([n]) => n).join(', ')}`,
      );
    }
    const prefix = this.opts.prefix;
    if (prefix !== undefined) {
      // A few at a time: each is a CreateTopics and a metadata request or two.
      for (let i = 0; i < tables.length; i += 16)
        await Promise.all(
          tables.slice(i, i + 16).map((t) => this.layoutOf(tableTopic(prefix, t.schema, t.table), t)),
        );
      // Recorded before the first record goes: a producer killed right after its first start
      // must not leave topics that hold records and no layout.
      await this.opts.store?.flushed(5_000).catch((err) => {
        this.log.warn({ err }, 'green did not take the topic layouts yet; they are written when it answers');
      });
    }
    const interval = this.opts.checkIntervalMs ?? 10_000;
    if (interval > 0) {
      this.timer = setInterval(() => void this.checkAll(), interval);
      this.timer.unref();
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The layout of a known topic (after layoutOf resolved). */
  cached(topic: string): TopicLayout | undefined {
    return this.tracked.get(topic) ?? this.untracked.get(topic);
  }

  /**
   * Creates the topic when missing and returns how to write it. `table` given: a table topic,
   * recorded and guarded; without: a topic keyed by something else (`_messages`), spread by key.
   */
  layoutOf(topic: string, table?: OrderedTableRef): Promise<TopicLayout> {
    let pending = this.pending.get(topic);
    if (!pending) {
      pending = this.resolve(topic, table);
      pending.catch(() => this.pending.delete(topic));
      this.pending.set(topic, pending);
    }
    return pending;
  }

  private async resolve(topic: string, table?: OrderedTableRef): Promise<TopicLayout> {
    const state = await this.opts.admin.ensureTopic(topic, { partitions: this.opts.partitions });
    const teal = this.opts.maxMessageBytes ?? Number.POSITIVE_INFINITY;
    const topicLimit = state.maxMessageBytes ?? Number.POSITIVE_INFINITY;
    const limits = { maxRecordBytes: Math.min(teal, topicLimit), limitIsTopics: topicLimit < teal };
    if (!table) {
      const layout = { topic, partitions: state.partitions, ordered: false, ...limits };
      this.untracked.set(topic, layout);
      return layout;
    }
    const name = `${table.schema}.${table.table}`;
    const ordered = (await this.decide(name, table)).ordered;
    const now: StoredLayout = { partitions: state.partitions, ordered };
    const before = this.stored.get(topic) ?? (await this.unrecorded(topic, now));
    if (before && !same(before, now)) await this.adopt(topic, name, before, now);
    if (!before || !same(before, now) || before.partitions !== now.partitions) this.record(topic, now);
    const layout = { topic, partitions: now.partitions, ordered, ...limits };
    this.tracked.set(topic, layout);
    return layout;
  }

  private async decide(name: string, table: OrderedTableRef): Promise<OrderedDecision> {
    const known = this.decisions.get(name);
    if (known) return known;
    const configured = this.opts.ordered ?? {};
    const decision = this.opts.blue
      ? (await readOrderedTables(this.opts.blue, [table], configured)).get(name)!
      : { ordered: configured[name] === true, reason: 'config' };
    this.decisions.set(name, decision);
    if (decision.ordered) this.log.info({ table: name, reason: decision.reason }, `${name} is ordered`);
    return decision;
  }

  /**
   * A topic with no recorded layout: nothing to compare when it is empty. One that holds
   * records was written by a teal that recorded none, which spread every table by key.
   */
  private async unrecorded(topic: string, now: StoredLayout): Promise<StoredLayout | undefined> {
    if (!this.opts.green) return undefined;
    const [starts, ends] = await Promise.all([
      this.opts.admin.logStartOffsets(topic),
      this.opts.admin.logEndOffsets(topic),
    ]);
    const holds = ends.some((e) => e.end > (starts.find((s) => s.partition === e.partition)?.start ?? 0n));
    return holds ? { partitions: now.partitions, ordered: false } : undefined;
  }

  /** A changed layout is taken only when green applied every record of the topic. */
  private async adopt(topic: string, name: string, before: StoredLayout, now: StoredLayout): Promise<void> {
    const unapplied = await this.unapplied(topic);
    if (unapplied.length === 0) {
      this.log.info(
        { topic, table: name, before, now },
        `${topic}: layout changed from ${describe(before)} to ${describe(now)}; green has applied every record, so the new one is taken`,
      );
      return;
    }
    const what =
      before.ordered !== now.ordered
        ? `${name} is ${now.ordered ? 'ordered' : 'not ordered'} now (${this.decisions.get(name)?.reason}), so its records go ${describe(now)}; teal wrote them ${describe(before)} before`
        : `topic ${topic} has ${now.partitions} partitions now, but teal wrote it with ${before.partitions}`;
    const keep =
      before.ordered !== now.ordered
        ? `; or keep the old layout with ordered: { "${name}": ${before.ordered} } in teal.config.ts`
        : ' (Kafka cannot take partitions away again)';
    throw new TealError(
      'TEAL_TOPIC_PARTITIONS_CHANGED',
      `${what} (teal.control "${this.opts.controlKey}"): a key's next records would land on another partition than its ` +
        `earlier ones, which green has not all applied yet (${unapplied.join(', ')}), and the two partitions apply in ` +
        'parallel, so an older row image could win. Let the consumer apply the topic (teal status shows its lag), then ' +
        `start the producer again: it takes the new layout once green has applied every record${keep}`,
      { details: { topic, before, now, unapplied } },
    );
  }

  /** Partitions of `topic` holding records green has not applied: "p<n>: applied <a> of <end>". */
  private async unapplied(topic: string): Promise<string[]> {
    const [starts, ends, applied] = await Promise.all([
      this.opts.admin.logStartOffsets(topic),
      this.opts.admin.logEndOffsets(topic),
      this.opts.green ? readAppliedPositions(this.opts.green, [topic]) : Promise.resolve([]),
    ]);
    const out: string[] = [];
    for (const { partition, end } of ends) {
      const start = starts.find((s) => s.partition === partition)?.start ?? 0n;
      if (end <= start) continue; // empty, or retention removed all of it
      const last = applied.find((a) => a.partition === partition)?.kafkaOffset ?? -1n;
      if (last < end - 1n) out.push(`partition ${partition}: applied up to offset ${last} of ${end - 1n}`);
    }
    return out;
  }

  private record(topic: string, layout: StoredLayout): void {
    this.stored.set(topic, layout);
    const { store, controlKey } = this.opts;
    if (store && controlKey) store.writeControl(controlKey, Object.fromEntries(this.stored));
  }

  /**
   * Reads the partition counts of `topics` (default: every table topic) now; throws and sets
   * `failure` when one differs from the count its keys are hashed over. Ordered topics write
   * partition 0 only, so their count does not matter.
   */
  async verify(topics?: readonly string[]): Promise<void> {
    if (this.failure) throw this.failure;
    const layouts = (topics ?? [...this.tracked.keys()])
      .map((t) => this.tracked.get(t))
      .filter((l): l is TopicLayout => l !== undefined && !l.ordered);
    if (layouts.length === 0) return;
    const counts = await this.opts.admin.partitionCounts(layouts.map((l) => l.topic));
    for (const layout of layouts) {
      const now = counts.get(layout.topic) ?? 0;
      if (now === layout.partitions) continue;
      this.failure ??= new TealError(
        'TEAL_TOPIC_PARTITIONS_CHANGED',
        `topic ${layout.topic} went from ${layout.partitions} to ${now} partitions while teal wrote it (kafka-topics --alter?): ` +
          `teal kept hashing keys over ${layout.partitions} and stopped before writing with the new count, because a key's ` +
          'next records would land on another partition than its earlier ones, and the two apply in parallel. Let the ' +
          'consumer apply the topic (teal status shows its lag), then start the producer again: it takes the new count ' +
          'once green has applied every record of the topic',
        { details: { topic: layout.topic, before: layout.partitions, now } },
      );
      this.log.error({ err: this.failure }, 'partition count changed; stopping the producer');
      throw this.failure;
    }
  }

  private async checkAll(): Promise<void> {
    if (this.checking || this.failure) return;
    this.checking = true;
    try {
      await this.verify();
    } catch (err) {
      if (!this.failure) this.log.debug({ err }, 'cannot read partition counts; trying again later');
    } finally {
      this.checking = false;
    }
  }
}
