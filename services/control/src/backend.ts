import { parseLsn } from '@teal/change-event';
import { compileTransforms, type ResolvedConfig, type ReversePlan, type TransformSet } from '@teal/config';
import { redactSecrets, redactUrl, TealError } from '@teal/errors';
import { KafkaClient, type TopicAdmin } from '@teal/kafka';
import { controlKey, ensureGreenState, readSlot, withClient, writeControlValue } from '@teal/postgres';
import { abortableDelay, createMetrics, type Logger, rootLogger, type TealMetrics } from '@teal/runtime';
import type pg from 'pg';
import { runCutover } from './cutover.ts';
import { countDeadLetters } from './dead-letters.ts';
import { drain, NOT_COUNTED, unfinishedSnapshots, waitApplied } from './drain.ts';
import { Exclusive } from './exclusive.ts';
import { fence, isFenced, OWN_APPLICATION_NAME, unfence } from './fence.ts';
import { type OnlineOptions, verifyDelta, verifyOnline } from './online-verify.ts';
import { readOnlineProgress, releaseChangeCapture } from './online-verify-store.ts';
import { type RollbackOptions, runRollback } from './rollback.ts';
import { createReverseSlot, dropReverseSlot, preflightRollback, recordReverse } from './rollback-prepare.ts';
import { copySequences } from './sequences.ts';
import { statusReport, updateGauges } from './status-derive.ts';
import { readAppliedPositions, readControl, readGreenSide, readTopicEnds } from './status-reads.ts';
import type {
  CutoverOptions,
  CutoverReport,
  DeadLetterCounts,
  DrainOptions,
  DrainResult,
  FenceResult,
  OnlineVerifyStatus,
  ReadyCheck,
  ReadyReport,
  StatusReport,
  VerifyReportView,
  VerifyRequest,
} from './types.ts';
import { verifyTables } from './verify.ts';

/** What the HTTP API needs; tests substitute a fake. */
export interface ControlBackend {
  status(): Promise<StatusReport>;
  pause(): Promise<{ paused: boolean }>;
  resume(): Promise<{ paused: boolean }>;
  drain(opts: DrainOptions): Promise<DrainResult>;
  cutover(opts: CutoverOptions): Promise<CutoverReport>;
  /** `teal rollback`: only the reverse pipeline's process (teal reverse) has it. */
  rollback?(opts: RollbackOptions): Promise<CutoverReport>;
  verify(opts: VerifyRequest): Promise<VerifyReportView>;
  fence(): Promise<FenceResult>;
  unfence(): Promise<FenceResult>;
  ready(): Promise<ReadyReport>;
  /** Refreshes the gauges the status feeds (called before a /metrics scrape). */
  collectMetrics?(): Promise<void>;
  close?(): Promise<void>;
}

/** Anything with a status() — the in-process Producer or Consumer. */
export interface StatusSource {
  status(): unknown;
}

export interface TealControlDeps {
  producer?: StatusSource;
  consumer?: StatusSource;
  metrics?: TealMetrics;
  logger?: Logger;
  /** Kafka admin; default: a KafkaClient on config.kafka.brokers. */
  admin?: TopicAdmin;
  transforms?: TransformSet;
  verifyTables?: typeof verifyTables;
  /** Drain poll interval, ms. */
  pollMs?: number;
  /** Counts the dead-letter topic; default: reads it (dead-letters.ts). */
  countDeadLetters?: () => Promise<DeadLetterCounts>;
  /** 'reverse' for the pipeline of `teal reverse` (its config is reverseConfig()'s); /status says it. */
  direction?: 'forward' | 'reverse';
}

// Every session the control plane opens carries this process's token (fence.ts), so a
// fence leaves exactly these alone.
const CONTROL_SESSION = { applicationName: OWN_APPLICATION_NAME, connectionTimeoutMillis: 5_000 };

/**
 * The control plane over blue, green and Kafka. It works in the pipeline's process (given
 * the Producer and Consumer, for their live status) and as a separate process, where every
 * answer comes from the three systems and the state the components keep in green.
 */
export class TealControl implements ControlBackend {
  readonly metrics: TealMetrics;
  private readonly log: Logger;
  private kafka: KafkaClient | undefined;
  private readonly admin: TopicAdmin;
  private transformSet: TransformSet | undefined;
  /** The drain or cutover that runs now; only one at a time. */
  private readonly running = new Exclusive();
  /** Online passes running in this process (on demand or in the background). */
  private onlinePasses = 0;
  /** Stops the background online verify (close), and its current pass (a cutover). */
  private readonly stopBackground = new AbortController();
  private backgroundPass: AbortController | undefined;
  private background: Promise<void> | undefined;

