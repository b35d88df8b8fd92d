import { type CliIo, EXIT, loadResolvedConfig, type Values } from './command.ts';
import type { ProducerThread } from './producer-thread.ts';

// `teal run`, `teal producer`, `teal consumer`, `teal api`: the one place where producer,
// consumer and control API are wired together. The producer runs here (@teal/producer) or in
// a worker thread (producer-thread.ts → producer-worker.ts); the consumer is @teal/consumer,
// the API @teal/control. They run until a stop signal or the producer fails for good.

export interface PipelineParts {
  producer: boolean;
  consumer: boolean;
  api: boolean;
  /** The producer in a worker thread (TEAL_RUN_THREADS=2, `teal run` only). */
  producerThread?: boolean;
  /** Run `teal check`'s checks first and refuse to start on a blocking one (TEAL_CHECK_BLOCKED). */
  preflight?: boolean;
}

/** What the pipeline needs of a producer, a producer thread or a consumer. */
interface Component {
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): unknown;
  on?(event: 'error', listener: (err: unknown) => void): unknown;
}

/**
 * Starts `c`, unless a stop signal comes first: a start can wait a long time (the producer
 * retries until green answers, while it keeps blue -> Kafka going), and SIGTERM must still
 * stop it. True when started; false when stopped during its start.
 */
async function startUnlessStopped(c: Component, stopSignal: Promise<string>): Promise<boolean> {
  const starting = c.start().then(() => 'started' as const);
  const first = await Promise.race([starting, stopSignal.then(() => 'stop' as const)]);
  if (first === 'started') return true;
  await c.stop().catch(() => {});
  await starting.catch(() => {});
  return false;
}

export async function runPipeline(v: Values, io: CliIo, parts: PipelineParts): Promise<number> {
  const config = await loadResolvedConfig(v, io);
  // Imported here, not at the top: the API clients and --help should start fast.
  const { createMetrics, rootLogger } = await import('@teal/runtime');
  const logger = rootLogger();
  const { assertSafeBind, startApi, TealControl } = await import('@teal/control');
  if (parts.api) assertSafeBind(config.api.host, config.api.token);
  if (parts.preflight === false && parts.producer) {
    logger.warn(
      'teal check skipped (--skip-check): shapes teal cannot replicate are found only when they fail',
    );
  }
  if (parts.preflight) {
    // Before any slot, publication or topic exists: a shape teal cannot replicate is refused
    // here, naming the table and the fix, rather than found later as a blocked partition.
    const { assertStartable } = await import('@teal/control');
    const checkStarted = Date.now();
    const report = await assertStartable({ config });
    logger.info(
      { ms: Date.now() - checkStarted, tables: report.tables.length, ...report.counts },
      'teal check: nothing blocks',
    );
    for (const f of report.findings) {
      if (f.severity === 'warn')
        logger.warn({ table: f.table, check: f.check, fix: f.fix }, `teal check: ${f.what}`);
    }
    for (const s of report.skipped) logger.warn(`teal check: not checked: ${s}`);
  }
  const metrics = createMetrics();
  const started: Component[] = [];
  let failed: unknown;
  let failedResolve: (() => void) | undefined;
  const failure = new Promise<string>((resolve) => {
    failedResolve = () => resolve('failure');
  });
  let producer: Component | undefined;
  let thread: ProducerThread | undefined;
  let consumer: Component | undefined;
  let api: { close(): Promise<void> } | undefined;
  let control: InstanceType<typeof TealControl> | undefined;
  try {
    if (parts.producer) {
      if (parts.producerThread) {
        const { ProducerThread } = await import('./producer-thread.ts');
        thread = new ProducerThread(config, { cwd: io.cwd, env: io.env, logger });
        producer = thread;
      } else {
        const { Producer } = await import('@teal/producer');
        const { greenCopyTarget } = await import('@teal/consumer/direct-copy');
        producer = new Producer(config, {
          metrics,
          logger,
          directCopy: (c) => greenCopyTarget(c, { sessions: c.snapshot.parallel }),
        }) as unknown as Component;
      }
      // A producer that fails after start (lost slot, protocol error) ends the whole process.
      producer.on?.('error', (err) => {
        failed = err;
        failedResolve?.();
      });
      if (!(await startUnlessStopped(producer, io.stopSignal()))) return EXIT.ok;
      started.push(producer);
    }
    if (parts.consumer) {
      const { Consumer } = await import('@teal/consumer');
      consumer = new Consumer(config, { metrics, logger }) as unknown as Component;
      if (!(await startUnlessStopped(consumer, io.stopSignal()))) return EXIT.ok;
      started.push(consumer);
    }
    if (parts.api) {
      control = new TealControl(config, { producer, consumer, metrics, logger });
      const producerThread = thread;
      const server = await startApi(
        config,
        control,
        metrics,
        logger,
        // The worker has its own registry: /metrics merges it into the main thread's.
        producerThread ? { moreMetrics: async () => [await producerThread.metrics()] } : {},
      );
      api = server;
      io.stderr.write(
        `teal: control API on ${server.url}${config.api.token ? ' (bearer token required)' : ''}\n`,
      );
    }
    const why = await Promise.race([io.stopSignal(), failure]);
    if (why === 'failure') throw failed;
    logger.info({ signal: why }, 'stopping');
    return EXIT.ok;
  } finally {
    // API first, so that nothing asks a stopping part for its status; then in reverse start order.
    await api?.close().catch(() => {});
    await control?.close().catch(() => {});
    for (const c of started.reverse()) await c.stop().catch(() => {});
  }
}
