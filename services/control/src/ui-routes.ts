import { readFileSync } from 'node:fs';
import type { TealMetrics } from '@teal/runtime';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ControlBackend } from './backend.ts';
import { errorReplies } from './schemas.ts';
import { lagTotals, type SamplerOptions, StatusSampler } from './status-history.ts';

// The status page (GET /ui): static files from ./ui/, no build step, nothing from outside the
// machine. The files hold no data and no secret, so they are served without a token, like
// /healthz; every number on the page comes from /status and /status/history, which need the
// bearer token when one is configured (the page asks for it once and keeps it in
// sessionStorage). GET /status/history is the lag chart's data, sampled here.

/** The page's files: name → content type. Nothing else under /ui is served. */
const FILES = {
  'app.js': 'text/javascript; charset=utf-8',
  'chart.js': 'text/javascript; charset=utf-8',
  'render.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
} as const;
type UiFile = keyof typeof FILES;

const HTML = 'text/html; charset=utf-8';
const DIR = new URL('./ui/', import.meta.url);

// The page loads only its own files and talks only to this API.
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

const num = { type: 'number' } as const;
const nnum = { type: ['number', 'null'] } as const;
const int = { type: 'integer' } as const;

const historyResponse = {
  type: 'object',
  additionalProperties: false,
  required: ['sampleMs', 'keepMs', 'samples'],
  properties: {
    sampleMs: { ...int, description: 'Between samples now: 2000 while the page is open, 10000 otherwise.' },
    keepMs: { ...int, description: 'How much history the API process keeps (in memory only).' },
    samples: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: [
          'at',
          'state',
          'commitToGreenSeconds',
          'slotLagSeconds',
          'slotLagBytes',
          'retainedWalBytes',
          'consumerLagRecords',
          'deadLetters',
          'blockedPartitions',
        ],
        properties: {
          at: { type: 'string', description: 'The sampled status checkedAt.' },
          state: { type: 'string' },
          commitToGreenSeconds: {
            ...nnum,
            description:
              'Commit on blue to applied in green: mean over the batches applied since the sample before; null when unknown (records wait and none was applied).',
          },
          slotLagSeconds: nnum,
          slotLagBytes: nnum,
          retainedWalBytes: nnum,
          consumerLagRecords: num,
          deadLetters: num,
          blockedPartitions: num,
        },
      },
    },
  },
} as const;

const publicPage = { security: [] as never[] };

export interface UiRouteOptions {
  backend: ControlBackend;
  /** A token is configured: /status/history answers 401 without it. */
  auth: boolean;
  metrics: TealMetrics;
  sampler?: Partial<SamplerOptions>;
}

export function registerUiRoutes(app: FastifyInstance, opts: UiRouteOptions): StatusSampler {
  const sampler = new StatusSampler(
    {
      status: () => opts.backend.status(),
      lagTotals: async () => lagTotals((await opts.metrics.replicationLagSeconds.get()).values),
    },
    opts.sampler,
    (err) => app.log.debug({ err: (err as Error).message }, 'status history: a sample failed'),
  );
  // Sampling starts with the socket: build() alone (inject() in tests) asks nothing of anyone.
  app.addHook('onListen', async () => sampler.start());
  app.addHook('onClose', async () => sampler.stop());

  const files = new Map<string, string>();
  const file = (name: string): string => {
    let text = files.get(name);
    if (text === undefined) {
      text = readFileSync(new URL(name, DIR), 'utf8');
      files.set(name, text);
    }
    return text;
  };
  const page = (reply: FastifyReply, type: string, body: string) =>
    reply.headers(PAGE_HEADERS).type(type).send(body);

  app.get(
    '/ui',
    {
      schema: {
        summary: 'The live status page (HTML; no auth for the page itself, its data needs the token)',
        ...publicPage,
        response: { 200: { description: 'The page', content: { [HTML]: { schema: { type: 'string' } } } } },
      },
    },
    (_request, reply) => page(reply, HTML, file('index.html')),
  );

  app.get<{ Params: { file: UiFile } }>(
    '/ui/:file',
    {
      schema: {
        summary: "The status page's scripts and style sheet (no auth)",
        ...publicPage,
        params: {
          type: 'object',
          additionalProperties: false,
          required: ['file'],
          properties: { file: { type: 'string', enum: Object.keys(FILES) } },
        },
        response: {
          200: {
            description: 'The file',
            content: Object.fromEntries(
              [...new Set(Object.values(FILES))].map((type) => [type, { schema: { type: 'string' } }]),
            ),
          },
          ...errorReplies(400),
        },
      },
    },
    (request, reply) => page(reply, FILES[request.params.file], file(request.params.file)),
  );

  app.get(
    '/status/history',
    {
      schema: {
        summary:
          "The last minutes of lag, sampled in the API process from what /status computes (the page's chart)",
        response: {
          200: historyResponse,
          ...errorReplies(...(opts.auth ? ([401, 500, 503] as const) : ([500, 503] as const))),
        },
      },
    },
    async () => {
      sampler.watched();
      return sampler.view();
    },
  );

  return sampler;
}
