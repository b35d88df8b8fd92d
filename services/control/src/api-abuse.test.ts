import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import type { ResolvedConfig } from '@teal/config';
import { TealError } from '@teal/errors';
import { createMetrics } from '@teal/runtime';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { build } from './app.ts';
import type { ControlBackend } from './backend.ts';
import { startApi } from './server.ts';
import type { DrainOptions, DrainResult, ReadyReport, StatusReport } from './types.ts';

const NO_HOLES = { preparedTransactions: [], sessions: [] };
const AT = '2026-12-01T10:00:00+00:00';

// Issue 7 part 5: what a hostile or careless client can send the control API. Every answer
// is a 2xx with the declared shape or a 4xx {error: {code, message}} that says what to
// change; never a 5xx, never a state the next normal request cannot get out of.

const TOKEN = 'abuse-token-5f0c9e7d2a41b3c8';
const AUTH = { authorization: `Bearer ${TOKEN}` };

function drained(): DrainResult {
  return {
    drained: true,
    clean: true,
    deadLetters: { total: 0, tables: [] },
    lsn: '0/16B3748',
    targetLsn: '0/16B3748',
    confirmedLsn: '0/16B3800',
    partitions: [],
    waitedMs: 1,
    fenced: false,
  };
}

class FakeBackend implements ControlBackend {
  paused = false;
  drainCalls = 0;
  /** While set, drain() waits for release(). */
  gate: Promise<void> | undefined;
  release: () => void = () => {};
  /** Applied pause/resume calls, in the order the app made them. */
  calls: boolean[] = [];
  delays: number[] = [];

  hold(): void {
    this.gate = new Promise((resolve) => {
      this.release = () => {
        this.gate = undefined;
        resolve();
      };
    });
  }
  async status(): Promise<StatusReport> {
    return {
      state: this.paused ? 'paused' : 'streaming',
      paused: this.paused,
      fenced: false,
      slot: null,
      producer: null,
      consumer: null,
      warnings: [],
      checkedAt: '2024-01-01T00:00:00.000Z',
    } as unknown as StatusReport;
  }
  private async setPaused(paused: boolean) {
    // The state changes when the call arrives (as the UPSERT into teal.control would);
    // the answer comes back after a varying delay, so answers overtake each other.
    this.paused = paused;
    this.calls.push(paused);
    const ms = this.delays.shift() ?? 0;
    await new Promise((resolve) => setTimeout(resolve, ms));
    return { paused };
  }
  pause() {
    return this.setPaused(true);
  }
  resume() {
    return this.setPaused(false);
  }
  async drain(_opts: DrainOptions) {
    this.drainCalls++;
    if (this.gate) await this.gate;
    return drained();
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
    return { fenced: true, database: 'app', terminatedSessions: 0, fencedAt: AT, ...NO_HOLES };
  }
  async unfence() {
    return { fenced: false, database: 'app', terminatedSessions: 0, fencedAt: null, ...NO_HOLES };
  }
  async ready(): Promise<ReadyReport> {
    const ok = { ok: true, error: null };
    return { ready: true, checks: { blue: ok, green: ok, kafka: ok } };
  }
}

let app: FastifyInstance;
afterEach(async () => {
  await app?.close();
});

function make(backend = new FakeBackend(), token: string | undefined = TOKEN) {
  app = build({ backend, token, host: '127.0.0.1', metrics: createMetrics(), bodyLimit: 64 * 1024 });
  return backend;
}

const PROTECTED: [string, string][] = [
  ['GET', '/status'],
  ['POST', '/pause'],
  ['POST', '/resume'],
  ['POST', '/fence'],
  ['POST', '/unfence'],
  ['POST', '/drain'],
  ['POST', '/cutover'],
  ['POST', '/verify'],
  ['GET', '/metrics'],
  ['GET', '/docs'],
];
const POSTS = PROTECTED.filter(([m]) => m === 'POST').map(([, p]) => p);

type Answer = { statusCode: number; json(): unknown; body: string };

