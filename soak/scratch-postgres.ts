import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  copyFileSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
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
  /** With `unixSocket`: the directory of the server's socket (a `host` for pg), else undefined. */
  socketDir: string | undefined;
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

/** A port the OS gives free now on loopback (a server of the soak's own, an API port). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface ScratchOptions {
  /**
   * The server's certificate and key (PEM files): copied into the data directory, `ssl = on`;
   * with `caFile`, clients' certificates are checked against it (`ssl_ca_file`, for `cert` lines).
   */
  tls?: { certFile: string; keyFile: string; caFile?: string };
  /** pg_hba.conf lines instead of trust on loopback. */
  hba?: readonly string[];
  /** A unix socket in the cluster's own directory (for a `local` line), instead of none. */
  unixSocket?: boolean;
  /**
   * Server binaries (initdb, pg_ctl) to run instead of the local environment's, e.g.
   * `await ensurePostgres(17)` from infra/tools/postgres-versions.mjs.
   */
  binDir?: string;
  /** This port instead of a free one the OS picks (the version tests keep to their own range). */
  port?: number;
}

/** The postgres OS user's ids when we are root (the server must own its key file), else ours. */
function serverOwner(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) =>
    Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  return { uid: id('-u'), gid: id('-g') };
}

export async function startScratchPostgres(
  settings: Record<string, string> = {},
  options: ScratchOptions = {},
): Promise<ScratchPostgres> {
  const bin = options.binDir ?? binDir();
  const root = mkdtempSync(path.join(tmpdir(), 'teal-scratch-pg-'));
  chmodSync(root, 0o777);
  const dataDir = path.join(root, 'data');
  const port = options.port ?? (await freePort());
  run(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-E', 'UTF8', '--auth=trust', '--no-sync']);
  const tlsConf: Record<string, string> = {};
  if (options.tls) {
    // Postgres refuses a key file others can read, and reads it as its own OS user.
    const owner = serverOwner();
    const files: [string, string][] = [
      [options.tls.certFile, 'server.crt'],
      [options.tls.keyFile, 'server.key'],
    ];
    if (options.tls.caFile) files.push([options.tls.caFile, 'client-ca.crt']);
    for (const [from, name] of files) {
      const to = path.join(dataDir, name);
      copyFileSync(from, to);
      chmodSync(to, 0o600);
      if (owner) chownSync(to, owner.uid, owner.gid);
    }
    Object.assign(tlsConf, { ssl: 'on', ssl_cert_file: "'server.crt'", ssl_key_file: "'server.key'" });
    if (options.tls.caFile) tlsConf.ssl_ca_file = "'client-ca.crt'";
  }
  const conf = {
    port: String(port),
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: options.unixSocket ? `'${root}'` : "''",
    wal_level: 'logical',
    max_wal_senders: '5',
    max_replication_slots: '5',
    fsync: 'off',
    ...tlsConf,
    ...settings,
  };
  const lines = Object.entries(conf).map(([k, v]) => `${k} = ${v}`);
  appendFileSync(path.join(dataDir, 'postgresql.conf'), `\n${lines.join('\n')}\n`);
  writeFileSync(
    path.join(dataDir, 'pg_hba.conf'),
    options.hba
      ? `${options.hba.join('\n')}\n`
      : 'host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n',
  );
  const pgCtl = (...args: string[]) => run(path.join(bin, 'pg_ctl'), ['-D', dataDir, ...args]);
  const start = () => pgCtl('-l', path.join(root, 'log'), '-w', 'start');
  start();
  let running = true;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    socketDir: options.unixSocket ? root : undefined,
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
