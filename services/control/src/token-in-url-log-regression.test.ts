import { Writable } from 'node:stream';
import { createMetrics } from '@teal/runtime';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { build } from './app.ts';
import type { ControlBackend } from './backend.ts';

// Regression (found by test/log-secrets.test.ts): Fastify's request log lines carried the raw
// URL, so a token sent as /status?token=<token> (or pasted into the path) was written to the
// logs. Requests are now logged with the query string and the configured token masked.
describe('the API token in a request URL', () => {
  it('never reaches the request log lines, which still name method, path and status', async () => {
    const token = 'tok-in-url-7c1d9e22b4a0';
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = pino({ level: 'trace' }, sink);
    const backend = { status: async () => ({}) } as unknown as ControlBackend;
    const app = build({ backend, token, host: '127.0.0.1', metrics: createMetrics(), logger });
    try {
      for (const url of [
        `/status?token=${token}`,
        `/status?access_token=${token}&x=1`,
        `/nope/${token}`,
        `/${token}`,
      ]) {
        await app.inject({ method: 'GET', url });
      }
      await app.inject({ method: 'GET', url: '/healthz' });
    } finally {
      await app.close();
    }
    const out = lines.join('');
    expect(out).not.toContain(token);
    expect(out).toMatch(/"url":"\/status\?\*\*\*","statusCode":401/);
    expect(out).toMatch(/"url":"\/nope\/\*\*\*","statusCode":40\d/);
    expect(out).toMatch(/"method":"GET","url":"\/healthz","statusCode":200/);
  });
});
