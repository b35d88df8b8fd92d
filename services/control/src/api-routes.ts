import { redactSecrets, TealError } from '@teal/errors';
import { type MetricsJson, mergeMetrics, type TealMetrics } from '@teal/runtime';
import type { FastifyInstance } from 'fastify';
import type { ControlBackend } from './backend.ts';
import { Exclusive } from './exclusive.ts';
import type { RollbackOptions } from './rollback.ts';
import {
  cutoverBody,
  cutoverResponse,
  docsResponse,
  drainBody,
  drainResponse,
  type ErrorStatus,
  emptyBody,
  errorReplies,
  fenceResponse,
  healthResponse,
  metricsResponse,
  pausedResponse,
  readyResponse,
  rollbackBody,
  statusResponse,
  verifyBody,
  verifyResponse,
} from './schemas.ts';
import type { CutoverOptions, DrainOptions } from './types.ts';

// The routes, each a thin call into the backend; schemas.ts validates and documents them.

export interface RouteOptions {
  backend: ControlBackend;
  /** A token is configured: every route but the public ones can answer 401. */
  auth: boolean;
  metrics: TealMetrics;
  moreMetrics?: () => Promise<MetricsJson[]>;
  /** Aborted when the server closes, so a running drain or verify stops. */
  shutdown: AbortSignal;
}

export function registerRoutes(app: FastifyInstance, opts: RouteOptions): void {
  const { backend, shutdown } = opts;
  // The API keeps its own guard too: a fake or remote backend may not have one.
  const exclusive = new Exclusive();
  // The statuses each route can answer, listed in the document (GET /docs), which must be exact.
  const guarded = (...statuses: ErrorStatus[]) =>
    errorReplies(...((opts.auth ? [401, ...statuses] : statuses) as ErrorStatus[]));
  // A body is parsed (400, 413, 415) before the route runs.
  const withBody: ErrorStatus[] = [400, 413, 415];
  const publicRoute = { security: [] as never[] };

  app.get(
    '/healthz',
    { schema: { summary: 'Liveness (no auth)', ...publicRoute, response: { 200: healthResponse } } },
    async () => ({
      ok: true,
    }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness: blue, green and Kafka answer (no auth)',
        ...publicRoute,
        response: { 200: readyResponse, ...errorReplies(500, 503) },
      },
    },
    async () => {
      const ready = await backend.ready();
      if (!ready.ready) {
        const failing = Object.entries(ready.checks)
          .filter(([, c]) => !c.ok)
          .map(([name, c]) => `${name}: ${c.error}`);
        throw new TealError('TEAL_NOT_READY', `not ready: ${failing.join('; ')}`, {
          status: 503,
          details: { checks: ready.checks },
        });
      }
      return ready;
    },
  );

  app.get(
    '/status',
    {
      schema: {
        summary: 'Pipeline state, slot lag, consumer lag',
        response: { 200: statusResponse, ...guarded(500, 503) },
      },
    },
    () => backend.status(),
  );

  // The routes that take no body: one switch each.
  const switches: Array<[string, () => Promise<unknown>, string, object]> = [
    [
      '/pause',
      () => backend.pause(),
      'Pause producer and consumer (stored in green teal.control, survives restarts)',
      pausedResponse,
    ],
    ['/resume', () => backend.resume(), 'Resume after a pause', pausedResponse],
    [
      '/fence',
      () => backend.fence(),
      'Make blue refuse new writes (default_transaction_read_only)',
      fenceResponse,
    ],
    ['/unfence', () => backend.unfence(), 'Undo the fence: blue accepts writes again', fenceResponse],
  ];
  for (const [path, fn, summary, response] of switches) {
    app.post(
      path,
      {
        schema: { summary, body: emptyBody, response: { 200: response, ...guarded(...withBody, 500, 503) } },
      },
      fn,
    );
  }

  app.post<{ Body: Omit<DrainOptions, 'signal'> }>(
    '/drain',
    {
      schema: {
        summary: 'Wait until everything committed on blue up to its current LSN is applied in green',
        body: drainBody,
        response: { 200: drainResponse, ...guarded(...withBody, 409, 500, 503, 504) },
      },
    },
    (request) =>
      exclusive.run('drain', () =>
        backend.drain({
          timeoutMs: request.body.timeoutMs,
          fence: request.body.fence,
          signal: shutdown,
        }),
      ),
  );

  app.post<{ Body: CutoverOptions }>(
    '/cutover',
    {
      schema: {
        summary: 'Fence, drain, copy sequences, verify; report whether it is safe to switch to green',
        body: cutoverBody,
        // A failed step (the drain's timeout included) is in the report, not a status.
        response: { 200: cutoverResponse, ...guarded(...withBody, 409, 500, 503) },
      },
    },
    (request) => exclusive.run('cutover', () => backend.cutover({ ...request.body })),
  );

  app.post<{ Body: RollbackOptions }>(
    '/rollback',
    {
      schema: {
        summary:
          'teal reverse only: fence green, drain the reverse pipeline, copy sequences back (max), verify blue, unfence blue when safe',
        body: rollbackBody,
        // 409: not the reverse process (TEAL_REVERSE_NOT_PREPARED), or busy.
        response: { 200: cutoverResponse, ...guarded(...withBody, 409, 500, 503) },
      },
    },
    (request) =>
      exclusive.run('rollback', () => {
        if (!backend.rollback) {
          throw new TealError(
            'TEAL_REVERSE_NOT_PREPARED',
            'POST /rollback is served by teal reverse (started after teal cutover --with-rollback)',
            { status: 409 },
          );
        }
        return backend.rollback({ ...request.body });
      }),
  );

  app.post<{ Body: { tables?: string[]; online?: boolean } }>(
    '/verify',
    {
      schema: {
        summary: 'Compare blue (transformed) with green: counts and checksums per key range',
        body: verifyBody,
        response: { 200: verifyResponse, ...guarded(...withBody, 500, 503) },
      },
    },
    (request) =>
      backend.verify({ tables: request.body.tables, online: request.body.online, signal: shutdown }),
  );

  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text exposition format 0.0.4); the token as every route but health',
        response: { 200: metricsResponse, ...guarded(500) },
      },
    },
    async (request, reply) => {
      try {
        await backend.collectMetrics?.();
      } catch (err) {
        // A scrape still answers with what is known; the gauges keep their last values.
        request.log.warn({ err: redactSecrets((err as Error).message) }, 'status for metrics failed');
      }
      reply.type(opts.metrics.registry.contentType);
      if (!opts.moreMetrics) return opts.metrics.registry.metrics();
      const [own, more] = await Promise.all([opts.metrics.registry.getMetricsAsJSON(), opts.moreMetrics()]);
      return mergeMetrics(own, ...more);
    },
  );

  app.get(
    '/docs',
    {
      schema: {
        summary: 'This OpenAPI document',
        response: { 200: docsResponse, ...guarded() },
      },
    },
    async () => app.swagger(),
  );
}
