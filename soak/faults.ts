import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { pgBinDir } from '../infra/local/lib/prerequisites.mjs';
import { localPortsTo, type TealChild } from './processes.ts';

// The faults a soak injects. Each one targets only what this soak started (its children's
// pids, their own sessions found by client port, its own slot's walsender, its own tables),
// except the opt-in `broker` and `green` restarts, which every user of the local environment
// feels. `green-snapshot` and `syncrep` stop or reconfigure a Postgres server, so they run
// only on the soak's own clusters (`--scratch`), as does `green` there.

export const FAULT_KINDS = [
  'producer',
  'consumer',
  'terminate',
  'rebalance',
  'chunk-kill',
  'green-snapshot',
  'syncrep',
  'broker',
  'green',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
/** Safe on the shared environment: they touch only the soak's own processes, sessions and tables. */
export const DEFAULT_FAULTS: FaultKind[] = ['producer', 'consumer', 'terminate', 'rebalance', 'chunk-kill'];
/** With `--scratch` (the soak's own blue and green) these are safe too. */
export const SCRATCH_FAULTS: FaultKind[] = [...DEFAULT_FAULTS, 'green-snapshot', 'syncrep', 'green'];
/** Faults that stop or reconfigure a Postgres server: refused unless the soak runs its own (`--scratch`). */
export const SCRATCH_ONLY_FAULTS: FaultKind[] = ['green-snapshot', 'syncrep'];
/** Injected at most `--env-fault-limit` times (they hit everyone, or take long). */
export const LIMITED_FAULTS: FaultKind[] = ['broker', 'green'];
/** Not part of the fault loop: injected once, during the initial snapshot. */
export const START_FAULTS: FaultKind[] = ['green-snapshot'];

export function parseFaults(list: string): FaultKind[] {
  const kinds = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const k of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(k))
      throw new Error(`--faults: unknown fault "${k}" (known: ${FAULT_KINDS.join(', ')})`);
  }
  return kinds as FaultKind[];
}

export function portOf(url: string): number {
  return Number(new URL(url).port || 5432);
}

/**
 * pg_terminate_backend of the sessions the given children hold on one server (found by
 * their TCP client ports), plus, on blue, the walsender of `slot`. Returns how many ended.
 */
export async function terminateSessions(
  admin: pg.ClientBase,
  serverPort: number,
  children: TealChild[],
  slot?: string,
): Promise<number> {
  const ports = children.flatMap((c) => (c.pid === undefined ? [] : localPortsTo(c.pid, serverPort)));
  const { rows } = await admin.query<{ n: string }>(
    `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::text AS n FROM pg_stat_activity
      WHERE pid <> pg_backend_pid()
        AND (client_port = ANY($1::int[])
             OR ($2::text IS NOT NULL AND pid = (SELECT active_pid FROM pg_replication_slots WHERE slot_name = $2)))`,
    [ports, slot ?? null],
  );
  return Number(rows[0].n);
}

function runEnv(root: string, cmd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, 'infra/local/env.mjs'), cmd], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`env.mjs ${cmd} exited ${code}: ${err.slice(-500)}`)),
    );
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** kill -9 of the local broker (pid from .teal/run/kafka.pid), then `env.mjs up`. */
export async function restartBroker(
  root: string,
  waitGone: (what: string, f: () => boolean) => Promise<void>,
) {
  const pid = Number(readFileSync(path.join(root, '.teal/run/kafka.pid'), 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error('no broker pid in .teal/run/kafka.pid');
  process.kill(pid, 'SIGKILL');
  await waitGone('broker process gone', () => !pidAlive(pid));
  await runEnv(root, 'up');
}

function pgCtl(): string {
  // Found the way the local environment finds it (infra/local/lib/prerequisites.mjs).
  const dir = pgBinDir();
  if (!dir) throw new Error('pg_ctl not found (pg_config --bindir, /usr/lib/postgresql/*/bin)');
  return path.join(dir, 'pg_ctl');
}

/** Green's data directory, as `env.mjs status` reports it. */
function greenDataDir(root: string): string {
  const res = spawnSync(process.execPath, [path.join(root, 'infra/local/env.mjs'), 'status'], {
    cwd: root,
    encoding: 'utf8',
  });
  const m = /green\s+\S+\s+\S+\s+\(data ([^)]+)\)/.exec(`${res.stdout}\n${res.stderr}`);
  if (!m)
    throw new Error(`cannot find green's data directory in env.mjs status:\n${res.stdout}${res.stderr}`);
  return m[1];
}

/** pg_ctl stop -m immediate of green (a crash: no shutdown checkpoint), then `env.mjs up`. */
export async function restartGreen(root: string): Promise<void> {
  const dir = greenDataDir(root);
  const args = [pgCtl(), '-D', dir, 'stop', '-m', 'immediate', '-w'];
  const isRoot = process.getuid?.() === 0;
  const res = isRoot
    ? spawnSync('runuser', ['-u', 'postgres', '--', ...args], { cwd: '/', encoding: 'utf8' })
    : spawnSync(args[0], args.slice(1), { cwd: '/', encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`pg_ctl stop failed: ${res.stderr || res.stdout}`);
  await runEnv(root, 'up');
}
