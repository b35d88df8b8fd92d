import { TealError } from '@teal/errors';
import { createMetrics } from '@teal/runtime';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { build } from './app.ts';
import type { ControlBackend } from './backend.ts';
import type { CutoverReport, VerifyReportView } from './types.ts';

// Issue 16 item 3: GET /docs is exact. Every status a route answers is in the document with
// its body and content type; the public routes say they need no token; a method a path does
// not have answers 405 with Allow. test/api-schemathesis.test.ts checks the same against a
// live pipeline; these pin the findings it made, without a server.

const TOKEN = 'document-token-0123456789';
const AUTH = { authorization: `Bearer ${TOKEN}` };

const verifyReport: VerifyReportView = {
  ok: true,
  startedAt: '2026-12-01T10:00:00.000Z',
  finishedAt: '2026-12-01T10:00:01.000Z',
  durationMs: 1000,
  tables: [],
};

const backend = {
  status: async () => {
    throw new TealError('TEAL_VERIFY_ABORTED', 'verify was cancelled', { status: 499 });
  },
  pause: async () => ({ paused: true }),
  resume: async () => ({ paused: false }),
  verify: async () => verifyReport,
  cutover: async (): Promise<CutoverReport> => ({
    safeToSwitch: true,
    fenced: false,
    drainLsn: '0/16B3748',
    deadLetters: { total: 0, tables: [] },
    fenceHoles: null,
    steps: [],
    sequences: [],
    // A field the document does not declare (a newer report): dropped, not a 500.
    verify: { ...verifyReport, notInTheDocument: 1 } as VerifyReportView,
    warnings: [],
  }),
} as unknown as ControlBackend;

let app: FastifyInstance;
afterEach(async () => app?.close());

async function documentOf(token: string | undefined) {
  app = build({ backend, token, host: '127.0.0.1', metrics: createMetrics() });
  const res = await app.inject({ method: 'GET', url: '/docs', headers: token ? AUTH : {} });
  expect(res.statusCode).toBe(200);
  return res.json() as {
    security: unknown[];
    paths: Record<
      string,
      Record<
        string,
        {
          security?: unknown[];
          requestBody?: { required?: boolean };
          responses: Record<string, { content?: Record<string, unknown>; headers?: object }>;
        }
      >
    >;
  };
}

const PROTECTED = [
  '/status',
  '/pause',
  '/resume',
  '/fence',
  '/unfence',
  '/drain',
  '/cutover',
  '/rollback',
  '/verify',
  '/metrics',
  '/docs',
];

describe('the OpenAPI document', () => {
  it('with a token: every route but health documents 401 (with WWW-Authenticate); health needs none', async () => {
    const doc = await documentOf(TOKEN);
    expect(doc.security).toEqual([{ bearer: [] }]);
    for (const path of PROTECTED) {
      for (const op of Object.values(doc.paths[path])) {
        expect(op.security, path).toBeUndefined();
        expect(op.responses['401']?.headers, path).toHaveProperty('WWW-Authenticate');
        expect(Object.keys(op.responses['401']?.content ?? {}), path).toEqual(['application/json']);
      }
    }
    for (const path of ['/healthz', '/readyz']) {
      expect(doc.paths[path].get.security).toEqual([]);
      expect(doc.paths[path].get.responses).not.toHaveProperty('401');
    }
  });

  it('without a token: no 401 anywhere', async () => {
    const doc = await documentOf(undefined);
    expect(doc.security).toEqual([]);
    for (const path of PROTECTED)
      for (const op of Object.values(doc.paths[path])) expect(op.responses, path).not.toHaveProperty('401');
  });

  it('lists the statuses of each route, /metrics as Prometheus text, bodies optional', async () => {
    const doc = await documentOf(TOKEN);
    const statuses = (path: string, method: string) => Object.keys(doc.paths[path][method].responses);
    expect(statuses('/healthz', 'get')).toEqual(['200']);
    expect(statuses('/drain', 'post')).toEqual([
      '200',
      '400',
      '401',
      '409',
      '413',
      '415',
      '500',
      '503',
      '504',
    ]);
    expect(statuses('/cutover', 'post')).toEqual(['200', '400', '401', '409', '413', '415', '500', '503']);
    expect(statuses('/rollback', 'post')).toEqual(['200', '400', '401', '409', '413', '415', '500', '503']);
    expect(statuses('/pause', 'post')).toEqual(['200', '400', '401', '413', '415', '500', '503']);
    expect(Object.keys(doc.paths['/metrics'].get.responses['200'].content ?? {})).toEqual([
      'text/plain; version=0.0.4',
    ]);
    for (const path of ['/pause', '/drain', '/cutover', '/rollback', '/verify'])
      expect(doc.paths[path].post.requestBody?.required, path).toBe(false);
  });
});

