import { describe, expect, test } from 'vitest';
import { createMetrics, mergeMetrics } from './metrics.ts';

// `teal run` serves the main thread's registry merged with the producer thread's.
describe('mergeMetrics', () => {
  test('counters and histograms add up, a gauge series set on the main thread wins, process metrics once', async () => {
    const main = createMetrics();
    const producer = createMetrics(undefined, { defaultMetrics: false });
    producer.eventsProduced.inc({ table: 'public.t', op: 'c' }, 3);
    main.eventsApplied.inc({ table: 'public.t', op: 'c' }, 2);
    main.applyBatchRows.observe(5);
    main.slotLagBytes.set(5);
    producer.slotLagBytes.set(7);
    producer.state.set({ state: 'streaming' }, 1);
    main.state.set({ state: 'consumer_running' }, 1);

    const text = await mergeMetrics(
      await main.registry.getMetricsAsJSON(),
      await producer.registry.getMetricsAsJSON(),
    );
    expect(text).toContain('teal_events_produced_total{table="public.t",op="c"} 3');
    expect(text).toContain('teal_events_applied_total{table="public.t",op="c"} 2');
    expect(text).toContain('teal_apply_batch_rows_count 1');
    expect(text).toMatch(/^teal_slot_lag_bytes 5$/m);
    expect(text).toContain('teal_state{state="streaming"} 1');
    expect(text).toContain('teal_state{state="consumer_running"} 1');
    expect(text.match(/^# TYPE teal_process_cpu_seconds_total /gm)).toHaveLength(1);
    expect(text.match(/^# TYPE teal_events_produced_total /gm)).toHaveLength(1);
  });

  test('createMetrics() still collects the process metrics by default', async () => {
    const text = await createMetrics().registry.metrics();
    expect(text).toMatch(/^teal_process_cpu_seconds_total /m);
    expect(text).toMatch(/^teal_nodejs_eventloop_lag_seconds /m);
    expect(await createMetrics(undefined, { defaultMetrics: false }).registry.metrics()).not.toMatch(
      /teal_(process|nodejs)_/,
    );
  });
});

// Issue 16: process metrics came out as teal_process_process_cpu_user_seconds_total.
describe('metric names follow Prometheus conventions', () => {
  test('one teal_ prefix, _total on counters only, base units', async () => {
    const metrics = await createMetrics().registry.getMetricsAsJSON();
    expect(metrics.length).toBeGreaterThan(30);
    for (const { name, type } of metrics) {
      expect(name).toMatch(/^teal_[a-z0-9_]+$/);
      expect(name).not.toMatch(/^teal_(process_process|process_nodejs|teal)_/);
      if (String(type) === 'counter') expect(name, `${name} is a counter`).toMatch(/_total$/);
      else expect(name, `${name} is a ${type}`).not.toMatch(/_total$/);
      // Units are seconds and bytes, spelled out, never ms/kb.
      expect(name).not.toMatch(/_(ms|milliseconds|us|microseconds|kb|mb|kilobytes|megabytes)(_|$)/);
    }
  });
});
