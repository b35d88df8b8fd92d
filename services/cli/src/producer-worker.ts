import { parentPort, workerData } from 'node:worker_threads';
import { loadConfig, logLevelFromEnv, type ResolvedConfig } from '@teal/config';
import { greenCopyTarget } from '@teal/consumer/direct-copy';
import { TealError } from '@teal/errors';
import { Producer } from '@teal/producer';
import { configureLogger, createMetrics, rootLogger } from '@teal/runtime';
import {
  type ConfigSource,
  configFingerprint,
  deepFreeze,
  errorToData,
  type FromWorker,
  type ToWorker,
  type WorkerInput,
} from './thread-protocol.ts';

// `teal run`'s producer thread (started by producer-thread.ts through producer-worker.mjs):
// one Producer, its status posted to the main thread whenever it changes, its metrics on
// request. The logger writes to fd 1 itself, in the same format as the main thread.

if (!parentPort) throw new Error('producer-worker.ts runs in a worker thread started by producer-thread.ts');
const port = parentPort;
const input = workerData as WorkerInput;
// The main thread has checked TEAL_LOG_LEVEL already; the worker sees the same environment,
// and writes the main thread's format (JSON or pretty lines) to the same fd 1.
configureLogger({ level: logLevelFromEnv(process.env), ...(input.log ? { output: input.log } : {}) });
const metrics = createMetrics(undefined, { defaultMetrics: false });

function post(message: FromWorker): void {
  port.postMessage(message);
}

/** pino's SonicBoom writes asynchronously and nothing waits for it when the thread ends. */
function flushLogs(): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 2_000);
    rootLogger().flush(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function loadSource(source: ConfigSource): Promise<ResolvedConfig> {
  if (source.kind === 'resolved') return deepFreeze(source.config);
  const config = await loadConfig({ cwd: source.cwd, configPath: source.configPath, env: source.env });
  if (configFingerprint(config) !== source.fingerprint) {
    throw new TealError(
      'TEAL_CONFIG_CHANGED',
      `${source.configPath} changed while teal run was starting (the producer thread read another config than the consumer): start teal run again`,
      { status: 400 },
    );
  }
  return config;
}

const bigintAsText = (_key: string, value: unknown) => (typeof value === 'bigint' ? value.toString() : value);
let producer: Producer | undefined;
let lastStatus = '';
let cloneWarned = false;

function postStatus(force = false): void {
  if (!producer) return;
  const status = producer.status();
  const text = JSON.stringify(status, bigintAsText);
  if (!force && text === lastStatus) return;
  lastStatus = text;
  try {
    post({ type: 'status', status });
  } catch (err) {
    // Something in the status cannot be cloned: send its JSON form rather than nothing.
    if (!cloneWarned)
      rootLogger().warn({ err }, 'producer status is not structured-clonable; posting its JSON form');
    cloneWarned = true;
    post({ type: 'status', status: JSON.parse(text) });
  }
}

let starting: Promise<void> = Promise.resolve();
let stopAsked = false;

async function stop(): Promise<void> {
  await starting.catch(() => {});
  await producer?.stop();
  postStatus(true);
  await flushLogs();
  post({ type: 'stopped', metrics: await metrics.registry.getMetricsAsJSON() });
}

port.on('message', (message: ToWorker) => {
  if (message.type === 'stop') {
    if (stopAsked) return;
    stopAsked = true;
    void stop().catch(async (err) => {
      rootLogger().error({ err }, 'producer thread: stop failed');
      await flushLogs();
      post({ type: 'stopped', metrics: [] });
    });
  } else if (message.type === 'metrics') {
    void metrics.registry
      .getMetricsAsJSON()
      .then((json) => post({ type: 'metrics', id: message.id, metrics: json }));
  }
});

// An exception nothing caught ends the thread, but first its log line and the error reach the main thread.
process.on('uncaughtException', (err) => {
  rootLogger().fatal({ err }, 'producer thread crashed');
  void flushLogs().finally(() => {
    post({ type: 'error', error: errorToData(err) });
    process.exit(1);
  });
});

starting = (async () => {
  const config = await loadSource(input.source);
  // The direct initial copy's green side is the consumer's writer (the producer may not import it).
  producer = new Producer(config, {
    metrics,
    logger: rootLogger(),
    directCopy: (c) => greenCopyTarget(c, { sessions: c.snapshot.parallel }),
  });
  producer.on('error', (err) => {
    postStatus(true);
    void flushLogs().finally(() => post({ type: 'error', error: errorToData(err) }));
  });
  setInterval(() => postStatus(), input.statusIntervalMs).unref();
  await producer.start();
})();

starting.then(
  () => {
    postStatus(true);
    post({ type: 'started' });
  },
  async (err) => {
    postStatus(true);
    await flushLogs();
    post({ type: 'start-failed', error: errorToData(err) });
  },
);
