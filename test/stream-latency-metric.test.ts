import type { TealMetrics } from '@teal/runtime';
import { waitFor } from '@teal/runtime';
import { describe, expect, test } from 'vitest';
import { controlConfig, controlPipeline, sessionOn, tableOnBoth } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, uniqueName } from './support/env.ts';

// Issue 15, the steady lag by hop: teal_stream_latency_seconds takes the same clock difference
// (now - blue's commit time) at each point a change passes: the producer read its commit,
// handed its batch to Kafka, had it acknowledged, the consumer fetched it; applied is
// teal_replication_lag_seconds. Real blue, green and Kafka, producer and consumer in this process.

type Sums = Record<string, { sum: number; count: number }>;

async function sums(metrics: TealMetrics): Promise<Sums> {
  const out: Sums = {};
  const add = (point: string, name: string, value: number) => {
    out[point] ??= { sum: 0, count: 0 };
    if (name.endsWith('_sum')) out[point].sum += value;
    if (name.endsWith('_count')) out[point].count += value;
  };
  for (const v of (await metrics.streamLatencySeconds.get()).values)
    add(String(v.labels.point), v.metricName ?? '', v.value);
  for (const v of (await metrics.replicationLagSeconds.get()).values)
    add('applied', v.metricName ?? '', v.value);
  return out;
}

describe('teal_stream_latency_seconds', () => {
  test('each transaction is observed at every point, the points in the order a change passes them', async () => {
    const name = uniqueName('lat_hops');
    const config = controlConfig(name, blueUrl(), [`public.${name}`]);
    const blue = await sessionOn(blueUrl());
    const green = await sessionOn(greenUrl());
    await tableOnBoth(blue, green, name, 'id int PRIMARY KEY, v text');
    const { metrics } = await controlPipeline(config);

    const before = await sums(metrics);
    const transactions = 5;
    for (let i = 1; i <= transactions; i++) {
      // One at a time, each applied before the next: each is a batch of its own at every hop.
      await blue.query(`INSERT INTO ${name} VALUES ($1, 'v')`, [i]);
      await waitFor(
        async () => (await green.query(`SELECT 1 FROM ${name} WHERE id = $1`, [i])).rowCount === 1,
        {
          what: `row ${i} in green`,
          timeoutMs: 30_000,
        },
      );
    }
    // The applier observes after its green commit returns: wait for the last observation.
    await waitFor(
      async () => ((await sums(metrics)).applied?.count ?? 0) - (before.applied?.count ?? 0) >= transactions,
      {
        what: 'every transaction observed as applied',
        timeoutMs: 10_000,
      },
    );

    const after = await sums(metrics);
    const mean: Record<string, number> = {};
    for (const point of ['decoded', 'sent', 'acknowledged', 'fetched', 'applied']) {
      const count = (after[point]?.count ?? 0) - (before[point]?.count ?? 0);
      expect(count, `observations at ${point}`).toBeGreaterThanOrEqual(transactions);
      mean[point] = ((after[point]?.sum ?? 0) - (before[point]?.sum ?? 0)) / count;
      // Seconds, not µs or ms mistaken for seconds: a row reached green well within this.
      expect(mean[point], point).toBeGreaterThanOrEqual(0);
      expect(mean[point], point).toBeLessThan(30);
    }
    // Each batch is observed at send and at its ack, and at fetch and apply, by the same
    // component: those means are over the same batches. A commit is decoded before either.
    expect(mean.sent).toBeLessThanOrEqual(mean.acknowledged);
    expect(mean.fetched).toBeLessThanOrEqual(mean.applied);
    expect(mean.decoded).toBeLessThanOrEqual(mean.applied);
    expect(mean.decoded).toBeLessThanOrEqual(mean.sent);
  });
});
