import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pgBinDir } from '../infra/local/lib/prerequisites.mjs';

// A throwaway Postgres cluster on a free loopback port, for faults that would hurt everyone
// on the shared blue: max_slot_wal_keep_size invalidates *every* slot that lags (other
// engineers' idle slots lag by hundreds of MB), and a synchronous_standby_names that no
// standby answers holds every commit. Same binaries as infra/local/env.mjs; run as the
// postgres OS user when we are root (initdb and pg_ctl refuse root).

export interface ScratchPostgres {
  url: string;
  port: number;
  dataDir: string;
  /** Stops the server (fast shutdown, or immediate: a crash) and keeps its files, for a test that brings it back. */
  stop(mode?: 'fast' | 'immediate'): void;
  /** Starts a stopped server again (nothing when it runs). */
  start(): void;
  /** Stops the server (immediate) if it runs, and removes its files. */
  destroy(): void;
}

function binDir(): string {
  // Found the way the local environment finds it (infra/local/lib/prerequisites.mjs).
  const dir = pgBinDir();
  if (!dir)
    throw new Error('Postgres server binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin)');
  return dir;
}

function run(cmd: string, args: string[]): void {
  const asRoot = process.getuid?.() === 0;
  const res = asRoot
    ? spawnSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { cwd: '/', encoding: 'utf8' })
    : spawnSync(cmd, args, { cwd: '/', encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`${path.basename(cmd)} failed: ${res.stderr || res.stdout}`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export async function startScratchPostgres(settings: Record<string, string> = {}): Promise<ScratchPostgres> {
  const bin = binDir();
  const root = mkdtempSync(path.join(tmpdir(), 'teal-scratch-pg-'));
  chmodSync(root, 0o777);
  const dataDir = path.join(root, 'data');
  const port = await freePort();
  run(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-E', 'UTF8', '--auth=trust', '--no-sync']);
  const conf = {
    port: String(port),
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: "''",
    wal_level: 'logical',
    max_wal_senders: '5',
    max_replication_slots: '5',
    fsync: 'off',
    ...settings,
  };
  const lines = Object.entries(conf).map(([k, v]) => `${k} = ${v}`);
  appendFileSync(path.join(dataDir, 'postgresql.conf'), `\n${lines.join('\n')}\n`);
  writeFileSync(
    path.join(dataDir, 'pg_hba.conf'),
    'host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n',
  );
  const pgCtl = (...args: string[]) => run(path.join(bin, 'pg_ctl'), ['-D', dataDir, ...args]);
  const start = () => pgCtl('-l', path.join(root, 'log'), '-w', 'start');
  start();
  let running = true;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    stop(mode: 'fast' | 'immediate' = 'fast') {
      pgCtl('-m', mode, '-w', 'stop');
      running = false;
    },
    start() {
      if (running) return;
      start();
      running = true;
    },
    destroy() {
      try {
        if (running) pgCtl('stop', '-m', 'immediate', '-w');
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  };
}
