import swagger from '@fastify/swagger';
import { isRetriablePgError, redactSecrets, TealError } from '@teal/errors';
import { type Logger, type MetricsJson, mergeMetrics, type TealMetrics } from '@teal/runtime';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { bearerToken, tokenMatches } from './auth.ts';
import type { ControlBackend } from './backend.ts';
import {
  cutoverBody,
  cutoverResponse,
  drainBody,
  drainResponse,
  emptyBody,
  errorResponses,
  errorSchema,
  fenceResponse,
  healthResponse,
  pausedResponse,
  readyResponse,
  statusResponse,
  verifyBody,
  verifyResponse,
} from './schemas.ts';
import type { CutoverOptions, DrainOptions } from './types.ts';

export interface BuildOptions {
  backend: ControlBackend;
  /** Bearer token required on every route but /healthz and /readyz; none: no auth. */
  token?: string;
  /** The address the API binds to (shown in the OpenAPI document). */
  host: string;
  port?: number;
  metrics: TealMetrics;
  /** Registries kept elsewhere (teal run: the producer thread's), served with `metrics` by GET /metrics. */
  moreMetrics?: () => Promise<MetricsJson[]>;
  logger?: Logger;
  /** Largest accepted request body, bytes. */
  bodyLimit?: number;
}

const PUBLIC_ROUTES = new Set(['/healthz', '/readyz']);
export const DEFAULT_BODY_LIMIT = 64 * 1024;

/** The control API, without a socket: tests use inject(), server.ts calls listen(). */
export function build(opts: BuildOptions): FastifyInstance {
  const token = opts.token && opts.token.length > 0 ? opts.token : undefined;
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger.child({ component: 'api' }) } : { logger: false }),
    bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // Fastify's own request lines log the raw URL: a token sent as ?token=... (or pasted into
    // the path) reached the logs. The onResponse hook below logs a redacted line instead.
    disableRequestLogging: true,
    // A URL Fastify cannot decode (a stray or invalid %-escape) is answered before routing, in
    // Fastify's own shape unless this hook answers: keep teal's {error: {code, message}}.
    frameworkErrors: (err, _request, reply) => {
      sendError(
        reply,
        400,
        'TEAL_BAD_REQUEST',
        `bad request: ${err.message}: percent-encode the path (see GET /docs)`,
      );
    },
    ajv: {
      // Unknown fields are an error the caller should hear about, never silently dropped;
      // "5" is not a number. verbose: errors carry the offending value and schema.
      customOptions: {
        removeAdditional: false,
        coerceTypes: false,
        useDefaults: true,
        allErrors: false,
        verbose: true,
      },
    },
  });
  app.addSchema(errorSchema);

  app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'teal control API',
        version: '0.1.0',
        description:
          'Status, pause/resume, drain, fence, cutover, verify and metrics of a teal pipeline. ' +
          'Every route but /healthz and /readyz requires `Authorization: Bearer <token>` when a token is configured.',
      },
      servers: [
        { url: `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port ?? 8080}` },
      ],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: token ? [{ bearer: [] }] : [],
    },
  });

  // One drain or cutover at a time: a second one would race the first's fence and LSN.
  let exclusive: string | undefined;
  const shutdown = new AbortController();
  app.addHook('onClose', async () => shutdown.abort());
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        url: loggableUrl(request.url, token),
        statusCode: reply.statusCode,
        responseTimeMs: reply.elapsedTime,
      },
      'request completed',
    );
  });

  app.addHook('onRequest', async (request, reply) => {
    if (!token || PUBLIC_ROUTES.has(request.routeOptions.url ?? '')) return;
    const given = bearerToken(request.headers.authorization);
    if (given === undefined) {
      reply.header('WWW-Authenticate', 'Bearer realm="teal"');
      throw new TealError(
        'TEAL_UNAUTHORIZED',
        'missing bearer token: send "Authorization: Bearer <token>" with the token from TEAL_API_TOKEN or api.token',
        { status: 401 },
      );
    }
    if (!tokenMatches(given, token)) {
      reply.header('WWW-Authenticate', 'Bearer realm="teal", error="invalid_token"');
      throw new TealError(
        'TEAL_UNAUTHORIZED',
        'wrong bearer token: use the token from TEAL_API_TOKEN or api.token',
        {
          status: 401,
        },
      );
    }
  });

  // POST without a body means "all defaults".
  app.addHook('preValidation', async (request) => {
    if (request.method === 'POST' && (request.body === undefined || request.body === null)) request.body = {};
  });

  app.setNotFoundHandler((request, reply) => {
    sendError(
      reply,
      404,
      'TEAL_NOT_FOUND',
      `no route ${request.method} ${request.url.split('?')[0]}: see GET /docs`,
    );
  });

  app.setErrorHandler((err: FastifyError | TealError, request, reply) => {
    if ('validation' in err && err.validation) {
      return sendError(reply, 400, 'TEAL_BAD_REQUEST', validationMessage(err));
    }
    if (err instanceof TealError) {
      if (err.status >= 500) request.log.warn({ code: err.code }, err.message);
      return sendError(reply, err.status, err.code, err.message, err.details);
    }
    const status = (err as FastifyError).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      const code =
        status === 413
          ? 'TEAL_BODY_TOO_LARGE'
          : status === 415
            ? 'TEAL_UNSUPPORTED_MEDIA_TYPE'
            : 'TEAL_BAD_REQUEST';
      const message =
        status === 413
          ? `request body is larger than ${opts.bodyLimit ?? DEFAULT_BODY_LIMIT} bytes: send a smaller JSON object`
          : status === 415
            ? `unsupported content type ${JSON.stringify(request.headers['content-type'] ?? '')}: send application/json`
            : `bad request: ${err.message}`;
      return sendError(reply, status, code, message);
    }
    if (isRetriablePgError(err)) {
      request.log.warn({ err: redactSecrets(err.message) }, 'dependency unavailable');
      return sendError(
        reply,
        503,
        'TEAL_UNAVAILABLE',
        `blue, green or Kafka is unreachable: ${redactSecrets(err.message)}`,
      );
    }
    request.log.error({ err: redactSecrets(err.message) }, 'internal error');
    return sendError(reply, 500, 'TEAL_INTERNAL', redactSecrets(err.message));
  });

  const backend = opts.backend;

  app.after(() => {
    app.get(
      '/healthz',
      { schema: { summary: 'Liveness (no auth)', response: { 200: healthResponse } } },
      async () => ({
        ok: true,
      }),
    );

    app.get(
      '/readyz',
      {
        schema: {
          summary: 'Readiness: blue, green and Kafka answer (no auth)',
          response: { 200: readyResponse, ...errorResponses },
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
          response: { 200: statusResponse, ...errorResponses },
        },
      },
      () => backend.status(),
    );

    for (const [path, fn, summary] of [
      [
        '/pause',
        () => backend.pause(),
        'Pause producer and consumer (stored in green teal.control, survives restarts)',
      ],
      ['/resume', () => backend.resume(), 'Resume after a pause'],
    ] as const) {
      app.post(
        path,
        { schema: { summary, body: emptyBody, response: { 200: pausedResponse, ...errorResponses } } },
        fn,
      );
    }

    for (const [path, fn, summary] of [
      ['/fence', () => backend.fence(), 'Make blue refuse new writes (default_transaction_read_only)'],
      ['/unfence', () => backend.unfence(), 'Undo the fence: blue accepts writes again'],
    ] as const) {
      app.post(
        path,
        { schema: { summary, body: emptyBody, response: { 200: fenceResponse, ...errorResponses } } },
        fn,
      );
    }

    const runExclusive = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      if (exclusive) {
        throw new TealError(
          'TEAL_BUSY',
          `a ${exclusive} is already running: wait for it to finish, then try again`,
          {
            status: 409,
          },
        );
      }
      exclusive = what;
      try {
        return await fn();
      } finally {
        exclusive = undefined;
      }
    };

    app.post<{ Body: Omit<DrainOptions, 'signal'> }>(
      '/drain',
      {
        schema: {
          summary: 'Wait until everything committed on blue up to its current LSN is applied in green',
          body: drainBody,
          response: { 200: drainResponse, ...errorResponses },
        },
      },
      (request) =>
        runExclusive('drain', () =>
          backend.drain({
            timeoutMs: request.body.timeoutMs,
            fence: request.body.fence,
            signal: shutdown.signal,
          }),
        ),
    );

    app.post<{ Body: CutoverOptions }>(
      '/cutover',
      {
        schema: {
          summary: 'Fence, drain, copy sequences, verify; report whether it is safe to switch to green',
          body: cutoverBody,
          response: { 200: cutoverResponse, ...errorResponses },
        },
      },
      (request) => runExclusive('cutover', () => backend.cutover({ ...request.body })),
    );

    app.post<{ Body: { tables?: string[] } }>(
      '/verify',
      {
        schema: {
          summary: 'Compare blue (transformed) with green: counts and checksums per key range',
          body: verifyBody,
          response: { 200: verifyResponse, ...errorResponses },
        },
      },
      (request) => backend.verify({ tables: request.body.tables, signal: shutdown.signal }),
    );

    app.get(
      '/metrics',
      {
        schema: {
          summary: 'Prometheus metrics (text exposition format)',
          response: { 200: { type: 'string' } },
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
          response: { 200: { type: 'object', additionalProperties: true } },
        },
      },
      async () => app.swagger(),
    );
  });

  return app as unknown as FastifyInstance;
}

