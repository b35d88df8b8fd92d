import { Consumer, ListOffsetTimestamps } from '@platformatic/kafka';
import type { TealError } from '@teal/errors';
import { withRetry } from '@teal/runtime';
import {
  CoalescedCommits,
  DEFAULT_BATCH_BYTES,
  FETCH_BYTES,
  handleInPlace,
  settles,
  sliceByBytes,
  tpKey,
} from '../group-batches.ts';
import { log } from '../log.ts';
import type {
  GroupConsumer,
  GroupConsumerOptions,
  GroupHandlers,
  IncomingRecord,
  KafkaOptions,
  TopicPartition,
} from '../types.ts';
import { PlatformaticAdmin } from './admin.ts';
import { checkSecurity, platformaticOptions } from './connection.ts';
import { wrapPlatformaticError } from './errors.ts';

// teal's GroupConsumer on @platformatic/kafka's Consumer, used for group membership only
// (join, sync, heartbeats, rejoin on rebalance: the library runs them in the background).
// Fetching is our own loop over the raw Fetch API: platformatic's MessagesStream hands out
// one object (with a Map of headers) per record and has no per-partition batches or seek;
// the raw response already holds each record's key and value as Buffers.
// The rules kept, as in the kafkajs adapter:
// - batches of one partition are handed out one at a time, in offset order; a partition is
//   fetched again only once the handler returned for its previous batch;
// - after each join, onAssign runs before any batch of the new assignment is fetched, and
//   a batch of an older assignment stops at its next slice or retry (a generation counter);
// - a failing handler is retried in place, so a failed batch is never skipped;
// - a seek while a fetch is in flight drops that partition's part of the response.

const ASSIGN_WAIT_MS = 5_000;
/** How long the broker holds a fetch with nothing new (also what an idle partition waits). */
const FETCH_WAIT_MS = 100;
const TOPIC_POLL_MS = 3_000;

interface PartitionState {
  topic: string;
  partition: number;
  /** The next offset to fetch. */
  next: bigint;
}

type FetchResponse = Awaited<ReturnType<Consumer<Buffer, Buffer, Buffer, Buffer>['fetch']>>;
const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

type Fetched = FetchResponse['responses'][number]['partitions'][number];

/** Records of one fetched partition at `from` or later, as teal's IncomingRecords. */
function toIncoming(topic: string, partition: number, fetched: Fetched, from: bigint): IncomingRecord[] {
  const out: IncomingRecord[] = [];
  for (const batch of fetched.records ?? []) {
    if (batch.attributes & 0x20) continue; // a control batch (transaction marker)
    const base = batch.firstTimestamp;
    for (const r of batch.records) {
      const offset = batch.firstOffset + BigInt(r.offsetDelta);
      if (offset < from) continue;
      // teal's change records carry no headers: one shared empty object, none per record.
      let headers = NO_HEADERS;
      if (r.headers.length > 0) {
        headers = {};
        for (const [name, value] of r.headers)
          if (name) headers[name.toString()] = value ? value.toString() : '';
      }
      out.push({
        topic,
        partition,
        offset,
        key: r.key ?? null,
        value: r.value ?? null,
        headers,
        timestampMs: Number(base + r.timestampDelta),
      });
    }
  }
  return out;
}

/** The offset after the last batch of a fetched partition (control batches count), or undefined. */
function nextAfter(fetched: Fetched): bigint | undefined {
  const batches = fetched.records;
  if (!batches?.length) return undefined;
  const last = batches[batches.length - 1]!;
  return last.firstOffset + BigInt(last.lastOffsetDelta) + 1n;
}

export class PlatformaticGroupConsumer implements GroupConsumer {
  private readonly consumer: Consumer<Buffer, Buffer, Buffer, Buffer>;
  private readonly admin: PlatformaticAdmin;
  private handlers: GroupHandlers | undefined;
  private topics = new Set<string>();
  /** The current assignment, once its onAssign settled. */
  private readonly assignment = new Map<string, PartitionState>();
  /** Bumped at each join: a batch of an older generation stops handing out slices. */
  private generation = 0;
  private assigning: Promise<void> | undefined;
  /** Partitions whose handler has not returned yet (by key): not fetched meanwhile. */
  private readonly handling = new Map<string, Promise<void>>();
  private readonly commits = new CoalescedCommits((offsets) =>
    this.consumer.commit({ offsets: offsets.map((o) => ({ ...o, leaderEpoch: -1 })) }),
  );
  private paused = false;
  private closed = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private timers: NodeJS.Timeout[] = [];
  private rotate = 0;
  private readonly batchBytes: number;
  private readonly fetchOptions: { maxWaitTime: number; minBytes: number; maxBytes: number };
  private readonly partitionMaxBytes: number;

