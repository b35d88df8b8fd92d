import pg from 'pg';
import type { Endpoint } from './pg.ts';
import { sleep } from './util.ts';

const NOW_US = `(extract(epoch from clock_timestamp()) * 1e6)::bigint`;

/**
 * Lag probe: blue's heartbeat row gets `clock_timestamp()` (µs) every `writeEveryMs`;
 * green is read every `readEveryMs`; whenever green shows a new value,
 * lag = green's clock_timestamp() - that value (same host, same clock). The read
 * interval bounds the resolution (a sample is late by up to readEveryMs).
 */
export class LagProbe {
  private running = false;
  private readonly samples: number[] = [];
  private loops: Promise<void>[] = [];

  constructor(
    private readonly blue: Endpoint,
    private readonly green: Endpoint,
    private readonly writeEveryMs = 100,
    private readonly readEveryMs = 10,
  ) {}

  private client(e: Endpoint): pg.Client {
    return new pg.Client({
      host: e.host,
      port: e.port,
      user: e.user,
      database: e.database,
      application_name: 'teal-bench-probe',
    });
  }

  /** Connection failures (a shared server restarting) counted, not fatal: the loop reconnects. */
  errors = 0;

  /** Runs `step` on a connection to `e` until stopped; reconnects after any failure. */
  private async loop(e: Endpoint, step: (c: pg.Client) => Promise<void>, first: pg.Client): Promise<void> {
    let c: pg.Client | undefined = first;
    while (this.running) {
      try {
        if (!c) {
          c = this.client(e);
          c.on('error', () => {});
          await c.connect();
        }
        await step(c);
      } catch {
        this.errors++;
        await c?.end().catch(() => {});
        c = undefined;
        await sleep(500);
      }
    }
    await c?.end().catch(() => {});
  }

  async start(): Promise<void> {
    const w = this.client(this.blue);
    const r = this.client(this.green);
    w.on('error', () => {});
    r.on('error', () => {});
    await w.connect();
    await r.connect();
    this.running = true;
    let last: string | undefined;
    this.loops = [
      this.loop(
        this.blue,
        async (c) => {
          await c.query(`UPDATE bench_heartbeat SET ts_us = ${NOW_US} WHERE id = 1`);
          await sleep(this.writeEveryMs);
        },
        w,
      ),
      this.loop(
        this.green,
        async (c) => {
          const res = await c.query<{ ts_us: string; now_us: string }>(
            `SELECT ts_us, ${NOW_US} AS now_us FROM bench_heartbeat WHERE id = 1`,
          );
          const row = res.rows[0];
          if (row && row.ts_us !== '0' && row.ts_us !== last) {
            if (last !== undefined) this.samples.push((Number(row.now_us) - Number(row.ts_us)) / 1000);
            last = row.ts_us;
          }
          await sleep(this.readEveryMs);
        },
        r,
      ),
    ];
  }

  async stop(): Promise<number[]> {
    this.running = false;
    await Promise.allSettled(this.loops);
    return this.samples.slice().sort((a, b) => a - b);
  }
}
