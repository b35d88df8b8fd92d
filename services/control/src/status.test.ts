import type { SlotState } from '@teal/postgres';
import { createMetrics } from '@teal/runtime';
import { describe, expect, it } from 'vitest';
import { partitionsBehind } from './drain.ts';
import {
  blockedPartitions,
  deriveState,
  lagLevel,
  partitionStatuses,
  producerView,
  type StateInputs,
  type StatusInputs,
  slotStatus,
  statusReport,
  statusWarnings,
  updateGauges,
} from './status-derive.ts';
import type { StatusReport } from './types.ts';

const thresholds = { warnBytes: 1000, criticalBytes: 8000 };
const slotRow: SlotState = {
  slot: 'teal_slot',
  plugin: 'pgoutput',
  active: true,
  walStatus: 'reserved',
  currentLsn: 0x3000n,
  confirmedFlushLsn: 0x2000n,
  restartLsn: 0x1000n,
  lagBytes: 4096,
  retainedBytes: 8192,
};

describe('topics and partitions', () => {
  it('counts a partition with records but no applied row as behind by all of them', () => {
    const ends = new Map([
      [
        'teal.public.t',
        [
          { partition: 0, end: 5 },
          { partition: 1, end: 0 },
          { partition: 2, end: 3 },
        ],
      ],
    ]);
    const applied = [{ topic: 'teal.public.t', partition: 0, kafkaOffset: 4, position: '0/10:1' }];
    expect(partitionsBehind(ends, applied).map((p) => p.behind)).toEqual([0, 0, 3]);
    const st = partitionStatuses(ends, applied, [
      { topic: 'teal.public.t', partition: 2, reason: 'column missing' },
    ]);
    expect(st.map((p) => [p.lag, p.appliedOffset, p.blocked])).toEqual([
      [0, 4, null],
      [0, null, null],
      [3, null, 'column missing'],
    ]);
  });

  it('reads blocked partitions from the consumer status and from consumer_blocked', () => {
    const blocked = blockedPartitions(
      {
        partitions: [
          { topic: 'a', partition: 1, blocked: 'schema' },
          { topic: 'a', partition: 2 },
        ],
      },
      { 'b.c.d:3': 'dead' },
    );
    expect(blocked).toEqual([
      { topic: 'a', partition: 1, reason: 'schema' },
      { topic: 'b.c.d', partition: 3, reason: 'dead' },
    ]);
  });
});

describe('slot', () => {
  it('grades retained WAL against the thresholds', () => {
    expect(lagLevel(999, thresholds)).toBe('ok');
    expect(lagLevel(1000, thresholds)).toBe('warn');
    expect(lagLevel(8000, thresholds)).toBe('critical');
    expect(slotStatus('teal_slot', slotRow, null, thresholds).level).toBe('critical');
  });

  it('derives lag seconds from the producer commit time when behind', () => {
    const producer = producerView(
      { state: 'streaming', lastCommitTimeUs: 1_000_000_000n },
      'in-process',
      null,
    );
    const slot = slotStatus('teal_slot', slotRow, producer, thresholds, 1_000_000 + 2_500);
    expect(slot.lagSeconds).toBe(2.5);
    expect(slotStatus('teal_slot', { ...slotRow, lagBytes: 0 }, producer, thresholds).lagSeconds).toBe(0);
  });

  it('reports a missing slot', () => {
    const slot = slotStatus('teal_slot', undefined, null, thresholds);
    expect(slot.exists).toBe(false);
  });
});

describe('state', () => {
  const base: StateInputs = {
    draining: false,
    paused: false,
    fenced: false,
    slot: slotStatus('teal_slot', slotRow, null, { warnBytes: 1e12, criticalBytes: 1e13 }),
    producer: producerView({ state: 'streaming' }, 'in-process', null),
    consumerState: 'running',
    lagRecords: 0,
  };

  it('orders draining > failed > paused', () => {
    expect(deriveState(base)).toBe('streaming');
    expect(deriveState({ ...base, paused: true })).toBe('paused');
    expect(deriveState({ ...base, paused: true, consumerState: 'failed' })).toBe('failed');
    expect(deriveState({ ...base, paused: true, draining: true })).toBe('draining');
    expect(deriveState({ ...base, slot: { ...base.slot!, walStatus: 'lost' } })).toBe('failed');
  });

  it('is snapshotting, stopped or drained from what it sees', () => {
    expect(
      deriveState({ ...base, producer: producerView({ state: 'snapshotting' }, 'in-process', null) }),
    ).toBe('snapshotting');
    expect(deriveState({ ...base, producer: null })).toBe('stopped');
    const stale = producerView({ state: 'streaming' }, 'green', '2020-01-01T00:00:00.000Z');
    expect(deriveState({ ...base, producer: stale })).toBe('stopped');
    expect(deriveState({ ...base, fenced: true })).toBe('drained');
    expect(deriveState({ ...base, fenced: true, lagRecords: 3 })).toBe('streaming');
  });

  it('warns while paused that blue retains WAL, and sets the gauges', () => {
    const report: StatusReport = {
      state: 'paused',
      paused: true,
      fenced: false,
      slot: base.slot,
      producer: base.producer,
      consumer: {
        state: 'running',
        partitions: [
          {
            topic: 'teal.public.t',
            partition: 0,
            appliedOffset: 1,
            appliedPosition: null,
            end: 9,
            lag: 7,
            blocked: null,
          },
        ],
        lagRecords: 7,
        deadLetters: 2,
        blocked: [],
        error: null,
      },
      warnings: [],
      checkedAt: '',
    };
    const warnings = statusWarnings(report, 'teal');
    expect(warnings.join('\n')).toMatch(/paused: blue keeps WAL for slot teal_slot \(8.0 kB now\)/);
    expect(warnings.join('\n')).toMatch(/2 record\(s\) in the dead-letter topic teal\._dlq/);
    const metrics = createMetrics();
    updateGauges(metrics, report);
    return metrics.registry.metrics().then((text) => {
      expect(text).toMatch(/^teal_slot_lag_bytes 4096$/m);
      expect(text).toMatch(/^teal_slot_retained_wal_bytes 8192$/m);
      expect(text).toMatch(/^teal_consumer_lag_records\{topic="teal.public.t",partition="0"\} 7$/m);
      expect(text).toMatch(/^teal_state\{state="paused"\} 1$/m);
      expect(text).toMatch(/^teal_state\{state="streaming"\} 0$/m);
    });
  });
});

describe('direction', () => {
  const inputs = (direction?: 'forward' | 'reverse'): StatusInputs => ({
    config: { slot: 's', lag: thresholds, kafka: { topicPrefix: 'p' } },
    slot: slotRow,
    fenced: false,
    stored: {},
    applied: [],
    topics: { tables: new Map(), deadLetters: 0 },
    live: {},
    draining: false,
    ...(direction ? { direction } : {}),
  });
  it("says reverse for teal reverse's pipeline and forward otherwise", () => {
    expect(statusReport(inputs('reverse')).direction).toBe('reverse');
    expect(statusReport(inputs()).direction).toBe('forward');
  });
});
