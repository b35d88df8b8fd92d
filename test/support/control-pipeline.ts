import { type ResolvedConfig, resolveConfig } from '@teal/config';
import { Consumer } from '@teal/consumer';
import { greenCopyTarget } from '@teal/consumer/direct-copy';
import { TealControl } from '@teal/control';
import { KafkaClient } from '@teal/kafka';
import { Producer } from '@teal/producer';
import { createMetrics, waitFor } from '@teal/runtime';
import pg from 'pg';
import { expect, onTestFinished } from 'vitest';
import { greenUrl, kafkaBrokers, withDatabase } from './env.ts';

export { withDatabase };

// A producer, consumer and control plane in this process on a blue of the test's choice
// (the shared blue, a database of its own, or a scratch cluster), for the drain, fence and
// cutover regression tests. Everything is stopped and removed when the test finishes.

export function controlConfig(
  name: string,
  blue: string,
  tables: string[],
  extra: Record<string, unknown> = {},
  /** Another green than the shared one (a scratch cluster of another version, say). */
  green: string = greenUrl(),
): ResolvedConfig {
  return resolveConfig(
    {
      tables,
      slot: `${name}_slot`,
      publication: `${name}_pub`,
      kafka: { topicPrefix: `${name}_t`, partitions: 2 },
      heartbeatMs: 500,
      ...extra,
    },
    {
      env: { TEAL_BLUE_URL: blue, TEAL_GREEN_URL: green, TEAL_KAFKA_BROKERS: kafkaBrokers().join(',') },
    },
  );
}

/** A client that tolerates being terminated (by a fence), closed when the test ends. */
export async function sessionOn(url: string, applicationName?: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: applicationName });
  c.on('error', () => {});
  await c.connect();
  onTestFinished(() => c.end().catch(() => {}));
  return c;
}

export async function controlPipeline(
  config: ResolvedConfig,
  opts: { producerDeps?: ConstructorParameters<typeof Producer>[1]; waitForStreaming?: boolean } = {},
) {
  const metrics = createMetrics();
  const producer = new Producer(config, {
    metrics,
    directCopy: (c) => greenCopyTarget(c, { sessions: c.snapshot.parallel }),
    ...opts.producerDeps,
  });
  const consumer = new Consumer(config, { metrics, groupId: `${config.slot}-group` });
  const control = new TealControl(config, { producer, consumer, metrics, pollMs: 100 });
  onTestFinished(async () => {
    await control.close();
    await consumer.stop();
    await producer.stop();
    const blue = await sessionOn(config.blue.url);
    // Fenced blues included: teal's sessions start writable (SESSION_OPTIONS), this one not.
    await blue.query('SET default_transaction_read_only = off');
    await waitFor(
      async () => {
        await blue.query(
          'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active',
          [config.slot],
        );
        const left = await blue.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [
          config.slot,
        ]);
        return left.rows.length === 0;
      },
      { what: `slot ${config.slot} dropped`, timeoutMs: 30_000 },
    );
    await blue.query(`DROP PUBLICATION IF EXISTS ${pg.escapeIdentifier(config.publication)}`);
    const kafka = new KafkaClient({ brokers: kafkaBrokers() });
    const admin = kafka.admin();
    await admin.deleteTopics(await admin.listTopics(`${config.kafka.topicPrefix}.`)).catch(() => undefined);
    await kafka.close();
  });
  await producer.start();
  await consumer.start();
  if (opts.waitForStreaming !== false) {
    await waitFor(() => producer.status().state === 'streaming', {
      what: 'producer streaming',
      timeoutMs: 60_000,
    });
  }
  return { producer, consumer, control, metrics };
}

/**
 * A blue database of the test's own (fence and cutover act on a whole database), dropped
 * when the test ends. Create it before the pipeline, so that the pipeline's cleanup (its
 * slot) runs first.
 */
export async function ownBlueDatabase(baseUrl: string, name: string): Promise<string> {
  const admin = await sessionOn(baseUrl);
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  onTestFinished(async () => {
    const a = await sessionOn(baseUrl);
    await a.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  });
  return withDatabase(baseUrl, name);
}

/** The same table on blue and green (`columns`: its column list), dropped from both when the test ends. */
export async function tableOnBoth(
  blue: pg.Client,
  green: pg.Client,
  name: string,
  columns: string,
): Promise<void> {
  for (const db of [blue, green]) await db.query(`CREATE TABLE ${name} (${columns})`);
  onTestFinished(async () => {
    for (const db of [blue, green]) await db.query(`DROP TABLE IF EXISTS ${name}`);
  });
}

/** A cutover with fence and verify that must go through: every step ok, safe to switch; its report. */
export async function expectCutoverDone(control: TealControl) {
  const report = await control.cutover({
    fence: true,
    timeoutMs: 90_000,
    verify: true,
    unfenceOnFailure: false,
  });
  expect(
    report.steps.map((s) => [s.name, s.ok]),
    JSON.stringify(report.steps),
  ).toEqual([
    ['fence', true],
    ['drain', true],
    ['sequences', true],
    ['verify', true],
    ['release', true],
  ]);
  expect(report.safeToSwitch).toBe(true);
  return report;
}
