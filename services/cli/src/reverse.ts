import type { ResolvedConfig, ReverseTable } from '@teal/config';
import { TealError } from '@teal/errors';
import type { ReverseState } from '@teal/postgres';
import type { Logger, TealMetrics } from '@teal/runtime';
import { type CliIo, EXIT, loadResolvedConfig, type Values } from './command.ts';

// `teal reverse` (issue 17): the reverse pipeline after `teal cutover --with-rollback`. It is
// teal run with blue and green swapped (reverseConfig()): the producer streams GREEN from the
// slot the cutover made there, with no snapshot (at the slot's point green equaled blue, just
// verified); the consumer applies to BLUE through the inverse mapping, keeping its state in
// blue's teal schema; the API serves the same routes plus POST /rollback. Blue stays fenced:
// before anything writes, its target tables get the reverse guard (fence.ts), which admits
// only this process's sessions.

/** The reverse pipeline's config from the forward one and green's record; refuses clearly without it. */
export async function prepareReverse(forward: ResolvedConfig): Promise<{
  config: ResolvedConfig;
  prepared: ReverseState<ReverseTable>;
}> {
  const { withClient, readReverseState } = await import('@teal/postgres');
  const { reverseConfig, catalogOf, describeReverseProblems } = await import('@teal/config');
  const prefix = forward.kafka.topicPrefix;
  const prepared = await withClient(forward.green.url, { applicationName: 'teal-reverse' }, (c) =>
    readReverseState<ReverseTable>(c, prefix),
  );
  if (!prepared)
    throw new TealError(
      'TEAL_REVERSE_NOT_PREPARED',
      `green holds no reverse pipeline for topic prefix "${prefix}": run teal cutover --with-rollback first ` +
        '(it creates the reverse slot and publication on green at the verified point)',
    );
  const plan = reverseConfig(forward, catalogOf(prepared.tables));
  if (plan.problems.length > 0)
    throw new TealError(
      'TEAL_CONFIG_INVALID',
      `the forward transforms cannot be inverted:\n  - ${describeReverseProblems(plan.problems)}`,
    );
  const { config } = plan;
  // The names the cutover recorded are the ones this config derives, or the config changed since.
  const recorded = {
    slot: prepared.slot,
    publication: prepared.publication,
    topicPrefix: prepared.topicPrefix,
  };
  const derived = {
    slot: config.slot,
    publication: config.publication,
    topicPrefix: config.kafka.topicPrefix,
  };
  if (JSON.stringify(recorded) !== JSON.stringify(derived))
    throw new TealError(
      'TEAL_CONFIG_CHANGED',
      `the reverse pipeline recorded at cutover (${JSON.stringify(recorded)}) is not the one this config derives ` +
        `(${JSON.stringify(derived)}): run teal reverse with the config the cutover ran with`,
    );
  return { config, prepared };
}

/**
 * The reverse pipeline's parts, not started: blue's target tables guarded first (from here on
 * only this process's sessions write them), a producer attached to green's slot, a consumer
 * writing blue with the writer token, the control plane saying `direction: reverse`.
 * `teal reverse` serves them; the demo runs them in its own process.
 */
export async function createReverse(
  forward: ResolvedConfig,
  deps: { logger?: Logger; metrics?: TealMetrics } = {},
) {
  const { createMetrics, rootLogger } = await import('@teal/runtime');
  const { TealControl, installReverseGuard, isFenced, newReverseWriterToken, REVERSE_WRITER_SETTING } =
    await import('@teal/control');
  const { Producer } = await import('@teal/producer');
  const { Consumer } = await import('@teal/consumer');
  const { withClient } = await import('@teal/postgres');
  const logger = deps.logger ?? rootLogger().child({ direction: 'reverse' });
  const metrics = deps.metrics ?? createMetrics(undefined, { direction: 'reverse' });
  const { config, prepared } = await prepareReverse(forward);
  const token = newReverseWriterToken();
  await withClient(forward.blue.url, { applicationName: 'teal-reverse' }, async (c) => {
    // An unfenced blue is the application's again (a rollback ran, or someone unfenced it):
    // writing green's rows into it, or guarding it, would undo that.
    if (!(await isFenced(c)))
      throw new TealError(
        'TEAL_REVERSE_NOT_PREPARED',
        'blue is not fenced: teal rollback has switched back already (or blue was unfenced), so the application may write to blue; ' +
          'teal reverse writes only into a fenced blue — drop the reverse slot on green (docs/rollback.md) or cut over again',
      );
    await installReverseGuard(
      c,
      prepared.tables.map((t) => t.blueTable),
      token,
    );
  });
  const producer = new Producer(config, { metrics, logger, attachSlot: true });
  const consumer = new Consumer(config, {
    metrics,
    logger,
    targetSession: {
      applicationName: 'teal-reverse-consumer',
      settings: { [REVERSE_WRITER_SETTING]: token },
    },
  });
  const control = new TealControl(config, { producer, consumer, metrics, logger, direction: 'reverse' });
  return { config, prepared, producer, consumer, control, metrics, logger };
}

export async function runReverse(v: Values, io: CliIo): Promise<number> {
  const forward = await loadResolvedConfig(v, io);
  const { assertSafeBind, startApi } = await import('@teal/control');
  assertSafeBind(forward.api.host, forward.api.token);
  const { config, prepared, producer, consumer, control, metrics, logger } = await createReverse(forward);
  logger.info(
    {
      slot: config.slot,
      topicPrefix: config.kafka.topicPrefix,
      from: prepared.lsn,
      tables: prepared.tables.length,
    },
    'teal reverse: green -> blue',
  );
  let failed: unknown;
  const failure = new Promise<'failure'>((resolve) =>
    producer.on('error', (err) => {
      failed = err;
      resolve('failure');
    }),
  );
  const stop = io.stopSignal();
  const started: Array<{ stop(): Promise<void> }> = [];
  let api: { close(): Promise<void> } | undefined;
  try {
    for (const part of [producer, consumer]) {
      const starting = part.start().then(() => 'started' as const);
      started.push(part);
      // A start may wait long (green or blue away); a stop signal still ends it.
      if ((await Promise.race([starting, stop])) !== 'started') {
        await starting.catch(() => {});
        return EXIT.ok;
      }
    }
    const server = await startApi(config, control, metrics, logger);
    api = server;
    io.stderr.write(
      `teal reverse: green -> blue from ${prepared.lsn} (slot ${config.slot}); control API on ${server.url}${config.api.token ? ' (bearer token required)' : ''}\n`,
    );
    const why = await Promise.race([stop, failure]);
    if (why === 'failure') throw failed;
    logger.info({ signal: why }, 'stopping');
    return EXIT.ok;
  } finally {
    await api?.close().catch(() => {});
    await control.close().catch(() => {});
    for (const c of started.reverse()) await c.stop().catch(() => {});
  }
}
