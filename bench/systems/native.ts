import { query, url, withClient } from '../lib/pg.ts';
import { log, type ProcRef, sleep, waitUntil } from '../lib/util.ts';
import { type BenchContext, type BenchSystem, walsenderSql } from './types.ts';

/**
 * PostgreSQL's own logical replication: a publication on blue, a subscription on green
 * (copy_data = true for the snapshot, streaming = on for big transactions).
 */
export class NativeSystem implements BenchSystem {
  readonly name = 'native';
  readonly usesKafka = false;
  private sub = '';

  async prepare(): Promise<void> {}

  async start(ctx: BenchContext): Promise<void> {
    this.sub = `bench_native_${ctx.runId}`;
    await query(ctx.blue, `CREATE PUBLICATION ${this.sub} FOR ALL TABLES`);
    const conn = url(ctx.blue).replace('postgres://', '').split('@');
    const [host, rest] = conn[1].split(':');
    const [port, dbname] = rest.split('/');
    await query(
      ctx.green,
      `CREATE SUBSCRIPTION ${this.sub} CONNECTION 'host=${host} port=${port} user=${conn[0]} dbname=${dbname}'
       PUBLICATION ${this.sub} WITH (copy_data = true, streaming = on, slot_name = '${this.sub}')`,
    );
  }

  async pause(ctx: BenchContext): Promise<void> {
    await query(ctx.green, `ALTER SUBSCRIPTION ${this.sub} DISABLE`);
    // The apply worker and blue's walsender exit asynchronously.
    await waitUntil(
      'native walsender to stop',
      async () => (await query(ctx.blue, walsenderSql, [this.sub])).length === 0,
      30_000,
    );
  }

  async resume(ctx: BenchContext): Promise<void> {
    await query(ctx.green, `ALTER SUBSCRIPTION ${this.sub} ENABLE`);
  }

  /** Native runs inside Postgres: its apply and sync workers are sessions (bench/lib/procs.ts). */
  async processes(): Promise<ProcRef[]> {
    return [];
  }

  async smoke(ctx: BenchContext): Promise<string> {
    await this.start(ctx);
    await waitUntil(
      'native apply worker',
      async () =>
        (
          await query(
            ctx.green,
            'SELECT 1 FROM pg_stat_subscription WHERE subname = $1 AND pid IS NOT NULL',
            [this.sub],
          )
        ).length > 0,
      30_000,
    );
    return `subscription ${this.sub} created, apply worker running`;
  }

  async teardown(ctx: BenchContext): Promise<void> {
    if (!this.sub) return;
    await withClient(ctx.green, async (c) => {
      await c.query(`DROP SUBSCRIPTION IF EXISTS ${this.sub}`);
    }).catch(async (err) => {
      log(`native: DROP SUBSCRIPTION failed (${(err as Error).message}); detaching and dropping the slot`);
      await query(ctx.green, `ALTER SUBSCRIPTION ${this.sub} DISABLE`).catch(() => {});
      await query(ctx.green, `ALTER SUBSCRIPTION ${this.sub} SET (slot_name = NONE)`).catch(() => {});
      await query(ctx.green, `DROP SUBSCRIPTION IF EXISTS ${this.sub}`).catch(() => {});
      await sleep(500);
      await query(ctx.blue, 'SELECT pg_drop_replication_slot($1)', [this.sub]).catch(() => {});
    });
    await query(ctx.blue, `DROP PUBLICATION IF EXISTS ${this.sub}`).catch(() => {});
    this.sub = '';
  }
}
