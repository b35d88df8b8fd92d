import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, type ControlBackend, type StatusReport } from '@teal/control';
import { TealError } from '@teal/errors';
import { createMetrics } from '@teal/runtime';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliIo, EXIT, main } from './cli.ts';

const NO_HOLES = { preparedTransactions: [], sessions: [] };
const AT = '2026-12-01T10:00:00+00:00';

// The CLI against a real HTTP listener serving the real API over a fake backend: no
// database, no Kafka.

const TOKEN = 'cli-test-token';
let app: FastifyInstance;
let port: number;
const calls: Array<{ what: string; body: unknown }> = [];

const status = {
  state: 'streaming',
  paused: false,
  fenced: false,
  slot: null,
  producer: null,
  consumer: {
    state: 'running',
    partitions: [
      {
        topic: 'teal.public.t',
        partition: 0,
        appliedOffset: 4,
        appliedPosition: '0/10:1',
        end: 9,
        lag: 4,
        blocked: null,
      },
    ],
    lagRecords: 4,
    deadLetters: 0,
    blocked: [],
    error: null,
  },
  warnings: ['something to know'],
  checkedAt: 'now',
} satisfies StatusReport;

let statusCalls = 0;
/** Status with a snapshot under way: 1000 more rows of public.users done at each call. */
const snapshotting = (): StatusReport => ({
  ...status,
  state: 'snapshotting',
  producer: {
    source: 'in-process',
    state: 'snapshotting',
    confirmedLsn: null,
    lastShippedPosition: null,
    lastCommitTimeUs: null,
    updatedAt: null,
    snapshot: [
      { table: 'public.users', state: 'copying', rowsDone: 1_000 * ++statusCalls, rowsEstimated: 10_000 },
    ],
    error: null,
  },
});
let currentStatus: () => StatusReport = () => status;

const backend = {
  status: async () => currentStatus(),
  pause: async () => ({ paused: true }),
  resume: async () => ({ paused: false }),
  drain: async (opts: { timeoutMs: number; fence: boolean }) => {
    calls.push({ what: 'drain', body: { timeoutMs: opts.timeoutMs, fence: opts.fence } });
    if (opts.timeoutMs === 1000) {
      throw new TealError(
        'TEAL_DRAIN_TIMEOUT',
        'drain did not finish within 1000 ms: 1 partition(s) behind',
        { status: 504 },
      );
    }
    return {
      drained: true,
      clean: true,
      deadLetters: { total: 0, tables: [] },
      lsn: '0/16B3748',
      targetLsn: '0/16B3748',
      confirmedLsn: '0/16B3748',
      partitions: [],
      waitedMs: 5,
      fenced: opts.fence,
    };
  },
  cutover: async (opts: unknown) => {
    calls.push({ what: 'cutover', body: opts });
    return {
      safeToSwitch: false,
      fenced: true,
      drainLsn: '0/1',
      deadLetters: null,
      fenceHoles: null,
      steps: [{ name: 'verify', ok: false, ms: 3, details: '1 table(s) differ' }],
      sequences: [],
      verify: null,
      warnings: [],
    };
  },
  verify: async (opts: { tables?: string[] }) => {
    calls.push({ what: 'verify', body: opts.tables });
    return { ok: true, startedAt: 'a', finishedAt: 'b', durationMs: 3, tables: [] };
  },
  fence: async () => ({ fenced: true, database: 'app', terminatedSessions: 0, fencedAt: AT, ...NO_HOLES }),
  unfence: async () => ({
    fenced: false,
    database: 'app',
    terminatedSessions: 0,
    fencedAt: null,
    ...NO_HOLES,
  }),
  ready: async () => ({
    ready: true,
    checks: {
      blue: { ok: true, error: null },
      green: { ok: true, error: null },
      kafka: { ok: true, error: null },
    },
  }),
} as unknown as ControlBackend;

beforeAll(async () => {
  app = build({ backend, token: TOKEN, host: '127.0.0.1', metrics: createMetrics() });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;
});
afterAll(() => app.close());

const cwd = mkdtempSync(join(tmpdir(), 'teal-cli-'));

async function teal(
  args: string[],
  env: Record<string, string> = {},
  options: { isTTY?: boolean; stopWhen?: (out: string) => boolean } = {},
) {
  let out = '';
  let err = '';
  let stop: ((signal: string) => void) | undefined;
  const stopped = new Promise<string>((resolve) => {
    stop = resolve;
  });
  const io: CliIo = {
    stdout: {
      isTTY: options.isTTY,
      write: (t: string) => {
        out += t;
        if (options.stopWhen?.(out)) stop?.('SIGINT');
      },
    },
    stderr: { write: (t: string) => (err += t) },
    env: { TEAL_API_PORT: String(port), TEAL_API_TOKEN: TOKEN, ...env },
    cwd,
    stopSignal: () => stopped,
  };
  const code = await main(args, io);
  return { code, out, err };
}

