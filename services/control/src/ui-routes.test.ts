import { createMetrics } from '@teal/runtime';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { build } from './app.ts';
import type { ControlBackend } from './backend.ts';
import { slotStatus } from './status-derive.ts';
import { StatusSampler, sampleOf } from './status-history.ts';
import type { StatusReport } from './types.ts';

// The status page's routes and its lag history, without a server: the page's files are
// public (they hold no data), its data is not; the history is bounded and says what it knows.

const TOKEN = 'ui-token-0123456789';

const SLOT_ROW = {
  slot: 's',
  plugin: 'pgoutput',
  active: true,
  walStatus: 'reserved',
  confirmedFlushLsn: 0x1ffff00n,
  restartLsn: 0x1000000n,
  currentLsn: 0x2000000n,
  lagBytes: 256,
  retainedBytes: 4096,
};

function report(
  over: Partial<StatusReport> = {},
  lagRecords = 0,
  lagSeconds: number | null = 0.25,
): StatusReport {
  return {
    state: 'streaming',
    paused: false,
    fenced: false,
    // The slot as status-derive makes it from blue's row; lag seconds as the case needs.
    slot: { ...slotStatus('s', SLOT_ROW, null, { warnBytes: 1e9, criticalBytes: 2e9 }), lagSeconds },
    producer: null,
    consumer: { state: 'running', partitions: [], lagRecords, deadLetters: 2, blocked: [], error: null },
    warnings: [],
    checkedAt: new Date().toISOString(),
    ...over,
  };
}

const backend = { status: async () => report() } as unknown as ControlBackend;

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

function make(token?: string) {
  app = build({ backend, token, host: '127.0.0.1', metrics: createMetrics() });
  return app;
}

describe('GET /ui', () => {
  it('serves the page and its files without a token, with a CSP that allows only the page itself', async () => {
    const api = make(TOKEN);
    const page = await api.inject({ url: '/ui' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("connect-src 'self'");
    expect(page.body).toContain('<script type="module" src="ui/app.js">');
    for (const [file, type] of [
      ['app.js', 'text/javascript'],
      ['chart.js', 'text/javascript'],
      ['render.js', 'text/javascript'],
      ['style.css', 'text/css'],
    ]) {
      const res = await api.inject({ url: `/ui/${file}` });
      expect(res.statusCode, file).toBe(200);
      expect(res.headers['content-type']).toBe(`${type}; charset=utf-8`);
    }
  });

  it('serves no other file (no path out of the folder)', async () => {
    const api = make(TOKEN);
    for (const url of ['/ui/index.html', '/ui/..%2fapp.ts', '/ui/%2e%2e%2fauth.ts']) {
      const res = await api.inject({ url });
      expect(res.statusCode, url).toBe(400);
      expect(res.json().error.code).toBe('TEAL_BAD_REQUEST');
    }
  });

  it('keeps the data behind the token: /status/history and /status answer 401 without it', async () => {
    const api = make(TOKEN);
    for (const url of ['/status/history', '/status']) {
      expect((await api.inject({ url })).statusCode, url).toBe(401);
    }
    expect((await api.inject({ method: 'POST', url: '/pause', payload: {} })).statusCode).toBe(401);
    const ok = await api.inject({ url: '/status/history', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ sampleMs: 2_000, keepMs: 900_000, samples: [] });
  });

  it('is in the OpenAPI document: the page and its files public, the history with the error answers', async () => {
    const api = make(TOKEN);
    const doc = (await api.inject({ url: '/docs', headers: { authorization: `Bearer ${TOKEN}` } })).json();
    expect(doc.paths['/ui'].get.security).toEqual([]);
    expect(Object.keys(doc.paths['/ui'].get.responses['200'].content)).toEqual(['text/html; charset=utf-8']);
    expect(doc.paths['/ui/{file}'].get.security).toEqual([]);
    expect(doc.paths['/ui/{file}'].get.parameters[0].schema.enum).toEqual([
      'app.js',
      'chart.js',
      'render.js',
      'style.css',
    ]);
    expect(Object.keys(doc.paths['/ui/{file}'].get.responses)).toEqual(['200', '400']);
    expect(Object.keys(doc.paths['/status/history'].get.responses)).toEqual(['200', '401', '500', '503']);
    await api.close();
    const open = (await make().inject({ url: '/docs' })).json();
    expect(Object.keys(open.paths['/status/history'].get.responses)).toEqual(['200', '500', '503']);
  });
});

describe('status history', () => {
  it('commit→green is the mean of the batches applied since the sample before', () => {
    const s = sampleOf(report({}, 40), { sum: 13, count: 12 }, { sum: 10, count: 10 });
    expect(s.commitToGreenSeconds).toBe(1.5);
    expect(s).toMatchObject({
      retainedWalBytes: 4096,
      slotLagBytes: 256,
      consumerLagRecords: 40,
      deadLetters: 2,
    });
  });

  it('no batch applied: the slot lag when Kafka holds nothing unapplied, unknown when records wait', () => {
    expect(
      sampleOf(report({}, 0, 0.25), { sum: 1, count: 1 }, { sum: 1, count: 1 }).commitToGreenSeconds,
    ).toBe(0.25);
    expect(
      sampleOf(report({}, 7), { sum: 1, count: 1 }, { sum: 1, count: 1 }).commitToGreenSeconds,
    ).toBeNull();
    expect(sampleOf(report({}, 7), undefined, undefined).commitToGreenSeconds).toBeNull();
  });

  it('keeps only the last keepMs and samples faster while watched', async () => {
    let now = 1_000_000;
    const at = () => new Date(now).toISOString();
    const sampler = new StatusSampler(
      { status: async () => report({ checkedAt: at() }) },
      { keepMs: 10_000, watchedMs: 1_000, idleMs: 5_000, watchWindowMs: 3_000 },
      undefined,
      () => now,
    );
    for (let i = 0; i < 30; i++) {
      await sampler.sample();
      now += 1_000;
    }
    const kept = sampler.view().samples;
    expect(kept.length).toBeLessThanOrEqual(10);
    expect(Date.parse(kept[0]!.at)).toBeGreaterThanOrEqual(now - 10_000);
    expect(sampler.view().sampleMs).toBe(5_000);
    sampler.watched();
    expect(sampler.view().sampleMs).toBe(1_000);
    now += 3_001;
    expect(sampler.view().sampleMs).toBe(5_000);
  });

  it('a failing status leaves a gap, not an error', async () => {
    const errors: unknown[] = [];
    const sampler = new StatusSampler(
      {
        status: async () => {
          throw new Error('blue away');
        },
      },
      {},
      (e) => errors.push(e),
    );
    await sampler.sample();
    expect(sampler.view().samples).toEqual([]);
    expect(errors).toHaveLength(1);
  });
});
