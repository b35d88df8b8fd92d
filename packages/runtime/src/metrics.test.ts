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
    expect(text.match(/^# TYPE teal_process_process_cpu_seconds_total /gm)).toHaveLength(1);
    expect(text.match(/^# TYPE teal_events_produced_total /gm)).toHaveLength(1);
  });

  test('createMetrics() still collects the process metrics by default', async () => {
    const text = await createMetrics().registry.metrics();
    expect(text).toMatch(/^teal_process_process_cpu_seconds_total /m);
    expect(await createMetrics(undefined, { defaultMetrics: false }).registry.metrics()).not.toMatch(
      /teal_process_/,
    );
  });
});
