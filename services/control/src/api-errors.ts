import { isRetriablePgError, redactSecrets, TealError } from '@teal/errors';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

// Every error the API answers has teal's shape {error: {code, message, details?}}: teal's
// own errors, Fastify's validation and 4xx errors, unknown routes, and what slips through.

export function sendError(
  reply: FastifyReply,
  status: number,
  code: string,
  message: string,
  details?: Record<string, unknown>,
) {
  return reply.code(status).send({ error: details ? { code, message, details } : { code, message } });
}

/**
 * For Fastify's `frameworkErrors`: a URL Fastify cannot decode (a stray or invalid %-escape)
 * is answered before routing, in Fastify's own shape unless this answers.
 */
export function badUrl(err: FastifyError, reply: FastifyReply): void {
  sendError(
    reply,
    400,
    'TEAL_BAD_REQUEST',
    `bad request: ${err.message}: percent-encode the path (see GET /docs)`,
  );
}

/**
 * The routes' paths and methods, as they register (Fastify's onRoute): a request that matches
 * no route may still name a path that exists, which answers 405 with `Allow` (RFC 9110), not 404.
 */
export class RouteTable {
  private readonly routes = new Map<string, { pattern: RegExp; methods: Set<string> }>();

  add(method: string | string[], url: string): void {
    let route = this.routes.get(url);
    if (!route) {
      const pattern = url
        .split('/')
        .map((part) => (part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
        .join('/');
      route = { pattern: new RegExp(`^${pattern}$`), methods: new Set() };
      this.routes.set(url, route);
    }
    for (const m of Array.isArray(method) ? method : [method]) route.methods.add(m.toUpperCase());
  }

  /** The registered route (its url pattern and methods) a path names, whatever the method. */
  match(path: string): { url: string; methods: string[] } | undefined {
    for (const [url, route] of this.routes) {
      if (route.pattern.test(path)) return { url, methods: [...route.methods].sort() };
    }
    return undefined;
  }
}

/** The path of a request URL, without its query string. */
export function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

// Statuses outside this list would be undocumented (GET /docs is exact): a TealError that
// carries another maps to the nearest documented one.
const API_STATUSES = new Set([400, 401, 404, 405, 409, 413, 415, 500, 503, 504]);
function documentedStatus(status: number): number {
  if (API_STATUSES.has(status)) return status;
  // 499 (TEAL_VERIFY_ABORTED): the server, stopping, ended it, not the client.
  if (status === 499) return 503;
  return status >= 400 && status < 500 ? 400 : 500;
}

export function setErrorHandlers(app: FastifyInstance, bodyLimit: number, routes: RouteTable): void {
  app.addHook('onRoute', (route) => routes.add(route.method, route.url ?? route.path));
  const noRoute = (request: FastifyRequest, reply: FastifyReply) => {
    const path = pathOf(request.url);
    const known = routes.match(path);
    if (known) {
      reply.header('Allow', known.methods.join(', '));
      return sendError(
        reply,
        405,
        'TEAL_METHOD_NOT_ALLOWED',
        `${request.method} is not allowed on ${path}: use ${known.methods.join(' or ')} (see GET /docs)`,
      );
    }
    return sendError(reply, 404, 'TEAL_NOT_FOUND', `no route ${request.method} ${path}: see GET /docs`);
  };
  app.setNotFoundHandler(noRoute);

  app.setErrorHandler((err: FastifyError | TealError, request, reply) => {
    // No route matched, yet Fastify parsed a body first (QUERY, a body method, without a
    // content type): the method is the problem, not the body.
    if (request.is404 && !(err instanceof TealError)) return noRoute(request, reply);
    if ('validation' in err && err.validation) {
      return sendError(reply, 400, 'TEAL_BAD_REQUEST', validationMessage(err));
    }
    if (err instanceof TealError) {
      const status = documentedStatus(err.status);
      if (status >= 500) request.log.warn({ code: err.code }, err.message);
      return sendError(reply, status, err.code, err.message, err.details);
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
          ? `request body is larger than ${bodyLimit} bytes: send a smaller JSON object`
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
