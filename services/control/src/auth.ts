import { createHash, timingSafeEqual } from 'node:crypto';
import { TealError } from '@teal/errors';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { pathOf, type RouteTable } from './api-errors.ts';

// Tokens are compared as SHA-256 digests: equal length always, so timingSafeEqual never
// throws and the comparison time says nothing about the token's length or prefix.
export function tokenMatches(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header, undefined when absent or another scheme. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1];
}

// The status page's files (ui-routes.ts) hold no data: a browser loads them without a
// header, and they ask for the token to read /status.
const PUBLIC_ROUTES = new Set(['/healthz', '/readyz', '/ui', '/ui/:file']);

/** The onRequest hook: every route but /healthz, /readyz and the status page's files needs the bearer token, when one is set. */
export function requireBearer(token: string | undefined, routes?: RouteTable) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    // A public path asked with another method matches no route: its 405 needs no token either.
    const route = request.routeOptions.url ?? routes?.match(pathOf(request.url))?.url ?? '';
    if (!token || PUBLIC_ROUTES.has(route)) return;
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
  };
}
