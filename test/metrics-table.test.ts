import fs from 'node:fs';
import { build, type ControlBackend } from '@teal/control';
import { createMetrics } from '@teal/runtime';
import { describe, expect, onTestFinished, test } from 'vitest';
import { freePort } from './support/env.ts';

// Issue 16 item 4: the README's metric tables are exact. Every metric GET /metrics serves is
// a row (name, type, labels) and every row is served; a metric added, renamed or retyped
// without its row (or a row left behind) fails here.

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

describe("README's metric tables", () => {
  test('name, type and labels of every metric GET /metrics serves, and nothing else', async () => {
    const metrics = createMetrics();
    const backend = { collectMetrics: async () => {} } as unknown as ControlBackend;
    const port = await freePort();
    const app = build({ backend, host: '127.0.0.1', port, metrics });
    onTestFinished(() => app.close());
    await app.listen({ host: '127.0.0.1', port });

    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
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
});
