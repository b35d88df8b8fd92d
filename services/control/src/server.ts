import type { ResolvedConfig } from '@teal/config';
import { TealError } from '@teal/errors';
import { type Logger, rootLogger, type TealMetrics } from '@teal/runtime';
import type { FastifyInstance } from 'fastify';
import { type BuildOptions, build } from './app.ts';
import type { ControlBackend } from './backend.ts';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '[::1]']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host.toLowerCase()) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Safe by default: anywhere but loopback the API answers only with a bearer token, so
 * refuse to bind there without one rather than expose drain, fence and cutover.
 */
export function assertSafeBind(host: string, token: string | undefined): void {
  if (!isLoopback(host) && !token) {
    throw new TealError(
      'TEAL_API_INSECURE_BIND',
      `refusing to serve the control API on ${host} without a token: set TEAL_API_TOKEN (or api.token in teal.config.ts) to a long random secret, or bind to 127.0.0.1 (TEAL_API_HOST)`,
      { status: 400 },
    );
  }
}

export async function startApi(
  config: ResolvedConfig,
  backend: ControlBackend,
  metrics: TealMetrics,
  logger: Logger = rootLogger(),
  more: Pick<BuildOptions, 'moreMetrics'> = {},
): Promise<{ app: FastifyInstance; url: string; close(): Promise<void> }> {
  const { host, port, token } = config.api;
  assertSafeBind(host, token);
  const app = build({ backend, token, host, port, metrics, logger, moreMetrics: more.moreMetrics });
  await app.listen({ host, port });
  const address = app.server.address();
  const actualPort = typeof address === 'object' && address ? address.port : port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
  logger.info({ url, auth: token ? 'bearer' : 'none (loopback)' }, 'control API listening');
  return { app, url, close: () => app.close() };
}