describe('teal CLI', () => {
  it('prints status as a short table and as JSON', async () => {
    const human = await teal(['status']);
    expect(human.code).toBe(EXIT.ok);
    expect(human.out).toMatch(/state\s+streaming/);
    expect(human.out).toMatch(/teal\.public\.t\s+0\s+4\s+9\s+4/);
    expect(human.out).toMatch(/warning: something to know/);
    const json = await teal(['status', '--json']);
    expect(JSON.parse(json.out).consumer.lagRecords).toBe(4);
  });

  it('status shows snapshot progress per table; --watch adds the rate and ETA, redrawn in place on a terminal', async () => {
    currentStatus = snapshotting;
    try {
      statusCalls = 0;
      const once = await teal(['status']);
      expect(once.out).toMatch(/^ {4}public\.users +\[##\.+\] +10% {2}1,000\/10,000 rows {2}copying$/m);

      // A TTY: every frame starts with cursor home + clear screen; from the second on, a rate and an ETA.
      const frames = (out: string) => out.split('\x1b[H\x1b[2J').slice(1);
      const tty = await teal(
        ['status', '--watch', '--interval', '1000'],
        {},
        {
          isTTY: true,
          stopWhen: (out) => frames(out).length === 3,
        },
      );
      expect(tty.code).toBe(EXIT.ok);
      const drawn = frames(tty.out);
      expect(drawn).toHaveLength(3);
      expect(drawn[0]).toMatch(
        /^teal status at \d\d:\d\d:\d\d UTC, every 1 s \(Ctrl-C to stop\)\n\nstate +snapshotting/,
      );
      expect(drawn[2]).toMatch(
        /public\.users +\[#+\.+\] +\d+% {2}\d,000\/10,000 rows {2}[\d,]+ rows\/s {2}ETA \d+s {2}copying/,
      );

      // Not a TTY: a new block per interval, nothing redrawn.
      const plain = await teal(
        ['status', '--watch', '--interval', '1000'],
        {},
        {
          stopWhen: (out) => (out.match(/^teal status at /gm) ?? []).length === 2,
        },
      );
      expect(plain.out).not.toContain('\x1b[');
      expect(plain.out.match(/^state +snapshotting$/gm)).toHaveLength(2);

      // --json: one document per line.
      const json = await teal(
        ['status', '--watch', '--interval', '1000', '--json'],
        {},
        {
          stopWhen: (out) => out.split('\n').length === 3,
        },
      );
      expect(
        json.out
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l).state),
      ).toEqual(['snapshotting', 'snapshotting']);
    } finally {
      currentStatus = () => status;
    }
  }, 20_000);

  it('status --watch keeps going while the API is away', async () => {
    const r = await teal(
      ['status', '--watch', '--interval', '1000'],
      { TEAL_API_PORT: '1' },
      {
        stopWhen: (out) => (out.match(/cannot reach the teal API/g) ?? []).length === 2,
      },
    );
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toMatch(/^cannot reach the teal API at http:\/\/127\.0\.0\.1:1/m);
  }, 20_000);

  it('drains with the given timeout and fence, printing the LSN', async () => {
    const r = await teal(['drain', '--timeout', '2000', '--fence']);
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toMatch(/up to 0\/16B3748/);
    expect(calls.at(-1)).toEqual({ what: 'drain', body: { timeoutMs: 2000, fence: true } });
  });

  it('exits 4 on a drain timeout', async () => {
    const r = await teal(['drain', '--timeout', '1000']);
    expect(r.code).toBe(EXIT.drainTimeout);
    expect(r.err).toMatch(/did not finish within 1000 ms/);
  });

  it('exits 1 when cutover is not safe, passing --no-fence/--no-verify through', async () => {
    const r = await teal(['cutover', '--no-fence', '--no-verify']);
    expect(r.code).toBe(EXIT.failure);
    expect(r.out).toMatch(/NOT SAFE TO SWITCH/);
    expect(calls.at(-1)).toEqual({
      what: 'cutover',
      body: { fence: false, verify: false, timeoutMs: 300_000, unfenceOnFailure: false },
    });
  });

  it('passes --accept-dead-letters through to the cutover', async () => {
    await teal(['cutover', '--accept-dead-letters']);
    expect(calls.at(-1)).toMatchObject({ what: 'cutover', body: { acceptDeadLetters: true } });
  });

  it('verifies through the API with --table', async () => {
    const r = await teal(['verify', '--table', 'public.a', '--table', 'b', '--json']);
    expect(r.code).toBe(EXIT.ok);
    expect(JSON.parse(r.out).ok).toBe(true);
    expect(calls.at(-1)).toEqual({ what: 'verify', body: ['public.a', 'b'] });
  });

  it('exits 1 with the API message on a wrong token', async () => {
    const r = await teal(['pause'], { TEAL_API_TOKEN: 'wrong' });
    expect(r.code).toBe(EXIT.failure);
    expect(r.err).toMatch(/wrong bearer token.*TEAL_UNAUTHORIZED, HTTP 401/);
  });

  it('exits 2 on usage errors and 3 when no API answers', async () => {
    expect((await teal(['drain', '--bogus'])).code).toBe(EXIT.usage);
    expect((await teal(['frobnicate'])).code).toBe(EXIT.usage);
    expect((await teal(['cutover', '--timeout', 'soon'])).code).toBe(EXIT.usage);
    const down = await teal(['status'], { TEAL_API_PORT: '1' });
    expect(down.code).toBe(EXIT.unreachable);
    expect(down.err).toMatch(/cannot reach the teal API at http:\/\/127\.0\.0\.1:1/);
  });

  it('has --help on every command', async () => {
    for (const c of [
      'run',
      'producer',
      'consumer',
      'api',
      'status',
      'pause',
      'resume',
      'drain',
      'cutover',
      'verify',
      'demo',
    ]) {
      const r = await teal([c, '--help']);
      expect(r.code, c).toBe(EXIT.ok);
      expect(r.out, c).toMatch(new RegExp(`usage: teal ${c}`));
    }
    expect((await teal(['--help'])).out).toMatch(/exit codes/);
  });
});