  constructor(
    private readonly kafkaOptions: KafkaOptions,
    private readonly options: GroupConsumerOptions,
  ) {
    this.batchBytes = options.maxBytesPerPartition ?? DEFAULT_BATCH_BYTES;
    const largest = kafkaOptions.maxMessageBytes ?? 0;
    // Each partition (and the fetch) may carry the largest record teal writes (see the kafkajs
    // adapter); the handler gets it in slices of batchBytes.
    this.partitionMaxBytes = Math.max(this.batchBytes, largest);
    this.fetchOptions = { maxWaitTime: FETCH_WAIT_MS, minBytes: 1, maxBytes: Math.max(FETCH_BYTES, largest) };
    this.admin = new PlatformaticAdmin(kafkaOptions);
    this.consumer = new Consumer<Buffer, Buffer, Buffer, Buffer>({
      ...platformaticOptions(kafkaOptions, 'consumer'),
      groupId: options.groupId,
      autocommit: false,
      // A killed consumer holds its partitions until this expires; handlers return within
      // seconds (apply lanes), and heartbeats run beside them.
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
      rebalanceTimeout: 30_000,
    });
    this.consumer.on('consumer:group:join', (payload) => this.joined(payload.assignments ?? []));
    // A rejoin that failed for good: try again (an unhandled 'error' would end the process).
    this.consumer.on('error', (err: unknown) => {
      if (this.closed) return;
      log().warn({ err }, 'the Kafka consumer group failed; joining again');
      this.later(1_000, () => void this.join());
    });
  }

  async run(handlers: GroupHandlers): Promise<void> {
    this.handlers = handlers;
    await checkSecurity(this.kafkaOptions);
    this.topics = new Set(await this.matchingTopics());
    // As the kafkajs adapter's connect: a broker still starting is waited for, up to a minute.
    if (this.topics.size > 0)
      await withRetry(() => this.join(), {
        isRetriable: (err) => !this.closed && (err as TealError).retriable === true,
        deadlineMs: 60_000,
      });
    this.timers.push(setInterval(() => void this.checkNewTopics(), TOPIC_POLL_MS));
    for (const t of this.timers) t.unref();
    this.loop = this.fetchLoop();
  }

  private later(ms: number, fn: () => void): void {
    const timer = setTimeout(fn, ms);
    timer.unref();
  }

  private async matchingTopics(): Promise<string[]> {
    return (await this.admin.listTopics()).filter((t) => this.options.topics.test(t));
  }

  private async join(): Promise<void> {
    this.consumer.topics.trackAll(...this.topics);
    try {
      await this.consumer.joinGroup({});
    } catch (err) {
      if (this.closed) return;
      throw wrapPlatformaticError(err, 'cannot join the Kafka consumer group', this.kafkaOptions);
    }
  }

  private async checkNewTopics(): Promise<void> {
    if (this.closed) return;
    try {
      const now = await this.matchingTopics();
      if (now.some((t) => !this.topics.has(t))) {
        this.topics = new Set(now);
        log().info({ topics: now.length }, 'new topics matched; joining the group again');
        await this.join();
      }
    } catch (err) {
      log().warn({ err }, 'cannot list or subscribe topics');
    }
  }

  /** A (re)join: nothing is fetched until onAssign has said where each partition starts. */
  private joined(assignments: Array<{ topic: string; partitions: number[] }>): void {
    const generation = ++this.generation;
    this.assignment.clear();
    const assigned: TopicPartition[] = assignments.flatMap((a) =>
      a.partitions.map((partition) => ({ topic: a.topic, partition })),
    );
    const assigning = this.startOffsets(assigned).then(
      (starts) => {
        if (generation !== this.generation) return;
        for (const tp of assigned) {
          const key = tpKey(tp.topic, tp.partition);
          this.assignment.set(key, { ...tp, next: starts.get(key) ?? 0n });
        }
      },
      (err) => {
        // No start known: join again rather than fetch from a guess.
        log().error({ err }, 'cannot compute start offsets after assignment; joining the group again');
        if (generation === this.generation) this.later(1_000, () => void this.join());
      },
    );
    this.assigning = assigning;
    void assigning.finally(() => {
      if (this.assigning === assigning) this.assigning = undefined;
      this.poke();
    });
  }

