import { createMetrics } from '@teal/runtime';
import { describe, expect, it } from 'vitest';
import { build } from './app.ts';
import type { ControlBackend } from './backend.ts';

// Regression (found by api-abuse.test.ts): a JSON body nested thousands of levels deep made
// the 400 message's JSON.stringify overflow the stack inside the error handler, and the
// client got 500 FST_ERR_FAILED_ERROR_SERIALIZATION instead of a 400.
describe('a deeply nested JSON body', () => {
  it.each([5_000, 20_000])('nested %i levels is 400 TEAL_BAD_REQUEST, not 500', async (depth) => {
    const app = build({
      backend: {} as ControlBackend,
      host: '127.0.0.1',
      metrics: createMetrics(),
      bodyLimit: 1 << 20,
    });
    try {
      for (const payload of [
        `${'['.repeat(depth)}${']'.repeat(depth)}`,
        `{"fence":${'['.repeat(depth)}${']'.repeat(depth)}}`,
      ]) {
        const res = await app.inject({
          method: 'POST',
          url: '/drain',
          payload,
          headers: { 'content-type': 'application/json' },
        });
        expect(res.statusCode, res.body).toBe(400);
        expect(res.json()).toMatchObject({
          error: { code: 'TEAL_BAD_REQUEST', message: expect.stringMatching(/^invalid request: body/) },
        });
      }
    } finally {
      await app.close();
    }
  });
});
