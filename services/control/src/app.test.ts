import { TealError } from '@teal/errors';
import { createMetrics } from '@teal/runtime';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { build } from './app.ts';
import { tokenMatches } from './auth.ts';
import type { ControlBackend } from './backend.ts';
import { assertSafeBind } from './server.ts';
import type { DrainOptions, DrainResult, ReadyReport, StatusReport } from './types.ts';

const NO_HOLES = { preparedTransactions: [], sessions: [] };
const AT = '2026-12-01T10:00:00+00:00';

const TOKEN = 's3cret-token-0123456789';

function drainResult(): DrainResult {
  return {
    drained: true,
    clean: true,
    deadLetters: { total: 0, tables: [] },
    lsn: '0/16B3748',
    targetLsn: '0/16B3748',
    confirmedLsn: '0/16B3800',
    partitions: [{ topic: 'teal.public.t', partition: 0, end: 3, appliedOffset: 2, behind: 0 }],
    waitedMs: 12,
    fenced: false,
  };
}

const status: StatusReport = {
  state: 'streaming',
  paused: false,
  fenced: false,
  slot: {
    name: 'teal_slot',
    exists: true,
    active: true,
    walStatus: 'reserved',
    currentLsn: '0/2000000',
    confirmedLsn: '0/1FFFF00',
    restartLsn: '0/1000000',
    lagBytes: 256,
    retainedWalBytes: 16777216,
    lagSeconds: 0.5,
    level: 'ok',
  },
  producer: null,
  consumer: { state: 'running', partitions: [], lagRecords: 0, deadLetters: 0, blocked: [], error: null },
  warnings: [],
  checkedAt: '2024-01-01T00:00:00.000Z',
};

class FakeBackend implements ControlBackend {
  drains: DrainOptions[] = [];
  releaseDrain: (() => void) | undefined;
  drainError: unknown;
  paused = false;
  async status() {
    return { ...status, secretField: 'must not leak' } as StatusReport;
  }
  async pause() {
    this.paused = true;
    return { paused: true };
  }
  async resume() {
    this.paused = false;
    return { paused: false };
  }
  async drain(opts: DrainOptions) {
    this.drains.push(opts);
    if (this.drainError) throw this.drainError;
    if (this.drains.length === 1 && this.releaseDrain === undefined) {
      await new Promise<void>((resolve) => {
        this.releaseDrain = resolve;
      });
    }
    return drainResult();
  }
  async cutover() {
    return {
      safeToSwitch: true,
      fenced: true,
      drainLsn: '0/1',
      deadLetters: { total: 0, tables: [] },
      fenceHoles: { preparedTransactions: [], sessions: [] },
      steps: [],
      sequences: [],
      verify: null,
      warnings: [],
    };
  }
  async verify() {
    return { ok: true, startedAt: 'a', finishedAt: 'b', durationMs: 1, tables: [] };
  }
  async fence() {
    return { fenced: true, database: 'app', terminatedSessions: 2, fencedAt: AT, ...NO_HOLES };
  }
  async unfence() {
    return { fenced: false, database: 'app', terminatedSessions: 0, fencedAt: null, ...NO_HOLES };
  }
  async ready(): Promise<ReadyReport> {
    return {
      ready: true,
      checks: {
        blue: { ok: true, error: null },
        green: { ok: true, error: null },
        kafka: { ok: true, error: null },
      },
    };
  }
}

let app: FastifyInstance;
afterEach(async () => {
  await app?.close();
});

function make(token: string | null = TOKEN, backend = new FakeBackend()) {
  const metrics = createMetrics();
  app = build({ backend, token: token ?? undefined, host: '127.0.0.1', metrics });
  return { backend, metrics };
}

const auth = { authorization: `Bearer ${TOKEN}` };

