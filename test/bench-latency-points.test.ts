import { createMetrics, mergeMetrics } from '@teal/runtime';
import { Registry } from 'prom-client';
import { describe, expect, test } from 'vitest';
import { meanLatencyMs } from '../bench/lib/util.ts';
import { latencySums } from '../bench/systems/teal.ts';

// The bench splits teal's steady lag by hop from GET /metrics: its parser reads what teal's
// registries serve (`teal run`: the main thread's and the producer thread's, merged), and the
// window's mean is the difference of two readings.
describe("the bench's reading of teal's latency histograms", () => {
  test("sums and counts by point from teal run's merged text; the mean over a window", async () => {
    const main = createMetrics(new Registry(), { defaultMetrics: false });
    const producer = createMetrics(new Registry(), { defaultMetrics: false });
    producer.streamLatencySeconds.observe({ point: 'decoded' }, 0.002);
    producer.streamLatencySeconds.observe({ point: 'sent' }, 0.004);
    main.streamLatencySeconds.observe({ point: 'fetched' }, 0.03);
    main.replicationLagSeconds.observe(0.05);
    const read = async () =>
      latencySums(
        await mergeMetrics(
          await main.registry.getMetricsAsJSON(),
          await producer.registry.getMetricsAsJSON(),
        ),
      );

    const before = await read();
    expect(before).toEqual({
      decoded: { sum: 0.002, count: 1 },
      sent: { sum: 0.004, count: 1 },
      fetched: { sum: 0.03, count: 1 },
      applied: { sum: 0.05, count: 1 },
    });

    producer.streamLatencySeconds.observe({ point: 'sent' }, 0.006);
    producer.streamLatencySeconds.observe({ point: 'sent' }, 0.01);
    main.replicationLagSeconds.observe(0.07);
    const means = meanLatencyMs(before, await read());
    // decoded and fetched saw nothing in the window: left out, not 0 or NaN.
    expect(Object.keys(means).sort()).toEqual(['latencyAppliedMs', 'latencySentMs']);
    expect(means.latencySentMs).toBeCloseTo(8, 6);
    expect(means.latencyAppliedMs).toBeCloseTo(70, 6);
  });
});
