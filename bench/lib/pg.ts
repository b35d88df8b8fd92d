import pg from 'pg';
import { log, PG_BIN, run, sleep } from './util.ts';

export interface Endpoint {
  host: string;
  port: number;
  user: string;
  database: string;
}

export function url(e: Endpoint): string {
  return `postgres://${e.user}@${e.host}:${e.port}/${e.database}`;
}

export function parseUrl(u: string, database: string): Endpoint {
  const p = new URL(u);
  return {
    host: p.hostname || '127.0.0.1',
    port: Number(p.port || 5432),
    user: decodeURIComponent(p.username || 'postgres'),
    database,
  };
}

export async function withClient<T>(e: Endpoint, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({
    host: e.host,
    port: e.port,
    user: e.user,
    database: e.database,
    application_name: 'teal-bench',
  });
  // A server that restarts under us (the env is shared) must fail this call, not the process.
  c.on('error', () => {});
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

export async function query<T extends pg.QueryResultRow = pg.QueryResultRow>(
  e: Endpoint,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  return withClient(e, async (c) => (await c.query<T>(sql, params)).rows);
}

function psqlEnv(e: Endpoint): NodeJS.ProcessEnv {
  return { ...process.env, PGHOST: e.host, PGPORT: String(e.port), PGUSER: e.user, PGDATABASE: e.database };
}

export const TABLES = [
  'pgbench_accounts',
  'pgbench_branches',
  'pgbench_tellers',
  'pgbench_history',
  'bench_heartbeat',
];

/** Drops every bench_ slot left behind on this database's cluster by an aborted run. */
export async function dropLeftoverSlots(blue: Endpoint): Promise<void> {
  const admin = { ...blue, database: 'postgres' };
  const slots = await query<{ slot_name: string; active_pid: number | null }>(
    admin,
    `SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = $1 AND slot_name LIKE 'bench\\_%'`,
    [blue.database],
  );
  for (const s of slots) {
    if (s.active_pid) await query(admin, 'SELECT pg_terminate_backend($1)', [s.active_pid]).catch(() => {});
    await sleep(200);
    await query(admin, 'SELECT pg_drop_replication_slot($1)', [s.slot_name]).catch((err) =>
      log(`could not drop slot ${s.slot_name}: ${(err as Error).message}`),
    );
  }
}

/** Drops green's bench_ subscriptions (native system) so the database can be dropped. */
export async function dropLeftoverSubscriptions(green: Endpoint): Promise<void> {
  const exists = await query(
    { ...green, database: 'postgres' },
    'SELECT 1 FROM pg_database WHERE datname = $1',
    [green.database],
  );
  if (exists.length === 0) return;
  const subs = await query<{ subname: string }>(
    { ...green, database: 'postgres' },
    `SELECT subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = $1`,
    [green.database],
  );
  for (const s of subs) {
    await withClient(green, async (c) => {
      await c.query(`ALTER SUBSCRIPTION ${s.subname} DISABLE`).catch(() => {});
      await c.query(`ALTER SUBSCRIPTION ${s.subname} SET (slot_name = NONE)`).catch(() => {});
      await c.query(`DROP SUBSCRIPTION ${s.subname}`);
    });
  }
}

async function recreateDatabase(e: Endpoint): Promise<void> {
  const admin = { ...e, database: 'postgres' };
  await query(admin, `DROP DATABASE IF EXISTS ${e.database} WITH (FORCE)`);
  await query(admin, `CREATE DATABASE ${e.database}`);
}

const EXTRA_DDL = `
  ALTER TABLE pgbench_history ADD COLUMN hid bigserial PRIMARY KEY;
  CREATE TABLE bench_heartbeat (id int PRIMARY KEY, ts_us bigint NOT NULL, marker bigint NOT NULL DEFAULT 0);
`;

/**
 * Fresh bench databases: blue gets pgbench data at `scale` (plus a key on
 * pgbench_history, which pgbench creates without one, and a heartbeat table); green gets
 * the same tables, empty.
 */
export async function freshData(blue: Endpoint, green: Endpoint, scale: number): Promise<void> {
  await dropLeftoverSubscriptions(green).catch(() => {});
  await dropLeftoverSlots(blue).catch(() => {});
  await recreateDatabase(blue);
  await run(`${PG_BIN}/pgbench`, ['-i', '-q', '-s', String(scale), '-I', 'dtgvp'], { env: psqlEnv(blue) });
  await withClient(blue, async (c) => {
    await c.query(EXTRA_DDL);
  });
  await query(blue, `INSERT INTO bench_heartbeat VALUES (1, 0, 0)`);
  await query(blue, 'ANALYZE');
  await freshGreen(green, scale);
}

/**
 * Green alone made new and empty: after a snapshot-only pass blue is as it was (a snapshot
 * writes nothing there), so the next system can copy the same blue again.
 */
export async function freshGreen(green: Endpoint, scale: number): Promise<void> {
  await dropLeftoverSubscriptions(green).catch(() => {});
  await recreateDatabase(green);
  await run(`${PG_BIN}/pgbench`, ['-i', '-q', '-s', String(scale), '-I', 'dtp'], { env: psqlEnv(green) });
  await withClient(green, async (c) => {
    await c.query(EXTRA_DDL);
  });
}

/** Bytes of the replicated tables on disk (heap, indexes, TOAST): what a copy moves, roughly. */
export async function tableBytes(e: Endpoint, tables = TABLES): Promise<number> {
  const rows = await query<{ b: string }>(
    e,
    'SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS b FROM pg_class c WHERE c.relname = ANY($1) AND c.relkind = $2',
    [tables, 'r'],
  );
  return Number(rows[0].b);
}

/** Connection-level failures a restarting server causes (refused, terminated, starting up, shutting down). */
export function isTransient(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (
    e.code &&
    ['57P01', '57P02', '57P03', '08000', '08001', '08003', '08006', 'ECONNREFUSED', 'ECONNRESET'].includes(
      e.code,
    )
  )
    return true;
  return /Connection terminated|ECONNREFUSED|ECONNRESET|the database system is (starting up|shutting down)/.test(
    e.message ?? '',
  );
}

/** A fingerprint of the replicated tables (heartbeat excluded: the probe keeps writing it). */
export async function fingerprint(e: Endpoint): Promise<string> {
  const rows = await query<{ f: string }>(
    e,
    `SELECT concat_ws('|',
       (SELECT count(*) || ':' || coalesce(sum(abalance), 0) || ':' || coalesce(sum(aid::bigint * abalance), 0) FROM pgbench_accounts),
       (SELECT count(*) || ':' || coalesce(sum(bbalance), 0) FROM pgbench_branches),
       (SELECT count(*) || ':' || coalesce(sum(tbalance), 0) FROM pgbench_tellers),
       (SELECT count(*) || ':' || coalesce(sum(delta), 0) || ':' || coalesce(max(hid), 0) FROM pgbench_history)) AS f`,
  );
  return rows[0].f;
}

export async function rowCount(e: Endpoint, table: string): Promise<number> {
  const rows = await query<{ n: string }>(e, `SELECT count(*) AS n FROM ${table}`);
  return Number(rows[0].n);
}

export async function pgbench(e: Endpoint, args: string[], scriptFile?: string): Promise<string> {
  const all = [...args, '-n'];
  if (scriptFile) all.push('-f', scriptFile);
  const r = await run(`${PG_BIN}/pgbench`, all, { env: psqlEnv(e) });
  return r.stdout;
}

export function tpsOf(pgbenchOut: string): number {
  return Number(/tps = ([\d.]+)/.exec(pgbenchOut)?.[1] ?? Number.NaN);
}

/**
 * The limit line: pgbench_accounts from blue through `COPY TO STDOUT` piped into
 * `COPY FROM STDIN` on green (two psql processes), into an empty table.
 */
export async function copyLimit(blue: Endpoint, green: Endpoint): Promise<{ rows: number; seconds: number }> {
  await query(green, 'TRUNCATE pgbench_accounts');
  const rows = await rowCount(blue, 'pgbench_accounts');
  const b = `-h ${blue.host} -p ${blue.port} -U ${blue.user} -d ${blue.database}`;
  const g = `-h ${green.host} -p ${green.port} -U ${green.user} -d ${green.database}`;
  const t0 = performance.now();
  await run('bash', [
    '-o',
    'pipefail',
    '-c',
    `${PG_BIN}/psql -X -q ${b} -c '\\copy pgbench_accounts TO STDOUT' | ${PG_BIN}/psql -X -q ${g} -c '\\copy pgbench_accounts FROM STDIN'`,
  ]);
  const seconds = (performance.now() - t0) / 1000;
  await query(green, 'TRUNCATE pgbench_accounts');
  return { rows, seconds };
}