describe('auth', () => {
  it('rejects a missing token with 401 and WWW-Authenticate', async () => {
    make();
    const res = await app.inject({ method: 'GET', url: '/status' });
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(res.json().error.code).toBe('TEAL_UNAUTHORIZED');
    expect(res.json().error.message).toMatch(/missing bearer token/);
  });

  it('rejects a wrong token, another scheme and a token of another length', async () => {
    make();
    for (const authorization of [
      `Bearer ${TOKEN}x`,
      'Bearer x',
      `Basic ${TOKEN}`,
      `Bearer ${TOKEN.slice(0, -1)}`,
    ]) {
      const res = await app.inject({ method: 'POST', url: '/pause', headers: { authorization } });
      expect(res.statusCode, authorization).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
  });

  it('accepts the right token', async () => {
    const { backend } = make();
    const res = await app.inject({ method: 'POST', url: '/pause', headers: auth });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ paused: true });
    expect(backend.paused).toBe(true);
  });

  it('lets /healthz and /readyz through without a token', async () => {
    make();
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ ok: true });
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json().ready).toBe(true);
  });

  it('requires no token when none is configured', async () => {
    make(null);
    expect((await app.inject({ method: 'GET', url: '/status' })).statusCode).toBe(200);
  });

  it('compares tokens as digests, so different lengths neither throw nor match', () => {
    expect(tokenMatches(TOKEN, TOKEN)).toBe(true);
    expect(tokenMatches('', TOKEN)).toBe(false);
    expect(tokenMatches(`${TOKEN}${'x'.repeat(1000)}`, TOKEN)).toBe(false);
    expect(tokenMatches(TOKEN.toUpperCase(), TOKEN)).toBe(false);
  });
});

