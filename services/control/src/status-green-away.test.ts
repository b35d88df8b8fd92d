import { describe, expect, it } from 'vitest';
import { greenWarnings, statusReport } from './status-derive.ts';
import { readGreenSide } from './status-reads.ts';

const config = {
  slot: 'teal_slot',
  lag: { warnBytes: 1000, criticalBytes: 8000 },
  kafka: { topicPrefix: 'teal' },
};

describe('status while green does not answer', () => {
  it('reports blue and Kafka with a warning instead of failing when green refuses connections', async () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5434'), { code: 'ECONNREFUSED' });
    const side = await readGreenSide(() => Promise.reject(refused), { control: new Map(), applied: [] });
    expect(side.unreachable).toBe(refused);
    const report = statusReport({
      config,
      slot: undefined,
      fenced: false,
      stored: {},
      applied: side.applied,
      topics: { tables: new Map(), deadLetters: 0 },
      live: {},
      draining: false,
      greenUnreachable: side.unreachable,
    });
    expect(report.warnings[0]).toMatch(/^green does not answer \(connect ECONNREFUSED 127\.0\.0\.1:5434\)/);
  });

  it('keeps other errors of green (not an outage) as failures', async () => {
    const denied = Object.assign(new Error('permission denied for schema teal'), { code: '42501' });
    await expect(readGreenSide(() => Promise.reject(denied), { applied: [] })).rejects.toBe(denied);
  });

  it("warns from the in-process producer's view: green away, state writes waiting", () => {
    const report = statusReport({
      config,
      slot: undefined,
      fenced: false,
      stored: {},
      applied: [],
      topics: { tables: new Map(), deadLetters: 0 },
      live: {
        producer: {
          status: () => ({
            state: 'streaming',
            green: { reachable: false, unreachableSince: '2026-12-01T11:00:00.000Z', pendingWrites: 3 },
          }),
        },
      },
      draining: false,
    });
    expect(report.state).toBe('streaming');
    expect(report.warnings).toContain(
      'green does not answer the producer since 2026-12-01T11:00:00.000Z: streaming to Kafka goes on; 3 state write(s) wait and are written when green is back',
    );
  });

  it('says nothing while green answers', () => {
    expect(greenWarnings(undefined, { reachable: true, pendingWrites: 0 })).toEqual([]);
    expect(greenWarnings(undefined, null)).toEqual([]);
  });
});
