import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { ResolvedConfig } from '@teal/config';
import { TealError } from '@teal/errors';
import { type Logger, loggerOutput, type MetricsJson, rootLogger } from '@teal/runtime';
import {
  configSource,
  errorFromData,
  type FromWorker,
  type ToWorker,
  type WorkerInput,
} from './thread-protocol.ts';

// `teal run`'s producer in a worker thread, so that blue -> Kafka and Kafka -> green use two
// cores in one process. To runPipeline and TealControl it looks like the in-process
// Producer: start(), stop(), a synchronous status() (the latest copy the worker posted) and
// an 'error' event, which also fires when the thread dies: `teal run` never goes on
// without its producer.

export interface ProducerThreadOptions {
  /** Where the config was loaded from and with which env: the worker loads it again when it cannot be cloned. */
  cwd: string;
  env: Record<string, string | undefined>;
  logger?: Logger;
  /** The worker's entry; tests pass a stand-in. */
  entry?: URL;
  /** How long stop() waits for producer.stop() in the worker before it terminates the thread. */
  stopTimeoutMs?: number;
  statusIntervalMs?: number;
  /** How long a /metrics scrape waits for the worker (busy with a batch) before it serves its last copy. */
  metricsTimeoutMs?: number;
}

const DEFAULT_ENTRY = new URL('./producer-worker.mjs', import.meta.url);

export class ProducerThread extends EventEmitter {
  private readonly log: Logger;
  private worker: Worker | undefined;
  private latest: Record<string, unknown>;
  private lastMetrics: MetricsJson = [];
  private readonly pendingMetrics = new Map<number, (metrics: MetricsJson) => void>();
  private nextMetricsId = 0;
  private starting: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private stopRequested = false;
  private stopping: Promise<void> | undefined;
  private onStopped: (() => void) | undefined;
  private failed = false;
  private exitCode: number | undefined;
  private exited: Promise<number> = Promise.resolve(0);

  constructor(
    readonly config: ResolvedConfig,
    private readonly options: ProducerThreadOptions,
  ) {
    super();
    this.log = (options.logger ?? rootLogger()).child({ component: 'producer-thread' });
    this.latest = {
      state: 'starting',
      slot: config.slot,
      publication: config.publication,
      confirmedLsn: null,
      lastShippedPosition: null,
      lastCommitTimeUs: null,
      snapshot: [],
    };
  }

  /** Resolves when the worker's producer.start() resolved; rejects with its error. */
  start(): Promise<void> {
    if (this.worker) return Promise.reject(new Error('the producer thread was started already'));
    const workerData: WorkerInput = {
      source: configSource(this.config, this.options.cwd, this.options.env),
      statusIntervalMs: this.options.statusIntervalMs ?? 100,
      log: loggerOutput(),
    };
    const worker = new Worker(this.options.entry ?? DEFAULT_ENTRY, {
      // Heap sizes come from the process's V8 flags (bin/teal.mjs, docs/performance.md).
      workerData,
    });
    this.worker = worker;
    this.log.info({ threadId: worker.threadId, config: workerData.source.kind }, 'producer thread started');
    this.exited = new Promise((resolve) => {
      worker.on('exit', (code) => {
        this.exitCode = code;
        for (const resolveMetrics of this.pendingMetrics.values()) resolveMetrics(this.lastMetrics);
        this.pendingMetrics.clear();
        if (!this.stopRequested) {
          this.fail(
            new TealError(
              'TEAL_PRODUCER_THREAD_EXITED',
              `the producer thread exited (code ${code}) while teal run needed it: see the log lines before this one; set TEAL_RUN_THREADS=1 to run the producer on the main thread`,
            ),
          );
        }
        resolve(code);
      });
    });
    worker.on('message', (message: FromWorker) => this.onMessage(message));
    // An exception thrown before the worker's own handler is in place (a module that does not load).
    worker.on('error', (err) => this.fail(err));
    return new Promise((resolve, reject) => {
      this.starting = { resolve, reject };
    });
  }

  /** Asks the worker to stop its producer; terminates the thread when that takes longer than stopTimeoutMs. */
  stop(): Promise<void> {
    this.stopping ??= this.stopWorker();
    return this.stopping;
  }

  /** The producer's status as the worker last posted it (it posts every change within ~100 ms). */
  status(): unknown {
    return this.latest;
  }

  /** The worker's registry as JSON, for GET /metrics; its last copy when the worker is busy or gone. */
  metrics(): Promise<MetricsJson> {
    const worker = this.worker;
    if (!worker || this.exitCode !== undefined) return Promise.resolve(this.lastMetrics);
    const id = ++this.nextMetricsId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingMetrics.delete(id);
        resolve(this.lastMetrics);
      }, this.options.metricsTimeoutMs ?? 2_000);
      this.pendingMetrics.set(id, (metrics) => {
        clearTimeout(timer);
        resolve(metrics);
      });
      this.send({ type: 'metrics', id });
    });
  }

  private async stopWorker(): Promise<void> {
    const worker = this.worker;
    this.stopRequested = true;
    if (!worker || this.exitCode !== undefined) return;
    const stopped = new Promise<'stopped'>((resolve) => {
      this.onStopped = () => resolve('stopped');
    });
    let timer: NodeJS.Timeout | undefined;
    const timeoutMs = this.options.stopTimeoutMs ?? 15_000;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    this.send({ type: 'stop' });
    const outcome = await Promise.race([stopped, this.exited.then(() => 'exited' as const), timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout')
      this.log.warn({ timeoutMs }, 'the producer thread did not stop in time; terminating it');
    // Stopped: the producer closed its connections and the logs are written; kafka and pg
    // may keep handles open, so the thread is ended rather than waited for.
    await worker.terminate();
  }

  private send(message: ToWorker): void {
    this.worker?.postMessage(message);
  }

  private onMessage(message: FromWorker): void {
    switch (message.type) {
      case 'status':
        this.latest = message.status as Record<string, unknown>;
        break;
      case 'started':
        this.starting?.resolve();
        this.starting = undefined;
        break;
      case 'start-failed':
        this.fail(errorFromData(message.error));
        break;
      case 'error':
        this.fail(errorFromData(message.error));
        break;
      case 'metrics': {
        this.lastMetrics = message.metrics;
        const resolve = this.pendingMetrics.get(message.id);
        this.pendingMetrics.delete(message.id);
        resolve?.(message.metrics);
        break;
      }
      case 'stopped':
        if (message.metrics.length > 0) this.lastMetrics = message.metrics;
        this.onStopped?.();
        break;
    }
  }

  /** Before start resolved: start() rejects (and the thread ends). After: one 'error' event, as the Producer emits. */
  private fail(err: Error): void {
    const code = (err as { code?: unknown }).code;
    this.latest = {
      ...this.latest,
      state: 'failed',
      error: { code: typeof code === 'string' ? code : 'TEAL_PRODUCER_FAILED', message: err.message },
    };
    if (this.starting) {
      const { reject } = this.starting;
      this.starting = undefined;
      this.stopRequested = true;
      void this.worker?.terminate();
      reject(err);
      return;
    }
    if (this.failed || this.stopRequested) return;
    this.failed = true;
    this.emit('error', err);
  }
}
