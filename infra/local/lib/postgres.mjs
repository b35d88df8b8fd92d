// Blue and green: two Postgres clusters of our own (initdb, pg_ctl), on loopback only,
// with trust auth, data under .teal/pg (or /var/tmp, see pgRoot) and logs in .teal/logs.
// Each side runs the major it is asked for (`up --blue 16 --green 18`; server binaries from
// infra/tools/postgres-versions.mjs, Debian's for its own major), else the one its data
// directory was made by, else Debian's (15). psql and pg_isready are Debian's whatever the
// server's major: the client tools of one major talk to every server teal supports.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ensurePostgres, MAJORS, postgresBinDir } from '../../tools/postgres-versions.mjs';
import {
  IS_ROOT,
  LOG_DIR,
  log,
  ROOT,
  run,
  runOk,
  STATE,
  secs,
  tail,
  tcpAnswers,
  waitFor,
} from './common.mjs';
import { pgBinDir } from './prerequisites.mjs';

const COMMON_PG_SETTINGS = {
  listen_addresses: "'127.0.0.1'",
  // TCP on loopback only: no socket files to clash with a system cluster, and no path-length limit.
  unix_socket_directories: "''",
  max_connections: 200,
  shared_buffers: "'256MB'",
  logging_collector: 'off',
  log_line_prefix: "'%m [%p] %q%u@%d '",
};

export const PG_CLUSTERS = [
  {
    name: 'blue',
    port: 5433,
    settings: {
      wal_level: 'logical',
      max_replication_slots: 20,
      max_wal_senders: 20,
      logical_decoding_work_mem: "'64MB'",
    },
  },
  {
    name: 'green',
    port: 5434,
    // Logical too: `teal cutover --with-rollback` makes the reverse pipeline's slot on green
    // (docs/rollback.md), and the demo's --rollback runs that path.
    settings: { wal_level: 'logical', max_replication_slots: 10, max_wal_senders: 10 },
  },
];

const DEADLINE_PG_MS = 60_000;

