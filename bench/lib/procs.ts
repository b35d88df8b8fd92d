// What a system needs besides its own process, found while a workload runs: its sessions on
// bench_blue (walsender, snapshot readers) and bench_green (the writers, native's workers),
// and the Kafka broker for the systems that publish through it.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { Endpoint } from './pg.ts';
import type { ProcRef } from './util.ts';

/** Sessions of the harness itself (fingerprints, probe, pgbench): not a system's cost. Autovacuum is nobody's. */
const HARNESS_APPS = ['teal-bench', 'teal-bench-probe', 'pgbench'];

const SESSIONS_SQL = `SELECT a.pid, a.backend_type, s.relid IS NOT NULL AS sync
  FROM pg_stat_activity a LEFT JOIN pg_stat_subscription s ON s.pid = a.pid
  WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
    AND a.backend_type IN ('client backend', 'walsender', 'logical replication worker', 'parallel worker')
    AND coalesce(a.application_name, '') <> ALL ($1)`;

/** The pid of a process listening on a local TCP port (by the socket's inode in /proc), if any. */
export function listenerPid(port: number): number | undefined {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // local_address is "ADDR:PORT", st 0A is LISTEN, inode is column 10.
      if (cols.length > 9 && cols[1]?.endsWith(`:${hex}`) && cols[3] === '0A') inodes.add(cols[9]);
    }
  }
  if (!inodes.size) return undefined;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${d}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${d}/fd/${fd}`));
        if (m && inodes.has(m[1])) return Number(d);
      } catch {}
    }
  }
  return undefined;
}

/**
 * The local broker's pid: BENCH_KAFKA_PID, else the pid file `npm run env:up` writes
 * (.teal/run/kafka.pid), else whoever listens on the brokers' first port on this host.
 */
export function brokerPid(repoRoot: string, brokers: string): number | undefined {
  const alive = (pid: number) => {
    try {
      return /^java$|kafka/i.test(readFileSync(`/proc/${pid}/comm`, 'utf8').trim()) ? pid : undefined;
    } catch {
      return undefined;
    }
  };
  if (process.env.BENCH_KAFKA_PID) return Number(process.env.BENCH_KAFKA_PID);
  try {
    const pid = alive(Number(readFileSync(join(repoRoot, '.teal', 'run', 'kafka.pid'), 'utf8').trim()));
    if (pid) return pid;
  } catch {}
  const [host, port] = (brokers.split(',')[0] ?? '').split(':');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host ?? '') || !port) return undefined;
  const pid = listenerPid(Number(port));
  return pid === undefined ? undefined : alive(pid);
}

/** Lists the sessions of bench_blue and bench_green through one long-lived client each. */
export class SessionLister {
  private readonly clients = new Map<Endpoint, Promise<pg.Client>>();

  constructor(
    private readonly blue: Endpoint,
    private readonly green: Endpoint,
  ) {}

  private client(e: Endpoint): Promise<pg.Client> {
    let c = this.clients.get(e);
    if (!c) {
      const client = new pg.Client({ ...e, application_name: 'teal-bench' });
      // A server restarted under us (shared env): drop the client and connect again next time.
      client.on('error', () => this.clients.delete(e));
      client.on('end', () => this.clients.delete(e));
      c = client.connect().then(() => client);
      c.catch(() => this.clients.delete(e));
      this.clients.set(e, c);
    }
    return c;
  }

  private async sessions(e: Endpoint): Promise<{ pid: number; backend_type: string; sync: boolean }[]> {
    try {
      return (await (await this.client(e)).query(SESSIONS_SQL, [HARNESS_APPS])).rows;
    } catch {
      return [];
    }
  }

  /** Every session of a system: blue's walsenders and backends, green's backends and workers. */
  async list(): Promise<ProcRef[]> {
    const [blue, green] = await Promise.all([this.sessions(this.blue), this.sessions(this.green)]);
    const out: ProcRef[] = [];
    for (const s of blue)
      out.push({
        label: s.backend_type === 'walsender' ? 'blue walsender' : 'blue backends',
        pid: s.pid,
        kind: 'support',
      });
    for (const s of green) {
      // Native's apply and table-sync workers are native's own process; anyone else's session
      // on green is a backend writing for the system.
      if (s.backend_type === 'logical replication worker')
        out.push({ label: s.sync ? 'green sync worker' : 'green apply worker', pid: s.pid, kind: 'own' });
      else out.push({ label: 'green backends', pid: s.pid, kind: 'support' });
    }
    return out;
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((c) => c.then((x) => x.end()).catch(() => {})));
  }
}