describe('answers the document promises', () => {
  it('POST /rollback on a process that is not teal reverse: 409 TEAL_REVERSE_NOT_PREPARED, as documented', async () => {
    const doc = await documentOf(TOKEN);
    expect(doc.paths['/rollback'].post.responses).toHaveProperty('409');
    const res = await app.inject({ method: 'POST', url: '/rollback', headers: AUTH });
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe('TEAL_REVERSE_NOT_PREPARED');
  });

  it('a method a path does not have: 405 with Allow (no token needed on a public path)', async () => {
    app = build({ backend, token: TOKEN, host: '127.0.0.1', metrics: createMetrics() });
    for (const [method, url, headers] of [
      ['DELETE', '/status', AUTH],
      ['PUT', '/drain', AUTH],
      ['DELETE', '/healthz', {}],
      // QUERY carries a body: Fastify asked for its content type before finding no route.
      ['QUERY', '/readyz', {}],
    ] as const) {
      const res = await app.inject({ method: method as 'GET', url, headers });
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBe(405);
      expect(res.headers.allow).toBe(url === '/drain' ? 'POST' : 'GET, HEAD');
      expect(res.json().error.code).toBe('TEAL_METHOD_NOT_ALLOWED');
    }
    // A protected path still asks for the token first.
    expect((await app.inject({ method: 'DELETE', url: '/status' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/nope', headers: AUTH })).statusCode).toBe(404);
  });

  it('a JSON null body is refused (400), an absent body means the defaults', async () => {
    app = build({ backend, token: TOKEN, host: '127.0.0.1', metrics: createMetrics() });
    const nullBody = await app.inject({
      method: 'POST',
      url: '/pause',
      headers: { ...AUTH, 'content-type': 'application/json' },
      payload: 'null',
    });
    expect(nullBody.statusCode, nullBody.body).toBe(400);
    expect(nullBody.json().error.code).toBe('TEAL_BAD_REQUEST');
    expect((await app.inject({ method: 'POST', url: '/pause', headers: AUTH })).json()).toEqual({
      paused: true,
    });
  });

  it('a table name with a control character is refused before it reaches Postgres', async () => {
    app = build({ backend, token: TOKEN, host: '127.0.0.1', metrics: createMetrics() });
    for (const tables of [['a\u0000b'], ['t\u001f'], ['same', 'same']]) {
      const res = await app.inject({ method: 'POST', url: '/verify', headers: AUTH, payload: { tables } });
      expect(res.statusCode, JSON.stringify(tables)).toBe(400);
    }
  });

  it('a cutover report with a field the document lacks is served without it, not as a 500', async () => {
    app = build({ backend, token: TOKEN, host: '127.0.0.1', metrics: createMetrics() });
    const res = await app.inject({ method: 'POST', url: '/cutover', headers: AUTH });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().verify).toEqual(verifyReport);
  });

  it('an error status outside the document maps to a documented one (499 -> 503)', async () => {
    app = build({ backend, token: TOKEN, host: '127.0.0.1', metrics: createMetrics() });
    const res = await app.inject({ method: 'GET', url: '/status', headers: AUTH });
    expect(res.statusCode).toBe(503);
    expect(res.json().error.code).toBe('TEAL_VERIFY_ABORTED');
  });
});