  constructor(
    readonly config: ResolvedConfig,
    private readonly deps: TealControlDeps = {},
  ) {
    this.metrics = deps.metrics ?? createMetrics();
    this.log = (deps.logger ?? rootLogger()).child({ component: 'control' });
    if (deps.admin) {
      this.admin = deps.admin;
    } else {
      this.kafka = new KafkaClient({
        brokers: [...config.kafka.brokers],
        clientId: 'teal-control',
        client: config.kafka.client,
        tls: config.kafka.tls,
        sasl: config.kafka.sasl,
      });
      this.admin = this.kafka.admin();
    }
    this.transformSet = deps.transforms;
    // In the pipeline's process (teal run), online verify keeps going at the configured pace.
    if (config.verify.onlineRowsPerSecond > 0 && (deps.producer || deps.consumer))
      this.background = this.runBackground(config.verify.onlineRowsPerSecond);
  }

  /** The client that reads topics (the dead letters); made on first use when an admin was given. */
  private get reader(): KafkaClient {
    this.kafka ??= new KafkaClient({
      brokers: [...this.config.kafka.brokers],
      clientId: 'teal-control',
      client: this.config.kafka.client,
      tls: this.config.kafka.tls,
      sasl: this.config.kafka.sasl,
    });
    return this.kafka;
  }

  private get transforms(): TransformSet {
    this.transformSet ??= compileTransforms(this.config);
    return this.transformSet;
  }

