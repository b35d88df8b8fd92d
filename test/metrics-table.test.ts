import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { build, type ControlBackend } from '@teal/control';
import { createMetrics, type TealMetrics } from '@teal/runtime';
import { describe, expect, onTestFinished, test } from 'vitest';
import * as promtoolTool from '../infra/tools/promtool.mjs';
import { freePort } from './support/env.ts';

// Issue 16 item 4: the README's metric tables are exact. Every metric GET /metrics serves is
// a row (name, type, labels) and every row is served; a metric added, renamed or retyped
// without its row (or a row left behind) fails here. And what it serves passes Prometheus'
// own linter (promtool check metrics: _total on counters only, base units, help texts).

interface Row {
  type: string;
  labels: string[];
}

/** The rows of the tables in README.md's "### Metrics" section, by metric name. */
function readmeRows(): Map<string, Row> {
  const readme = fs.readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('\n### Metrics\n');
  expect(start, 'README.md has a "### Metrics" section').toBeGreaterThan(0);
  const end = readme.indexOf('\n## ', start + 1);
  const rows = new Map<string, Row>();
  for (const line of readme.slice(start, end < 0 ? undefined : end).split('\n')) {
    const m = /^\| `(teal_[a-z0-9_]+)` \| (\w+) \| ([^|]+) \|/.exec(line);
    if (!m) continue;
    expect(rows.has(m[1]), `${m[1]} listed twice`).toBe(false);
    const labels = m[3].trim() === '–' ? [] : m[3].split(',').map((l) => l.trim());
    rows.set(m[1], { type: m[2], labels });
  }
  return rows;
}

/** What GET /metrics of a live API serves, with `metrics` behind it. */
async function scrape(metrics: TealMetrics): Promise<string> {
  const backend = { collectMetrics: async () => {} } as unknown as ControlBackend;
  const port = await freePort();
  const app = build({ backend, host: '127.0.0.1', port, metrics });
  onTestFinished(() => app.close());
  await app.listen({ host: '127.0.0.1', port });
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

function promtoolCheck(promtool: string, text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(promtool, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

describe("README's metric tables", () => {
  test('name, type and labels of every metric GET /metrics serves, and nothing else', async () => {
    const metrics = createMetrics();
    const text = await scrape(metrics);
    const served = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
    // Labels are not in the text until a series exists: take them from the registry served.
    const labels = new Map(
      metrics.registry
        .getMetricsAsArray()
        .map((m) => [m.name, (m as unknown as { labelNames: string[] }).labelNames ?? []]),
    );

    const rows = readmeRows();
    expect(served.size).toBeGreaterThan(30);
    expect([...rows.keys()].sort()).toEqual([...served.keys()].sort());
    for (const [name, type] of served) {
      expect(rows.get(name), name).toEqual({ type, labels: labels.get(name) });
    }
  });

  test('promtool check metrics finds nothing to lint, every series present', async () => {
    const promtool = await promtoolTool.ensure();
    const metrics = createMetrics();
    // One series of each labelled metric, so the linter sees samples, not only TYPE lines.
    metrics.eventsProduced.inc({ table: 'public.t', op: 'c' });
    metrics.eventsApplied.inc({ table: 'public.t', op: 'c' });
    metrics.eventsSkipped.inc({ table: 'public.t' });
    metrics.deadLetters.inc({ table: 'public.t', code: 'TEAL_APPLY_REJECTED' });
    metrics.snapshotRows.inc({ table: 'public.t' }, 10);
    metrics.consumerLagRecords.set({ topic: 'teal.public.t', partition: '0' }, 3);
    metrics.state.set({ state: 'streaming' }, 1);
    metrics.applyBatchSeconds.observe(0.02);
    metrics.applyBatchRows.observe(100);
    metrics.replicationLagSeconds.observe(0.4);
    metrics.streamLatencySeconds.observe({ point: 'acknowledged' }, 0.2);
    const text = await scrape(metrics);
    expect(text).toMatch(/^teal_consumer_lag_records\{/m);
    const { code, output } = await promtoolCheck(promtool, text);
    expect(output.trim()).toBe('');
    expect(code).toBe(0);
  });
});
