import { createMetrics } from '@teal/runtime';
import { describe, expect, it } from 'vitest';
import { build } from './app.ts';
import type { ControlBackend } from './backend.ts';

// Regression (found by api-abuse.test.ts): a path with an invalid %-escape was answered by
// Fastify itself as {"error":"Bad Request","code":"FST_ERR_BAD_URL",...,"statusCode":400},
// not in teal's {error: {code, message}} shape that clients branch on.
describe('a URL with an invalid percent-escape', () => {
  it.each(['/status%', '/%ff', '/drain%zz', '/docs/%E0%A4%A'])(
    'GET %s is 400 TEAL_BAD_REQUEST in the error shape',
    async (url) => {
      const app = build({
        backend: {} as ControlBackend,
        token: 't0ken',
        host: '127.0.0.1',
        metrics: createMetrics(),
      });
      try {
        for (const headers of [{}, { authorization: 'Bearer t0ken' }]) {
          const res = await app.inject({ method: 'GET', url, headers });
          expect(res.statusCode).toBe(400);
          const body = res.json() as { error: { code: string; message: string } };
          expect(Object.keys(body)).toEqual(['error']);
          expect(body.error.code).toBe('TEAL_BAD_REQUEST');
          expect(body.error.message).toMatch(/percent-encode/);
        }
      } finally {
        await app.close();
      }
    },
  );
});