  private blue<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    return withClient(this.config.blue.url, CONTROL_SESSION, fn);
  }

  private green<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    return withClient(this.config.green.url, CONTROL_SESSION, fn);
  }

  async status(): Promise<StatusReport> {
    const [blueSide, greenSide, kafkaSide] = await Promise.all([
      this.blue(async (c) => ({ slot: await readSlot(c, this.config.slot), fenced: await isFenced(c) })),
      readGreenSide(
        () =>
          this.green(async (c) => ({
            control: await readControl(c),
            applied: await readAppliedPositions(c),
            online: await readOnlineProgress(c, this.config.kafka.topicPrefix).catch(() => null),
          })),
        { control: new Map(), applied: [], online: null },
      ),
      readTopicEnds(this.admin, this.config.kafka.topicPrefix),
    ]);
    const control = greenSide.control;
    const report = statusReport({
      config: this.config,
      slot: blueSide.slot,
      fenced: blueSide.fenced,
      stored: {
        producer: control.get(controlKey('producer', this.config)),
        consumer: control.get(controlKey('consumer', this.config)),
        consumerBlocked: control.get(controlKey('consumer_blocked', this.config)),
        paused: control.get(controlKey('paused', this.config)),
      },
      applied: greenSide.applied,
      topics: kafkaSide,
      live: { producer: this.deps.producer, consumer: this.deps.consumer },
      draining: this.running.running !== undefined,
      greenUnreachable: greenSide.unreachable,
      direction: this.deps.direction,
    });
    updateGauges(this.metrics, report);
    const online = greenSide.online;
    if (online || this.onlinePasses > 0) {
      const { tablesComplete, ...rest } = online ?? {
        tables: 0,
        tablesComplete: 0,
        chunksVerified: 0,
        chunksTotal: 0,
        asOfLsn: null,
        recheckPending: 0,
        mismatches: 0,
      };
      const view: OnlineVerifyStatus = { running: this.onlinePasses > 0, tablesComplete, ...rest };
      report.onlineVerify = view;
    }
    return report;
  }

  async collectMetrics(): Promise<void> {
    await this.status();
  }

  pause(): Promise<{ paused: boolean }> {
    return this.setPaused(true);
  }

  resume(): Promise<{ paused: boolean }> {
    return this.setPaused(false);
  }

  private async setPaused(paused: boolean): Promise<{ paused: boolean }> {
    await this.green(async (c) => {
      await ensureGreenState(c);
      await writeControlValue(c, controlKey('paused', this.config), paused);
    });
    this.log.info({ paused }, paused ? 'paused' : 'resumed');
    return { paused };
  }

  private async assertNotPaused(): Promise<void> {
    const control = await this.green(readControl);
    if (control.get(controlKey('paused', this.config))?.value === true) {
      throw new TealError(
        'TEAL_PAUSED',
        'teal is paused, so a drain cannot finish: resume first (POST /resume, teal resume)',
        {
          status: 409,
        },
      );
    }
  }

  drain(opts: DrainOptions): Promise<DrainResult> {
    return this.running.run('drain', () => this.drainNow(opts));
  }

  private async drainNow(opts: DrainOptions): Promise<DrainResult> {
    await this.assertNotPaused();
    this.log.info({ timeoutMs: opts.timeoutMs, fence: opts.fence }, 'drain started');
    const result = await this.blue((blue) =>
      this.green((green) =>
        drain(
          {
            blue,
            green,
            admin: this.admin,
            slot: this.config.slot,
            tables: this.config.tables,
            topicPrefix: this.config.kafka.topicPrefix,
            countDeadLetters:
              this.deps.countDeadLetters ??
              (() => countDeadLetters(this.reader, this.config.kafka.topicPrefix)),
            pollMs: this.deps.pollMs,
          },
          opts,
        ),
      ),
    );
    this.log.info(
      { lsn: result.lsn, waitedMs: result.waitedMs, deadLetters: result.deadLetters.total },
      result.clean ? 'drained' : 'drained, with dead letters',
    );
    return result;
  }

  cutover(opts: CutoverOptions): Promise<CutoverReport> {
    return this.running.run('cutover', async () => {
      // Refused before anything is fenced when the way back could not be built.
      const reverse = opts.withRollback ? await this.preflightRollback(opts) : undefined;
      // The background pass would read a fenced blue and race the delta's reads of its state.
      this.backgroundPass?.abort();
      const report = await runCutover(
        {
          fence: () => this.blue(fence),
          unfence: () => this.blue(unfence),
          drain: (timeoutMs) => this.drainNow({ timeoutMs, fence: false }),
          copySequences: () =>
            this.blue((blue) => this.green((green) => copySequences(blue, green, this.transforms))),
          verify: (kind, drained) =>
            kind === 'full' ? this.verify({}) : this.verifyDelta(drained?.deadLetters ?? null),
          releaseGreen: () =>
            this.green((green) => releaseChangeCapture(green, this.config.kafka.topicPrefix)),
          ...(reverse && {
            prepareRollback: () => this.green((green) => createReverseSlot(green, reverse)),
            recordRollback: (prepared) =>
              this.green((green) => recordReverse(green, this.config.kafka.topicPrefix, prepared)),
            dropRollback: (prepared) => this.green((green) => dropReverseSlot(green, prepared)),
          }),
        },
        opts,
      );
      if (report.rollback && reverse && reverse.ignored.length > 0) {
        report.warnings.push(
          `not streamed back (reverse: { ignore: true }): ${reverse.ignored.join(', ')}; a rollback leaves blue's rows of them as they are`,
        );
      }
      this.log.info({ safeToSwitch: report.safeToSwitch, drainLsn: report.drainLsn }, 'cutover finished');
      return report;
    });
  }

  /**
   * The reverse pipeline's cutover (rollback.ts). Here the config is the reverse one: its
   * "blue" is green (fenced, drained, the source of sequences and verify), its "green" is blue.
   */
  rollback(opts: RollbackOptions): Promise<CutoverReport> {
    if (this.deps.direction !== 'reverse') {
      return Promise.reject(
        new TealError(
          'TEAL_REVERSE_NOT_PREPARED',
          'this process runs the forward pipeline: POST /rollback is served by teal reverse (started after teal cutover --with-rollback)',
          { status: 409 },
        ),
      );
    }
    return this.running.run('rollback', async () => {
      const report = await runRollback(
        {
          fenceGreen: () => this.blue(fence),
          unfenceGreen: () => this.blue(unfence),
          drain: (timeoutMs) => this.drainNow({ timeoutMs, fence: false }),
          copySequences: () =>
            this.blue((source) =>
              this.green((target) =>
                copySequences(source, target, this.transforms, { neverBackwards: true }),
              ),
            ),
          verify: () => this.verify({}),
          unfenceBlue: () => this.green(unfence),
        },
        opts,
      );
      this.log.info({ safeToSwitch: report.safeToSwitch, drainLsn: report.drainLsn }, 'rollback finished');
      return report;
    });
  }

  private async preflightRollback(opts: CutoverOptions): Promise<ReversePlan> {
    const conflict = opts.dryRun
      ? 'withRollback and dryRun exclude each other: the reverse slot is made inside the fenced window'
      : opts.fence === false
        ? 'withRollback needs the fence: blue must be final when the reverse slot is made on green'
        : opts.verify === false
          ? 'withRollback needs verify: the way back is prepared only when green is proven equal to blue'
          : undefined;
    if (conflict) throw new TealError('TEAL_BAD_REQUEST', conflict, { status: 400 });
    return this.blue((blue) =>
      this.green((green) => preflightRollback(blue, green, this.config, this.transforms)),
    );
  }

  async verify(opts: VerifyRequest): Promise<VerifyReportView> {
    if (opts.online)
      return this.verifyOnline({
        ...this.verifyOptions(),
        tables: opts.tables,
        signal: opts.signal,
        rounds: true,
      });
    const verifyFn = this.deps.verifyTables ?? verifyTables;
    return verifyFn({
      blueUrl: this.config.blue.url,
      greenUrl: this.config.green.url,
      config: this.config,
      transforms: this.transforms,
      tables: opts.tables,
      onProgress: opts.onProgress,
      signal: opts.signal,
    });
  }

  private verifyOptions() {
    return {
      blueUrl: this.config.blue.url,
      greenUrl: this.config.green.url,
      config: this.config,
      transforms: this.transforms,
    };
  }

  /** One online pass (online-verify.ts); a chunk that differs waits for green to reach its blue position. */
  private async verifyOnline(opts: OnlineOptions): Promise<VerifyReportView> {
    this.onlinePasses++;
    try {
      return await this.green((state) =>
        verifyOnline(
          {
            state,
            waitApplied: (lsn, signal) =>
              this.blue((blue) =>
                this.green(async (green) => {
                  await waitApplied(
                    {
                      blue,
                      green,
                      admin: this.admin,
                      slot: this.config.slot,
                      topicPrefix: this.config.kafka.topicPrefix,
                      pollMs: this.deps.pollMs,
                    },
                    parseLsn(lsn),
                    { timeoutMs: 120_000, fence: false, signal },
                  );
                }),
              ),
          },
          opts,
        ),
      );
    } finally {
      this.onlinePasses--;
    }
  }

  /** Cutover's verify: the delta since each table's online pass; tables with dead letters in full. */
  private verifyDelta(deadLetters: DeadLetterCounts | null): Promise<VerifyReportView> {
    const tables = deadLetters?.tables.map((t) => t.table) ?? [];
    return this.green((state) =>
      verifyDelta(state, {
        ...this.verifyOptions(),
        deadLetterTables: tables.some((t) => !t.includes('.') || t === NOT_COUNTED) ? 'all' : tables,
      }),
    );
  }

  /** Online passes one after another at `rowsPerSecond`, until close(); a cutover cuts the current one short. */
  private async runBackground(rowsPerSecond: number): Promise<void> {
    const stop = this.stopBackground.signal;
    let passes = 0;
    while (!stop.aborted) {
      const pass = new AbortController();
      this.backgroundPass = pass;
      const onStop = () => pass.abort();
      stop.addEventListener('abort', onStop, { once: true });
      try {
        const pending = await this.blue((blue) =>
          this.green((green) => unfinishedSnapshots(blue, green, this.config.tables)),
        );
        // Before the snapshot is done every chunk would differ; nothing to verify yet.
        if (this.running.running === undefined && pending.length === 0) {
          // Rounds after the first pass; every 50th pass reads the tables whole again.
          const r = await this.verifyOnline({
            ...this.verifyOptions(),
            rowsPerSecond,
            signal: pass.signal,
            rounds: passes++ % 50 !== 0,
          });
          this.log.info(
            { ok: r.ok, tables: r.tables.length, durationMs: r.durationMs },
            r.ok
              ? 'online verify pass: equal'
              : 'online verify pass: differences (teal verify --online --json)',
          );
        }
      } catch (err) {
        if (!pass.signal.aborted)
          this.log.warn(
            { err: redactSecrets((err as Error).message) },
            'online verify pass failed; trying again',
          );
      } finally {
        stop.removeEventListener('abort', onStop);
      }
      await abortableDelay(pass.signal.aborted && !stop.aborted ? 1_000 : 5_000, stop).catch(() => {});
    }
  }

  fence(): Promise<FenceResult> {
    return this.blue(fence).then((r) => {
      this.log.warn(
        {
          database: r.database,
          terminated: r.terminatedSessions,
          preparedTransactions: r.preparedTransactions.length,
          olderSessions: r.sessions.length,
        },
        r.preparedTransactions.length + r.sessions.length > 0
          ? 'blue fenced, but prepared transactions or older sessions can still change it'
          : 'blue fenced',
      );
      return r;
    });
  }

  unfence(): Promise<FenceResult> {
    return this.blue(unfence).then((r) => {
      this.log.warn({ database: r.database }, 'blue unfenced');
      return r;
    });
  }

  async ready(): Promise<ReadyReport> {
    const check = async (fn: () => Promise<unknown>, what: string): Promise<ReadyCheck> => {
      try {
        await withTimeout(fn(), 5_000, what);
        return { ok: true, error: null };
      } catch (err) {
        return { ok: false, error: redactSecrets((err as Error).message) };
      }
    };
    const [blue, green, kafka] = await Promise.all([
      check(() => this.blue((c) => c.query('SELECT 1')), `blue ${redactUrl(this.config.blue.url)}`),
      check(() => this.green((c) => c.query('SELECT 1')), `green ${redactUrl(this.config.green.url)}`),
      check(
        () => this.admin.listTopics(`${this.config.kafka.topicPrefix}.`),
        `Kafka ${this.config.kafka.brokers.join(',')}`,
      ),
    ]);
    return { ready: blue.ok && green.ok && kafka.ok, checks: { blue, green, kafka } };
  }

  async close(): Promise<void> {
    this.stopBackground.abort();
    await this.background;
    if (this.kafka) await this.kafka.close();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
