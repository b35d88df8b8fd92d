import swagger from '@fastify/swagger';
import type { Logger, MetricsJson, TealMetrics } from '@teal/runtime';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import { badUrl, RouteTable, setErrorHandlers } from './api-errors.ts';
import { registerRoutes } from './api-routes.ts';
import { requireBearer } from './auth.ts';
import type { ControlBackend } from './backend.ts';
import { errorSchema } from './schemas.ts';
import { registerUiRoutes } from './ui-routes.ts';

// build() assembles the API from its parts: auth (auth.ts), errors (api-errors.ts), routes
// (api-routes.ts). It opens no socket; server.ts calls listen().

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

export const DEFAULT_BODY_LIMIT = 64 * 1024;

/** The control API, without a socket: tests use inject(), server.ts calls listen(). */
export function build(opts: BuildOptions): FastifyInstance {
  const token = opts.token && opts.token.length > 0 ? opts.token : undefined;
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger.child({ component: 'api' }) } : { logger: false }),
    bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // Fastify's own request lines log the raw URL: a token sent as ?token=... (or pasted into
    // the path) reached the logs. The onResponse hook below logs a redacted line instead.
    // (Through a LogController: the top-level disableRequestLogging warns FSTDEP023 on every start.)
    logController: new LogController({ disableRequestLogging: true }),
    // Answered before routing: keep teal's {error: {code, message}} for URLs Fastify cannot decode.
    frameworkErrors: (err, _request, reply) => badUrl(err, reply),
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
          'When a token is configured, every route but /healthz, /readyz and the status page files (/ui) requires ' +
          '`Authorization: Bearer <token>`, /metrics and /docs included (a Prometheus scrape sends it); ' +
          'a missing or wrong token is a 401 with WWW-Authenticate. Every status a route answers is listed with its body.',
      },
      servers: [
        { url: `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port ?? 8080}` },
      ],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: token ? [{ bearer: [] }] : [],
    },
    // @fastify/swagger marks every body required; teal's POSTs take none as "all defaults".
    transformObject: (documents) => {
      if (!('openapiObject' in documents)) return documents.swaggerObject;
      const { openapiObject } = documents;
      for (const ops of Object.values(openapiObject.paths ?? {}))
        for (const op of Object.values(ops ?? {}))
          if (op && typeof op === 'object' && 'requestBody' in op && op.requestBody)
            (op.requestBody as { required?: boolean }).required = false;
      return openapiObject;
    },
  });

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

  const routes = new RouteTable();
  app.addHook('onRequest', requireBearer(token, routes));

  // POST without a body means "all defaults".
  app.addHook('preValidation', async (request) => {
    // Only an absent body: a JSON `null` is a body, and not the object the document asks for.
    if (request.method === 'POST' && request.body === undefined) request.body = {};
  });

  // Fastify's type carries teal's logger type; the parts take the plain instance.
  const api = app as unknown as FastifyInstance;
  setErrorHandlers(api, opts.bodyLimit ?? DEFAULT_BODY_LIMIT, routes);
  app.after(() => {
    registerRoutes(api, {
      backend: opts.backend,
      auth: token !== undefined,
      metrics: opts.metrics,
      moreMetrics: opts.moreMetrics,
      shutdown: shutdown.signal,
    });
    registerUiRoutes(api, { backend: opts.backend, metrics: opts.metrics, auth: token !== undefined });
  });

  return api;
}

/** The path without its query string, and the configured token nowhere in it. */
export function loggableUrl(url: string, token: string | undefined): string {
  const q = url.indexOf('?');
  const path = q < 0 ? url : `${url.slice(0, q)}?***`;
  return token ? path.split(token).join('***') : path;
}