/** The path without its query string, and the configured token nowhere in it. */
export function loggableUrl(url: string, token: string | undefined): string {
  const q = url.indexOf('?');
  const path = q < 0 ? url : `${url.slice(0, q)}?***`;
  return token ? path.split(token).join('***') : path;
}

function sendError(
  reply: FastifyReply,
  status: number,
  code: string,
  message: string,
  details?: Record<string, unknown>,
) {
  return reply.code(status).send({ error: details ? { code, message, details } : { code, message } });
}

interface AjvError {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
  data?: unknown;
}

// JSON.stringify recurses: a body nested a few thousand levels deep overflows the stack,
// which inside the error handler became a 500 FST_ERR_FAILED_ERROR_SERIALIZATION.
function shownValue(data: unknown): string {
  try {
    return ` (got ${JSON.stringify(data)?.slice(0, 60)})`;
  } catch {
    return ' (too deeply nested to show)';
  }
}

/** "body.timeoutMs must be <= 3600000 (got 99999999)", naming the field. */
export function validationMessage(err: FastifyError): string {
  const context = (err as { validationContext?: string }).validationContext ?? 'body';
  const errors = ((err as { validation?: AjvError[] }).validation ?? []) as AjvError[];
  const parts = errors.map((e) => {
    const path = context + e.instancePath.replaceAll('/', '.');
    if (e.keyword === 'additionalProperties') {
      const allowed = Object.keys(
        ((e as { parentSchema?: { properties?: object } }).parentSchema?.properties ?? {}) as object,
      );
      return `${path} has an unknown field "${String(e.params.additionalProperty)}"${
        allowed.length ? ` (allowed: ${allowed.join(', ')})` : ' (it takes no fields)'
      }`;
    }
    const got = e.data === undefined ? '' : shownValue(e.data);
    return `${path} ${e.message ?? 'is invalid'}${got}`;
  });
  return `invalid request: ${parts.join('; ') || err.message}`;
}