  /** onAssign's offsets; the others from the group's committed offset, else the log start. */
  private async startOffsets(assigned: TopicPartition[]): Promise<Map<string, bigint>> {
    const starts = new Map((await this.handlers?.onAssign?.(assigned)) ?? []);
    const rest = assigned.filter((tp) => !starts.has(tpKey(tp.topic, tp.partition)));
    if (rest.length === 0) return starts;
    const byTopic = new Map<string, number[]>();
    for (const tp of rest) byTopic.set(tp.topic, [...(byTopic.get(tp.topic) ?? []), tp.partition]);
    const committed = await this.consumer.listCommittedOffsets({
      topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })),
    });
    for (const tp of rest) {
      const offset = committed.get(tp.topic)?.[tp.partition];
      if (offset !== undefined && offset >= 0n) starts.set(tpKey(tp.topic, tp.partition), offset);
      else starts.set(tpKey(tp.topic, tp.partition), await this.earliestOffset(tp.topic, tp.partition));
    }
    return starts;
  }

  private poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private async fetchLoop(): Promise<void> {
    let delay = 200;
    while (!this.closed) {
      const ready = this.readyPartitions();
      if (ready.length === 0) {
        await this.idle(500);
        continue;
      }
      try {
        await this.fetchOnce(ready);
        delay = 200;
      } catch (err) {
        if (this.closed) return;
        log().warn({ err }, 'Kafka fetch failed; retrying');
        await this.idle(delay);
        delay = Math.min(delay * 2, 5_000);
      }
    }
  }

  /** Assigned partitions with no handler running, unless paused or between assignments. */
  private readyPartitions(): PartitionState[] {
    if (this.paused || this.assigning || this.handling.size >= (this.options.concurrency ?? 4)) return [];
    const ready = [...this.assignment.values()].filter(
      (p) => !this.handling.has(tpKey(p.topic, p.partition)),
    );
    // A record larger than the partition limit comes only first in a fetch (KIP-74): rotate
    // the order so that no partition always stands behind a busy one.
    const shift = this.rotate++ % Math.max(ready.length, 1);
    return [...ready.slice(shift), ...ready.slice(0, shift)];
  }

  private async fetchOnce(ready: PartitionState[]): Promise<void> {
    const metadata = await this.consumer.metadata({ topics: [...new Set(ready.map((p) => p.topic))] });
    const byNode = new Map<number, PartitionState[]>();
    for (const p of ready) {
      const leader = metadata.topics.get(p.topic)?.partitions[p.partition]?.leader;
      if (leader === undefined || leader < 0) continue;
      byNode.set(leader, [...(byNode.get(leader) ?? []), p]);
    }
    if (byNode.size === 0) {
      await this.consumer.metadata({ topics: [...this.topics], forceUpdate: true });
      await this.idle(200);
      return;
    }
    const generation = this.generation;
    await Promise.all(
      [...byNode].map(async ([node, parts]) => {
        const requested = new Map(parts.map((p) => [tpKey(p.topic, p.partition), p.next]));
        const topicIds = new Map<string, string>();
        const topics = parts.map((p) => {
          const topicId = metadata.topics.get(p.topic)!.id;
          topicIds.set(topicId, p.topic);
          return {
            topicId,
            partitions: [
              {
                partition: p.partition,
                fetchOffset: p.next,
                partitionMaxBytes: this.partitionMaxBytes,
                // No epoch check: a leader change shows as a fetch error, then fresh metadata.
                currentLeaderEpoch: -1,
                lastFetchedEpoch: -1,
              },
            ],
          };
        });
        let response: FetchResponse;
        try {
          response = await this.consumer.fetch({ ...this.fetchOptions, node, topics });
        } catch (err) {
          if (await this.outOfRange(err, topicIds, requested, generation)) return;
          await this.consumer
            .metadata({ topics: [...this.topics], forceUpdate: true })
            .catch(() => undefined);
          throw wrapPlatformaticError(err, 'cannot fetch from Kafka', this.kafkaOptions);
        }
        this.dispatch(response, topicIds, requested, generation);
      }),
    );
  }

  /**
   * A fetch below the log start (retention): that partition goes on from the log start, as
   * kafkajs does (the applier then sees the gap and blocks it); the partitions fetched with it
   * are handed out from the same response. False when `err` is something else.
   */
  private async outOfRange(
    err: unknown,
    topicIds: Map<string, string>,
    requested: Map<string, bigint>,
    generation: number,
  ): Promise<boolean> {
    const e = err as { response?: FetchResponse; findBy?: (p: string, v: unknown) => unknown };
    if (!e.findBy?.('apiId', 'OFFSET_OUT_OF_RANGE') || !e.response) return false;
    for (const t of e.response.responses) {
      const topic = topicIds.get(t.topicId);
      for (const p of t.partitions) {
        if (p.errorCode === 0 || topic === undefined) continue;
        const state = this.assignment.get(tpKey(topic, p.partitionIndex));
        if (!state || state.next !== requested.get(tpKey(topic, p.partitionIndex))) continue;
        // The broker leaves the log start out (-1) of some answers: then ask for it.
        const logStart =
          p.logStartOffset >= 0n ? p.logStartOffset : await this.earliestOffset(topic, p.partitionIndex);
        log().warn(
          { topic, partition: p.partitionIndex, from: String(state.next), logStart: String(logStart) },
          'fetch offset out of range; reading on from the log start',
        );
        if (state.next === requested.get(tpKey(topic, p.partitionIndex))) state.next = logStart;
      }
    }
    this.dispatch(e.response, topicIds, requested, generation);
    return true;
  }

  private dispatch(
    response: FetchResponse,
    topicIds: Map<string, string>,
    requested: Map<string, bigint>,
    generation: number,
  ): void {
    if (generation !== this.generation || this.closed) return;
    const fetchedAtMs = Date.now();
    for (const t of response.responses) {
      const topic = topicIds.get(t.topicId);
      if (topic === undefined) continue;
      for (const fetched of t.partitions) {
        const key = tpKey(topic, fetched.partitionIndex);
        const state = this.assignment.get(key);
        const from = requested.get(key);
        // Not asked this time (a fetch session's leftover), revoked, or seeked meanwhile.
        if (from === undefined || !state || state.next !== from || fetched.errorCode !== 0) continue;
        const next = nextAfter(fetched);
        if (next === undefined) continue;
        state.next = next;
        const records = toIncoming(topic, fetched.partitionIndex, fetched, from);
        if (records.length === 0) continue;
        const run = this.handle(key, records, fetched.highWatermark, fetchedAtMs, generation);
        this.handling.set(key, run);
        void run.finally(() => {
          this.handling.delete(key);
          this.poke();
        });
      }
    }
  }

  private async handle(
    key: string,
    records: IncomingRecord[],
    highWatermark: bigint,
    fetchedAtMs: number,
    generation: number,
  ): Promise<void> {
    if (this.assigning) await settles(this.assigning, ASSIGN_WAIT_MS);
    const stale = () => this.closed || generation !== this.generation || !this.assignment.has(key);
    const { topic, partition } = records[0]!;
    for (const slice of sliceByBytes(records, this.batchBytes)) {
      const handled = await handleInPlace(
        this.handlers!,
        { topic, partition, records: slice, highWatermark, fetchedAtMs },
        stale,
      );
      if (!handled) return;
    }
  }

  seek(topic: string, partition: number, offset: bigint): void {
    const state = this.assignment.get(tpKey(topic, partition));
    // Not assigned here any more: the member that has it starts from green's position.
    if (state) state.next = offset;
  }

  async earliestOffset(topic: string, partition: number): Promise<bigint> {
    try {
      const offsets = await this.consumer.listOffsets({
        topics: [topic],
        partitions: { [topic]: [partition] },
        timestamp: ListOffsetTimestamps.EARLIEST,
      });
      return offsets.get(topic)?.[partition] ?? 0n;
    } catch (err) {
      throw wrapPlatformaticError(err, `cannot read the log start offset of ${topic}[${partition}]`);
    }
  }

  async commit(topic: string, partition: number, nextOffset: bigint): Promise<void> {
    this.commits.add(topic, partition, nextOffset);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.poke();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.poke();
    await this.loop?.catch(() => undefined);
    await Promise.allSettled(this.handling.values());
    await this.commits.close();
    await this.consumer
      .close(true)
      .catch((err: unknown) => log().debug({ err }, 'closing the Kafka consumer'));
    await this.admin.close();
  }
}