describe('validation', () => {
  it('rejects an out-of-range timeout with 400 naming the field', async () => {
    const { backend } = make();
    const res = await app.inject({ method: 'POST', url: '/drain', headers: auth, payload: { timeoutMs: 5 } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('TEAL_BAD_REQUEST');
    expect(res.json().error.message).toMatch(/body\.timeoutMs must be >= 1000/);
    expect(backend.drains).toHaveLength(0);
  });

  it('rejects a wrong type instead of coercing it', async () => {
    make();
    const res = await app.inject({
      method: 'POST',
      url: '/drain',
      headers: auth,
      payload: { timeoutMs: '5000' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/body\.timeoutMs must be integer/);
    const fence = await app.inject({
      method: 'POST',
      url: '/cutover',
      headers: auth,
      payload: { fence: 'yes' },
    });
    expect(fence.statusCode).toBe(400);
    expect(fence.json().error.message).toMatch(/body\.fence must be boolean/);
  });

  it('rejects unknown fields with 400 naming them and the allowed ones', async () => {
    make();
    const res = await app.inject({
      method: 'POST',
      url: '/drain',
      headers: auth,
      payload: { timeout: 5000 },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/unknown field "timeout" \(allowed: timeoutMs, fence\)/);
    const pause = await app.inject({ method: 'POST', url: '/pause', headers: auth, payload: { now: true } });
    expect(pause.statusCode).toBe(400);
    expect(pause.json().error.message).toMatch(/unknown field "now"/);
  });

  it('rejects bad table names in /verify', async () => {
    make();
    const res = await app.inject({
      method: 'POST',
      url: '/verify',
      headers: auth,
      payload: { tables: ['a b'] },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/body\.tables\.0 must match pattern/);
  });

  it('answers malformed JSON with 400, not 500', async () => {
    make();
    const res = await app.inject({
      method: 'POST',
      url: '/drain',
      headers: { ...auth, 'content-type': 'application/json' },
      payload: '{"timeoutMs": ',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('TEAL_BAD_REQUEST');
  });

  it('answers a huge body with 413', async () => {
    make();
    const res = await app.inject({
      method: 'POST',
      url: '/verify',
      headers: auth,
      payload: { tables: Array.from({ length: 20_000 }, (_, i) => `public.table_${i}`) },
    });
    expect(res.statusCode).toBe(413);
    expect(res.json().error.code).toBe('TEAL_BODY_TOO_LARGE');
  });

  it('applies defaults to an empty POST', async () => {
    const { backend } = make(null);
    backend.releaseDrain = () => {};
    const res = await app.inject({ method: 'POST', url: '/drain' });
    expect(res.statusCode).toBe(200);
    expect(backend.drains[0]).toMatchObject({ timeoutMs: 300_000, fence: false });
  });
});

describe('drain', () => {
  it('returns the LSN and strips undeclared fields from answers', async () => {
    const { backend } = make();
    backend.releaseDrain = () => {};
    const res = await app.inject({
      method: 'POST',
      url: '/drain',
      headers: auth,
      payload: { timeoutMs: 2000, fence: true },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ drained: true, lsn: '0/16B3748' });
    expect(backend.drains[0]).toMatchObject({ timeoutMs: 2000, fence: true });
    const st = await app.inject({ method: 'GET', url: '/status', headers: auth });
    expect(st.json().state).toBe('streaming');
    expect(st.json()).not.toHaveProperty('secretField');
  });

  it('serialises drains: a second one while the first runs gets 409', async () => {
    const { backend } = make();
    const first = app.inject({ method: 'POST', url: '/drain', headers: auth, payload: {} });
    const { waitFor } = await import('@teal/runtime');
    await waitFor(() => backend.releaseDrain !== undefined, { what: 'the first drain to start' });
    const second = await app.inject({ method: 'POST', url: '/drain', headers: auth, payload: {} });
    expect(second.statusCode).toBe(409);
    expect(second.json().error.code).toBe('TEAL_BUSY');
    const cutover = await app.inject({ method: 'POST', url: '/cutover', headers: auth, payload: {} });
    expect(cutover.statusCode).toBe(409);
    backend.releaseDrain?.();
    expect((await first).statusCode).toBe(200);
    expect(backend.drains).toHaveLength(1);
    // Free again once the first finished.
    expect((await app.inject({ method: 'POST', url: '/drain', headers: auth, payload: {} })).statusCode).toBe(
      200,
    );
  });

  it('maps a drain timeout to 504 with what is behind', async () => {
    const backend = new FakeBackend();
    backend.drainError = new TealError(
      'TEAL_DRAIN_TIMEOUT',
      'drain did not finish within 1000 ms: 1 partition(s) behind',
      {
        status: 504,
        details: { partitionsBehind: [{ topic: 'teal.public.t', partition: 0, behind: 3 }] },
      },
    );
    make(TOKEN, backend);
    const res = await app.inject({
      method: 'POST',
      url: '/drain',
      headers: auth,
      payload: { timeoutMs: 1000 },
    });
    expect(res.statusCode).toBe(504);
    expect(res.json().error).toMatchObject({
      code: 'TEAL_DRAIN_TIMEOUT',
      details: { partitionsBehind: [{ topic: 'teal.public.t', behind: 3 }] },
    });
  });

  it('hides secrets of unexpected errors', async () => {
    const backend = new FakeBackend();
    backend.drainError = new Error('boom at postgres://admin:hunter2@db:5432/app');
    make(TOKEN, backend);
    const res = await app.inject({ method: 'POST', url: '/drain', headers: auth, payload: {} });
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toContain('hunter2');
    expect(res.json().error.code).toBe('TEAL_INTERNAL');
  });
});

describe('errors, docs and metrics', () => {
  it('answers unknown routes with 404 in the error shape', async () => {
    make();
    const res = await app.inject({ method: 'GET', url: '/nope', headers: auth });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({
      error: { code: 'TEAL_NOT_FOUND', message: expect.stringMatching(/GET \/nope/) },
    });
  });

  it('answers readiness failures with 503 naming the failing dependency', async () => {
    const backend = new FakeBackend();
    backend.ready = async () => ({
      ready: false,
      checks: {
        blue: { ok: true, error: null },
        green: { ok: false, error: 'connect ECONNREFUSED 127.0.0.1:5434' },
        kafka: { ok: true, error: null },
      },
    });
    make(TOKEN, backend);
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json().error.message).toMatch(/green: connect ECONNREFUSED/);
  });

  it('serves an OpenAPI document with every path', async () => {
    make();
    const res = await app.inject({ method: 'GET', url: '/docs', headers: auth });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    for (const path of [
      '/healthz',
      '/readyz',
      '/status',
      '/pause',
      '/resume',
      '/drain',
      '/cutover',
      '/verify',
      '/metrics',
      '/fence',
      '/unfence',
    ]) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
    expect(doc.paths['/drain'].post.requestBody.content['application/json'].schema.additionalProperties).toBe(
      false,
    );
  });

  it('serves Prometheus text with teal_ metrics', async () => {
    const { metrics } = make();
    metrics.slotLagBytes.set(1234);
    const res = await app.inject({ method: 'GET', url: '/metrics', headers: auth });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.body).toMatch(/^teal_slot_lag_bytes 1234$/m);
    expect(res.body).toContain('# TYPE teal_consumer_lag_records gauge');
  });
});

describe('bind safety', () => {
  it('refuses a non-loopback bind without a token', () => {
    expect(() => assertSafeBind('0.0.0.0', undefined)).toThrow(/TEAL_API_TOKEN/);
    expect(() => assertSafeBind('10.1.2.3', '')).toThrowError(
      expect.objectContaining({ code: 'TEAL_API_INSECURE_BIND' }),
    );
  });
  it('allows loopback without a token and anything with one', () => {
    for (const host of ['127.0.0.1', '::1', 'localhost'])
      expect(() => assertSafeBind(host, undefined)).not.toThrow();
    expect(() => assertSafeBind('0.0.0.0', TOKEN)).not.toThrow();
  });
});