/** initdb and pg_ctl refuse to run as root: run them as the postgres OS user then. */
function asPostgres(cmd, args) {
  return IS_ROOT ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

/**
 * The postgres OS user must reach the data directory. .teal/pg is preferred; when a parent
 * of the checkout is not traversable by that user, a directory under /var/tmp keyed by the
 * checkout path is used instead (printed by `status`).
 */
let pgRootCache;
export function pgRoot() {
  if (pgRootCache) return pgRootCache;
  const preferred = path.join(STATE, 'pg');
  if (!IS_ROOT) {
    pgRootCache = preferred;
    return pgRootCache;
  }
  // .teal itself is made 0755 by prepareStateDirs; the checkout's own parents decide.
  const parentsOk = spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-x', ROOT]).status === 0;
  if (parentsOk) {
    pgRootCache = preferred;
  } else {
    const key = createHash('sha1').update(ROOT).digest('hex').slice(0, 10);
    pgRootCache = `/var/tmp/teal-pg-${key}`;
  }
  return pgRootCache;
}

export function pgDataDir(cluster) {
  return path.join(pgRoot(), cluster.name);
}

export function pgLogFile(cluster) {
  return path.join(LOG_DIR, `${cluster.name}.log`);
}

function chownToPostgres(p) {
  if (IS_ROOT) spawnSync('chown', ['postgres:postgres', p]);
}

/** The data root and the log files, owned by the postgres user (after .teal/logs exists). */
export function preparePgDirs(clusters = PG_CLUSTERS) {
  fs.mkdirSync(pgRoot(), { recursive: true });
  chownToPostgres(pgRoot());
  for (const cluster of clusters) {
    const file = pgLogFile(cluster);
    if (!fs.existsSync(file)) fs.writeFileSync(file, '');
    chownToPostgres(file);
  }
}

function pgConf(cluster) {
  const settings = { ...COMMON_PG_SETTINGS, port: cluster.port, ...cluster.settings };
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${v}`);
  return `# written by infra/local/env.mjs on every up; edits here are overwritten\n${lines.join('\n')}\n`;
}

const PG_HBA = `# written by infra/local/env.mjs: trust on loopback only
host    all             all             127.0.0.1/32            trust
host    replication     all             127.0.0.1/32            trust
`;

/** The major the cluster's data directory was initialised by (its PG_VERSION); undefined when none. */
export function pgDataMajor(cluster) {
  try {
    return Number(fs.readFileSync(path.join(pgDataDir(cluster), 'PG_VERSION'), 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** The major of the local environment's default binaries (Debian's, see prerequisites.mjs). */
export function defaultPgMajor() {
  const bin = pgBinDir();
  if (!bin) return undefined;
  const fromPath = /postgresql\/(\d+)\/bin$/.exec(bin);
  if (fromPath) return Number(fromPath[1]);
  const res = spawnSync(path.join(bin, 'pg_ctl'), ['--version'], { encoding: 'utf8' });
  const m = / (\d+)(?:\.\d+)?/.exec(res.stdout ?? '');
  return m ? Number(m[1]) : undefined;
}

/** `--blue 16`: a major teal supports, as a number, or a message that says which ones are. */
export function parsePgMajor(side, value) {
  const major = Number(value);
  if (!MAJORS.includes(major))
    throw new Error(
      `--${side} ${value ?? '(nothing)'}: give a PostgreSQL major, one of ${MAJORS.join(', ')}`,
    );
  return major;
}

/** The server binaries that run this cluster's data directory: those of the major that made it. */
function serverBinFor(cluster) {
  const major = pgDataMajor(cluster);
  return major === undefined ? pgBinDir() : (postgresBinDir(major) ?? pgBinDir());
}

async function pgRunning(cluster) {
  const bin = serverBinFor(cluster);
  if (!bin || !fs.existsSync(path.join(pgDataDir(cluster), 'PG_VERSION'))) return false;
  const [cmd, args] = asPostgres(path.join(bin, 'pg_ctl'), ['status', '-D', pgDataDir(cluster)]);
  const { code } = await run(cmd, args, { cwd: '/' });
  return code === 0;
}

async function pgReady(cluster, db = 'postgres') {
  const args = ['-q', '-h', '127.0.0.1', '-p', String(cluster.port), '-d', db];
  const { code } = await run(path.join(pgBinDir(), 'pg_isready'), args, { cwd: '/' });
  return code === 0;
}

/** Running and accepting connections to `app`: what `status` calls up. */
export async function pgIsUp(cluster) {
  return pgBinDir() !== undefined && (await pgRunning(cluster)) && (await pgReady(cluster, 'app'));
}

async function psql(cluster, sql, db = 'postgres') {
  const args = ['-X', '-q', '-tA', '-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres'];
  return (await runOk(path.join(pgBinDir(), 'psql'), [...args, '-d', db, '-c', sql], { cwd: '/' })).trim();
}

/** The running server's version (`16.14`), or undefined when it does not answer. */
export async function pgServerVersion(cluster) {
  try {
    return await psql(cluster, 'SHOW server_version');
  } catch {
    return undefined;
  }
}

/**
 * Creates the cluster on first use, rewrites its config, starts it and creates `app`.
 * `major`: the PostgreSQL major to run (installed when missing); a data directory another
 * major made is scratch data, so it is stopped and made again, saying so on an [env] line.
 */
export async function pgUp(cluster, major) {
  const started = Date.now();
  const dataDir = pgDataDir(cluster);
  const dataMajor = pgDataMajor(cluster);
  const wanted = major ?? dataMajor ?? defaultPgMajor();
  const bin = await ensurePostgres(wanted);
  if (dataMajor !== undefined && dataMajor !== wanted) {
    log(
      `${cluster.name}: ${dataDir} was made by PostgreSQL ${dataMajor}, ${wanted} was asked for: its data is scratch, so it is stopped, removed and made again by ${wanted}`,
    );
    if (await pgRunning(cluster)) await pgDown(cluster);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  if (await pgIsUp(cluster)) {
    return `${cluster.name}: already running PostgreSQL ${await pgServerVersion(cluster)} on 127.0.0.1:${cluster.port}`;
  }
  if (!(await pgRunning(cluster)) && (await tcpAnswers(cluster.port))) {
    throw new Error(
      `port ${cluster.port} is taken by a process that is not teal's ${cluster.name} (${dataDir}): stop it (another checkout's \`npm run env:down\`?) and retry`,
    );
  }
  let created = false;
  if (!fs.existsSync(path.join(dataDir, 'PG_VERSION'))) {
    fs.rmSync(dataDir, { recursive: true, force: true });
    const [cmd, args] = asPostgres(path.join(bin, 'initdb'), [
      '-D',
      dataDir,
      '-U',
      'postgres',
      '-E',
      'UTF8',
      '--locale=C.UTF-8',
      '--auth=trust',
      // Only skips initdb's final fsync of the fresh cluster; the server runs with fsync on.
      '--no-sync',
    ]);
    await runOk(cmd, args, { cwd: pgRoot() });
    fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), "\ninclude = 'teal.conf'\n");
    created = true;
  }
  fs.writeFileSync(path.join(dataDir, 'teal.conf'), pgConf(cluster));
  fs.writeFileSync(path.join(dataDir, 'pg_hba.conf'), PG_HBA);
  chownToPostgres(path.join(dataDir, 'teal.conf'));
  chownToPostgres(path.join(dataDir, 'pg_hba.conf'));
  if (!(await pgRunning(cluster))) {
    const [cmd, args] = asPostgres(path.join(bin, 'pg_ctl'), [
      'start',
      '-w',
      '-t',
      String(DEADLINE_PG_MS / 1000),
      '-D',
      dataDir,
      '-l',
      pgLogFile(cluster),
    ]);
    const { code, out } = await run(cmd, args, { cwd: pgRoot() });
    if (code !== 0)
      throw new Error(
        `${cluster.name}: pg_ctl start failed:\n${out.trim()}\n--- ${pgLogFile(cluster)}:\n${tail(pgLogFile(cluster))}`,
      );
  }
  await waitFor(() => pgReady(cluster), {
    deadlineMs: DEADLINE_PG_MS,
    everyMs: 100,
    timeoutMessage: `${cluster.name}: not accepting connections after ${DEADLINE_PG_MS} ms; see ${pgLogFile(cluster)}`,
  });
  if ((await psql(cluster, "select count(*) from pg_database where datname = 'app'")) === '0') {
    await psql(cluster, 'create database app');
  }
  return `${cluster.name}: PostgreSQL ${await pgServerVersion(cluster)} ${created ? 'created and ' : ''}started on 127.0.0.1:${cluster.port} in ${secs(started)} (data ${dataDir})`;
}

export async function pgDown(cluster) {
  if (!(await pgRunning(cluster))) return `${cluster.name}: not running`;
  const [cmd, args] = asPostgres(path.join(serverBinFor(cluster), 'pg_ctl'), [
    'stop',
    '-m',
    'fast',
    '-w',
    '-t',
    '60',
    '-D',
    pgDataDir(cluster),
  ]);
  await runOk(cmd, args, { cwd: '/' });
  return `${cluster.name}: stopped`;
}