/** A 4xx in the error shape, with a code and a message a person can act on. */
function expectClientError(res: Answer, status?: number, code?: string | RegExp) {
  expect(res.statusCode, res.body).toBeGreaterThanOrEqual(400);
  expect(res.statusCode, res.body).toBeLessThan(500);
  if (status !== undefined) expect(res.statusCode, res.body).toBe(status);
  const body = res.json() as { error: { code: string; message: string } };
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error.code).toMatch(code ?? /^TEAL_[A-Z_]+$/);
  expect(body.error.message.length).toBeGreaterThan(15);
}

describe('tokens: missing, wrong, malformed', () => {
  const BAD: [string, Record<string, string>][] = [
    ['no header', {}],
    ['empty header', { authorization: '' }],
    ['"Bearer" alone', { authorization: 'Bearer' }],
    ['"Bearer " and spaces', { authorization: 'Bearer    ' }],
    ['wrong token', { authorization: 'Bearer not-the-token' }],
    ['token prefix', { authorization: `Bearer ${TOKEN.slice(0, -1)}` }],
    ['token plus a char', { authorization: `Bearer ${TOKEN}x` }],
    ['token twice', { authorization: `Bearer ${TOKEN} ${TOKEN}` }],
    [
      'Basic with the token as password',
      { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` },
    ],
    ['Basic with the token', { authorization: `Basic ${TOKEN}` }],
    ['token without scheme', { authorization: TOKEN }],
    ['very long token', { authorization: `Bearer ${'A'.repeat(200_000)}` }],
    ['non-ASCII token', { authorization: 'Bearer t\u00f6k\u00e9n-\u00ff' }],
    ['token in another header', { 'x-api-token': TOKEN }],
  ];
  it.each(PROTECTED)(
    '%s %s: every bad header is 401 TEAL_UNAUTHORIZED and the backend is not called',
    async (method, url) => {
      const backend = make();
      for (const [label, headers] of BAD) {
        const res = await app.inject({ method: method as 'GET', url, headers });
        expectClientError(res, 401, 'TEAL_UNAUTHORIZED');
        expect(res.headers['www-authenticate'], label).toMatch(/^Bearer realm="teal"/);
      }
      expect(backend.drainCalls).toBe(0);
      expect(backend.calls).toEqual([]);
    },
  );

  it('the token in the query string is not a token', async () => {
    make();
    expectClientError(await app.inject({ method: 'GET', url: `/status?token=${TOKEN}` }), 401);
    expectClientError(await app.inject({ method: 'GET', url: `/status?access_token=${TOKEN}` }), 401);
  });

  it('lowercase "bearer" and a trailing space are accepted (RFC 7235: the scheme is case-insensitive)', async () => {
    make();
    for (const authorization of [`bearer ${TOKEN}`, `BEARER ${TOKEN} `]) {
      expect(
        (await app.inject({ method: 'GET', url: '/status', headers: { authorization } })).statusCode,
      ).toBe(200);
    }
  });
});

describe('bodies: wrong types, unknown fields, bad JSON, wrong content type, huge', () => {
  const json = { ...AUTH, 'content-type': 'application/json' };
  it.each(POSTS)('POST %s', async (url) => {
    make();
    const cases: [string, string | Buffer, Record<string, string>, number, string | RegExp][] = [
      ['invalid JSON', '{"timeoutMs": ', json, 400, 'TEAL_BAD_REQUEST'],
      ['trailing garbage', '{} x', json, 400, 'TEAL_BAD_REQUEST'],
      ['an array', '[]', json, 400, 'TEAL_BAD_REQUEST'],
      ['a string', '"drain"', json, 400, 'TEAL_BAD_REQUEST'],
      ['a number', '42', json, 400, 'TEAL_BAD_REQUEST'],
      ['unknown field', '{"notAField": true}', json, 400, 'TEAL_BAD_REQUEST'],
      ['__proto__ field', '{"__proto__": {"fence": true}}', json, 400, 'TEAL_BAD_REQUEST'],
      [
        'form',
        'a=1',
        { ...AUTH, 'content-type': 'application/x-www-form-urlencoded' },
        415,
        'TEAL_UNSUPPORTED_MEDIA_TYPE',
      ],
      ['1 MB body', `{"x":"${'a'.repeat(1024 * 1024)}"}`, json, 413, 'TEAL_BODY_TOO_LARGE'],
      ['deeply nested', `${'['.repeat(5000)}${']'.repeat(5000)}`, json, 400, 'TEAL_BAD_REQUEST'],
      [
        'invalid UTF-8',
        Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]),
        json,
        400,
        'TEAL_BAD_REQUEST',
      ],
    ];
    for (const [label, payload, headers, status, code] of cases) {
      const res = await app.inject({ method: 'POST', url, payload, headers });
      expect(res.statusCode, `${label}: ${res.body}`).toBe(status);
      expectClientError(res, status, code);
    }
  });

  it('a text/plain body is not parsed as JSON: 4xx naming the body', async () => {
    make();
    for (const url of POSTS) {
      const res = await app.inject({
        method: 'POST',
        url,
        payload: '{}',
        headers: { ...AUTH, 'content-type': 'text/plain' },
      });
      // Fastify's built-in text/plain parser hands the string on; the schema then rejects it.
      expectClientError(res, undefined, /^TEAL_(BAD_REQUEST|UNSUPPORTED_MEDIA_TYPE)$/);
      expect((res.json() as { error: { message: string } }).error.message).toMatch(/body|content type/);
    }
  });

  it('wrong types are not coerced: each names the field and what it got', async () => {
    make();
    const cases: [string, unknown, RegExp][] = [
      ['/drain', { timeoutMs: '5000' }, /body\.timeoutMs must be integer \(got "5000"\)/],
      ['/drain', { timeoutMs: 5000.5 }, /body\.timeoutMs must be integer/],
      ['/drain', { timeoutMs: 1e308 }, /body\.timeoutMs/],
      ['/drain', { timeoutMs: -1 }, /body\.timeoutMs must be >= 1000/],
      ['/drain', { fence: 'yes' }, /body\.fence must be boolean/],
      ['/drain', { fence: null }, /body\.fence must be boolean/],
      ['/cutover', { verify: 1 }, /body\.verify must be boolean/],
      ['/verify', { tables: 'public.t' }, /body\.tables must be array/],
      ['/verify', { tables: [1] }, /body\.tables\.0 must be string/],
      ['/verify', { tables: ['a b'] }, /body\.tables\.0 must match pattern/],
      ['/verify', { tables: ['../../etc/passwd"'] }, /body\.tables\.0 must match pattern/],
      ['/verify', { tables: Array.from({ length: 1001 }, () => 't') }, /must NOT have more than 1000 items/],
      ['/pause', { paused: true }, /unknown field "paused" \(it takes no fields\)/],
    ];
    for (const [url, payload, message] of cases) {
      const res = await app.inject({ method: 'POST', url, payload: payload as object, headers: AUTH });
      expectClientError(res, 400, 'TEAL_BAD_REQUEST');
      expect((res.json() as { error: { message: string } }).error.message).toMatch(message);
    }
  });
});

describe('routes: unknown, traversal, wrong method', () => {
  it('answers unknown and traversing paths with 404 in the error shape (or the route they normalise to)', async () => {
    make();
    const paths = [
      '/nope',
      '/../status',
      '/status/..',
      '/status/../../etc/passwd',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/docs/..%2f..%2fpackage.json',
      '/status%00',
      '/status%',
      '/%ff',
      '//status',
      '/STATUS',
      `/${'a'.repeat(10_000)}`,
      '/docs/json',
      '/metrics/../docs',
    ];
    for (const url of paths) {
      for (const headers of [{}, AUTH]) {
        const res = await app.inject({ method: 'GET', url, headers });
        expect(res.statusCode, `${url}: ${res.body}`).toBeLessThan(500);
        if (res.statusCode !== 200) expectClientError(res);
        // Nothing from the disk, whatever the path.
        expect(res.body).not.toMatch(/"workspaces"|root:x:0:0/);
      }
    }
  });

  it('answers a method the route does not have with a 4xx in the error shape', async () => {
    make();
    const cases: [string, string][] = [
      ['GET', '/drain'],
      ['GET', '/pause'],
      ['DELETE', '/status'],
      ['PUT', '/pause'],
      ['PATCH', '/drain'],
      ['POST', '/status'],
      ['POST', '/healthz'],
      ['DELETE', '/metrics'],
    ];
    for (const [method, url] of cases) {
      const res = await app.inject({ method: method as 'GET', url, headers: AUTH });
      expectClientError(res);
    }
    // OPTIONS and HEAD: no 5xx, and no body beyond the error shape.
    for (const method of ['OPTIONS', 'HEAD'] as const) {
      const res = await app.inject({ method, url: '/drain', headers: AUTH });
      expect(res.statusCode).toBeLessThan(500);
    }
  });
});

describe('races', () => {
  it('N parallel drains: exactly one runs, the rest get 409 TEAL_BUSY; afterwards a drain works', async () => {
    const backend = make();
    backend.hold();
    const n = 25;
    const pending = Array.from({ length: n }, () =>
      app.inject({ method: 'POST', url: '/drain', headers: AUTH }),
    );
    // The 409s answer at once; the one that runs waits for the gate.
    const settled: Answer[] = [];
    for (const p of pending) void p.then((r) => settled.push(r));
    await expect.poll(() => settled.length, { timeout: 5_000 }).toBe(n - 1);
    expect(backend.drainCalls).toBe(1);
    for (const r of settled) {
      expectClientError(r, 409, 'TEAL_BUSY');
      expect((r.json() as { error: { message: string } }).error.message).toMatch(/drain is already running/);
    }
    // A cutover while the drain runs is refused too: both take the fence and the target LSN.
    expectClientError(await app.inject({ method: 'POST', url: '/cutover', headers: AUTH }), 409, 'TEAL_BUSY');
    backend.release();
    const winners = (await Promise.all(pending)).filter((r) => r.statusCode === 200);
    expect(winners).toHaveLength(1);
    expect(winners[0]!.json()).toMatchObject({ drained: true, lsn: '0/16B3748' });
    // Not wedged: the next drain runs.
    const again = await app.inject({
      method: 'POST',
      url: '/drain',
      headers: AUTH,
      payload: { timeoutMs: 1000 },
    });
    expect(again.statusCode, again.body).toBe(200);
    expect(backend.drainCalls).toBe(2);
  });

  it('a drain that fails or is aborted mid-way frees the slot for the next one', async () => {
    const backend = make();
    backend.drain = async () => {
      backend.drainCalls++;
      throw new TealError('TEAL_DRAIN_TIMEOUT', 'drain timed out: partition 0 is 3 records behind', {
        status: 504,
      });
    };
    const first = await app.inject({ method: 'POST', url: '/drain', headers: AUTH });
    expect(first.statusCode).toBe(504);
    expect(first.json()).toMatchObject({ error: { code: 'TEAL_DRAIN_TIMEOUT' } });
    backend.drain = FakeBackend.prototype.drain.bind(backend);
    expect((await app.inject({ method: 'POST', url: '/drain', headers: AUTH })).statusCode).toBe(200);
  });

  it('pause/resume races: each answer matches its request, the final state is the last request', async () => {
    const backend = make();
    const order = Array.from({ length: 40 }, (_, i) => (i * 7919) % 3 !== 0);
    // Later requests answer sooner: the answers arrive out of order.
    backend.delays = order.map((_, i) => 40 - i);
    const answers = await Promise.all(
      order.map((pause) => app.inject({ method: 'POST', url: pause ? '/pause' : '/resume', headers: AUTH })),
    );
    answers.forEach((res, i) => {
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ paused: order[i] });
    });
    expect(backend.calls).toEqual(order);
    const status = await app.inject({ method: 'GET', url: '/status', headers: AUTH });
    expect((status.json() as { paused: boolean }).paused).toBe(order.at(-1));
  });

  it('after all of the abuse above in one app, the normal path still works', async () => {
    const backend = make();
    await Promise.all([
      app.inject({ method: 'POST', url: '/drain', headers: { authorization: 'Basic x' } }),
      app.inject({ method: 'POST', url: '/drain', headers: AUTH, payload: '{' }),
      app.inject({
        method: 'POST',
        url: '/drain',
        headers: { ...AUTH, 'content-type': 'application/json' },
        payload: `{"x":"${'a'.repeat(100_000)}"}`,
      }),
      app.inject({ method: 'GET', url: '/../../drain', headers: AUTH }),
      app.inject({ method: 'POST', url: '/pause', headers: AUTH }),
      app.inject({ method: 'POST', url: '/resume', headers: AUTH }),
    ]);
    expect((await app.inject({ method: 'POST', url: '/drain', headers: AUTH })).json()).toMatchObject({
      drained: true,
    });
    expect(backend.drainCalls).toBe(1);
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});

describe('a real listening server', () => {
  function config(host: string, token: string | undefined): ResolvedConfig {
    return { api: { host, port: 0, token } } as unknown as ResolvedConfig;
  }
  const quietLogger = pino({ level: 'silent' });

  async function start(token: string | undefined = TOKEN) {
    const api = await startApi(
      config('127.0.0.1', token),
      new FakeBackend(),
      createMetrics(),
      quietLogger as never,
    );
    onTestFinished(() => api.close());
    return api;
  }

  /** Raw bytes on the socket: headers a fetch() would refuse to send. */
  function raw(url: string, request: Buffer): Promise<string> {
    const { hostname, port } = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => socket.end(request));
      const chunks: Buffer[] = [];
      socket.on('data', (c) => chunks.push(c));
      socket.on('error', reject);
      socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    });
  }

  it('over TCP: 401 without the token, 200 with it, 431 for a 100 kB header, 4xx for non-ASCII bytes', async () => {
    const { url } = await start();
    const none = await fetch(`${url}/drain`, { method: 'POST' });
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ error: { code: 'TEAL_UNAUTHORIZED' } });
    const ok = await fetch(`${url}/drain`, { method: 'POST', headers: AUTH });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ drained: true });
    const huge = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        `${url}/status`,
        { headers: { authorization: `Bearer ${'A'.repeat(100_000)}` } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(huge).toBe(431);
    const nonAscii = await raw(
      url,
      Buffer.concat([
        Buffer.from('GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer '),
        Buffer.from([0xc3, 0xb6, 0xff, 0x00, 0x7f]),
        Buffer.from('\r\nConnection: close\r\n\r\n'),
      ]),
    );
    expect(nonAscii).toMatch(/^HTTP\/1\.1 4\d\d /);
    const latin1 = await raw(
      url,
      Buffer.concat([
        Buffer.from('GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer '),
        Buffer.from([0xe9, 0xe8]),
        Buffer.from('\r\nConnection: close\r\n\r\n'),
      ]),
    );
    expect(latin1).toMatch(/^HTTP\/1\.1 401 /);
    // Still serving afterwards.
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/status`, { headers: AUTH })).status).toBe(200);
  });

  it('refuses to bind beyond loopback without a token, before opening a socket', async () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'example.com']) {
      await expect(
        startApi(config(host, undefined), new FakeBackend(), createMetrics(), quietLogger as never),
      ).rejects.toMatchObject({
        code: 'TEAL_API_INSECURE_BIND',
      });
    }
  });

  it('binds beyond loopback with a token and then demands it', async () => {
    const api = await startApi(
      config('0.0.0.0', TOKEN),
      new FakeBackend(),
      createMetrics(),
      quietLogger as never,
    );
    onTestFinished(() => api.close());
    const port = new URL(api.url).port;
    expect((await fetch(`http://127.0.0.1:${port}/status`)).status).toBe(401);
    expect((await fetch(`http://127.0.0.1:${port}/status`, { headers: AUTH })).status).toBe(200);
  });
});
