#!/usr/bin/env node
// The local environment without Docker: blue Postgres on 127.0.0.1:5433, green on :5434
// and one Apache Kafka broker (KRaft, broker+controller) on :9092, all state under .teal/.
//
//   node infra/local/env.mjs up|down|status|reset
//
// Plain Node ESM with builtins only: it runs before `npm ci` has anything to offer.
// Every command is idempotent; `down` stops only what `up` started (data dirs, pid files).
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const STATE = path.join(ROOT, '.teal');
const LOG_DIR = path.join(STATE, 'logs');
const RUN_DIR = path.join(STATE, 'run');
const KAFKA_DIR = path.join(STATE, 'kafka');
const KAFKA_LIB = path.join(KAFKA_DIR, 'lib');
const KAFKA_DATA = path.join(KAFKA_DIR, 'data');
const KAFKA_POM = path.join(ROOT, 'infra', 'kafka', 'pom.xml');
const KAFKA_PID = path.join(RUN_DIR, 'kafka.pid');
const KAFKA_PORT = 9092;
const KAFKA_CONTROLLER_PORT = 9093;
const IS_ROOT = process.getuid?.() === 0;

const COMMON_PG_SETTINGS = {
  listen_addresses: "'127.0.0.1'",
  // TCP on loopback only: no socket files to clash with a system cluster, and no path-length limit.
  unix_socket_directories: "''",
  max_connections: 200,
  shared_buffers: "'256MB'",
  logging_collector: 'off',
  log_line_prefix: "'%m [%p] %q%u@%d '",
};

const PG_CLUSTERS = [
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
  { name: 'green', port: 5434, settings: {} },
];

const DEADLINE_PG_MS = 60_000;
const DEADLINE_KAFKA_MS = 120_000;
const DEADLINE_STOP_MS = 30_000;

// ---------------------------------------------------------------------------------------
// small helpers

function log(msg) {
  process.stdout.write(`[env] ${msg}\n`);
}

function fail(msg) {
  process.stderr.write(`[env] error: ${msg}\n`);
  process.exit(1);
}

function secs(startMs) {
  return `${((Date.now() - startMs) / 1000).toFixed(1)} s`;
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

function which(cmd) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const full = path.join(dir, cmd);
    try {
      fs.accessSync(full, fs.constants.X_OK);
      return full;
    } catch {}
  }
  return undefined;
}

/** Runs a command to completion, resolving with its exit code and output (never rejects on exit code). */
function run(cmd, args, { cwd = ROOT, env = process.env } = {}) {
  return new Promise((resolve, reject) => {
    // No stdin: writing to a child that already exited would be an EPIPE.
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, out }));
  });
}

async function runOk(cmd, args, opts) {
  const { code, out } = await run(cmd, args, opts);
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${out.trim()}`);
  return out;
}

/** initdb and pg_ctl refuse to run as root: run them as the postgres OS user then. */
function asPostgres(cmd, args) {
  return IS_ROOT ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

function readPid(file) {
  try {
    const pid = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function tcpAnswers(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function tail(file, lines = 30) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------------------------------
// prerequisites

function pgBinDir() {
  const candidates = [];
  const fromConfig = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  if (fromConfig.status === 0) candidates.push(fromConfig.stdout.trim());
  try {
    const versions = fs
      .readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  } catch {}
  // pg_config from libpq-dev may point at /usr/bin, which has no initdb.
  return candidates.find(
    (dir) => fs.existsSync(path.join(dir, 'initdb')) && fs.existsSync(path.join(dir, 'pg_ctl')),
  );
}

function javaMajor() {
  const res = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (res.status !== 0) return undefined;
  const m = /version "(\d+)(?:\.(\d+))?/.exec(res.stderr + res.stdout);
  if (!m) return undefined;
  return m[1] === '1' ? Number(m[2]) : Number(m[1]);
}

function missingPrerequisites() {
  const missing = [];
  if (!pgBinDir()) missing.push({ what: 'PostgreSQL server binaries (initdb, pg_ctl)', apt: 'postgresql' });
  const java = javaMajor();
  if (java === undefined || java < 11) missing.push({ what: 'Java 17 (java)', apt: 'default-jdk-headless' });
  if (!which('mvn')) missing.push({ what: 'Maven (mvn)', apt: 'maven' });
  if (IS_ROOT && !which('runuser')) missing.push({ what: 'runuser', apt: 'util-linux' });
  return missing;
}

async function ensurePrerequisites() {
  const missing = missingPrerequisites();
  if (missing.length === 0) return;
  const packages = missing.map((m) => m.apt);
  if (!IS_ROOT || !which('apt-get')) {
    fail(
      `missing ${missing.map((m) => m.what).join(', ')}; install with \`apt-get install ${packages.join(' ')}\` (Debian/Ubuntu, as root), or use docker-compose.yml`,
    );
  }
  const started = Date.now();
  log(`installing ${packages.join(' ')} with apt-get (missing: ${missing.map((m) => m.what).join(', ')})`);
  if (packages.includes('postgresql')) preventDebianMainCluster();
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await runOk('apt-get', ['update', '-q'], { env });
  await runOk(
    'apt-get',
    ['install', '-y', '-q', '--no-install-recommends', '-o', 'Dpkg::Options::=--force-confold', ...packages],
    { env },
  );
  const still = missingPrerequisites();
  if (still.length > 0) fail(`still missing after apt-get: ${still.map((m) => m.what).join(', ')}`);
  log(`prerequisites installed in ${secs(started)}`);
}

// Debian's postgresql package creates and starts a "main" cluster on the first free port
// from 5432; if 5432 were taken it would land on ours. teal never uses it, so ask for none.
function preventDebianMainCluster() {
  const conf = '/etc/postgresql-common/createcluster.conf';
  if (fs.existsSync(conf)) return;
  fs.mkdirSync(path.dirname(conf), { recursive: true });
  fs.writeFileSync(
    conf,
    '# written by teal infra/local/env.mjs: no default cluster\ncreate_main_cluster = false\n',
  );
}

// ---------------------------------------------------------------------------------------
// Postgres

/**
 * The postgres OS user must reach the data directory. .teal/pg is preferred; when a parent
 * of the checkout is not traversable by that user, a directory under /var/tmp keyed by the
 * checkout path is used instead (printed by `status`).
 */
let pgRootCache;
function pgRoot() {
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

function pgDataDir(cluster) {
  return path.join(pgRoot(), cluster.name);
}

function pgLogFile(cluster) {
  return path.join(LOG_DIR, `${cluster.name}.log`);
}

function chownToPostgres(p) {
  if (IS_ROOT) spawnSync('chown', ['postgres:postgres', p]);
}

function prepareStateDirs() {
  for (const dir of [STATE, LOG_DIR, RUN_DIR, KAFKA_DIR]) fs.mkdirSync(dir, { recursive: true });
  // The postgres user needs to traverse .teal (which we created) to reach .teal/pg.
  fs.chmodSync(STATE, 0o755);
  fs.chmodSync(LOG_DIR, 0o755);
  fs.mkdirSync(pgRoot(), { recursive: true });
  chownToPostgres(pgRoot());
  for (const cluster of PG_CLUSTERS) {
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

async function pgRunning(cluster) {
  const bin = pgBinDir();
  if (!bin || !fs.existsSync(path.join(pgDataDir(cluster), 'PG_VERSION'))) return false;
  const [cmd, args] = asPostgres(path.join(bin, 'pg_ctl'), ['status', '-D', pgDataDir(cluster)]);
  const { code } = await run(cmd, args, { cwd: '/' });
  return code === 0;
}

async function pgReady(cluster, db = 'postgres') {
  const bin = pgBinDir();
  const { code } = await run(
    path.join(bin, 'pg_isready'),
    ['-q', '-h', '127.0.0.1', '-p', String(cluster.port), '-d', db],
    {
      cwd: '/',
    },
  );
  return code === 0;
}

async function psql(cluster, sql, db = 'postgres') {
  const bin = pgBinDir();
  return (
    await runOk(
      path.join(bin, 'psql'),
      [
        '-X',
        '-q',
        '-tA',
        '-h',
        '127.0.0.1',
        '-p',
        String(cluster.port),
        '-U',
        'postgres',
        '-d',
        db,
        '-c',
        sql,
      ],
      {
        cwd: '/',
      },
    )
  ).trim();
}

async function pgUp(cluster) {
  const started = Date.now();
  const bin = pgBinDir();
  const dataDir = pgDataDir(cluster);
  if ((await pgRunning(cluster)) && (await pgReady(cluster, 'app'))) {
    return `${cluster.name}: already running on 127.0.0.1:${cluster.port}`;
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
  const deadline = Date.now() + DEADLINE_PG_MS;
  while (!(await pgReady(cluster))) {
    if (Date.now() > deadline)
      throw new Error(
        `${cluster.name}: not accepting connections after ${DEADLINE_PG_MS} ms; see ${pgLogFile(cluster)}`,
      );
    await delay(100);
  }
  if ((await psql(cluster, "select count(*) from pg_database where datname = 'app'")) === '0') {
    await psql(cluster, 'create database app');
  }
  return `${cluster.name}: ${created ? 'created and ' : ''}started on 127.0.0.1:${cluster.port} in ${secs(started)} (data ${dataDir})`;
}

async function pgDown(cluster) {
  if (!(await pgRunning(cluster))) return `${cluster.name}: not running`;
  const [cmd, args] = asPostgres(path.join(pgBinDir(), 'pg_ctl'), [
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

// ---------------------------------------------------------------------------------------
// Kafka

function pomHash() {
  return createHash('sha256').update(fs.readFileSync(KAFKA_POM)).digest('hex');
}

/** Resolves the broker's jars with Maven once; they survive `reset`. */
async function ensureKafkaJars() {
  const stamp = path.join(KAFKA_LIB, '.pom.sha256');
  const want = pomHash();
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8').trim() === want) return false;
  const started = Date.now();
  log('resolving Kafka jars with Maven (infra/kafka/pom.xml), once');
  const tmp = `${KAFKA_LIB}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  await runOk(
    'mvn',
    [
      '-q',
      '-B',
      '-f',
      KAFKA_POM,
      'dependency:copy-dependencies',
      `-DoutputDirectory=${tmp}`,
      '-DincludeScope=runtime',
    ],
    { cwd: path.dirname(KAFKA_POM) },
  );
  fs.writeFileSync(path.join(tmp, '.pom.sha256'), `${want}\n`);
  fs.rmSync(KAFKA_LIB, { recursive: true, force: true });
  fs.renameSync(tmp, KAFKA_LIB);
  // Maven's build output is not needed; keep the source tree clean.
  fs.rmSync(path.join(path.dirname(KAFKA_POM), 'target'), { recursive: true, force: true });
  log(`Kafka jars ready in ${secs(started)}`);
  return true;
}

function kafkaClusterId() {
  const file = path.join(KAFKA_DIR, 'cluster-id');
  if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
  // A Kafka Uuid is 16 random bytes, printed as URL-safe base64 without padding.
  const id = randomBytes(16).toString('base64url');
  fs.writeFileSync(file, `${id}\n`);
  return id;
}

function kafkaServerProperties() {
  return `# written by infra/local/env.mjs on every up; edits here are overwritten
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${KAFKA_CONTROLLER_PORT}
listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=${KAFKA_DATA}
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
# fewer than the default 50 partitions: the first consumer group on a fresh broker joins faster
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
min.insync.replicas=1
`;
}

function kafkaLog4j() {
  const file = path.join(LOG_DIR, 'kafka.log').replaceAll('\\', '/');
  return `# written by infra/local/env.mjs
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${file}
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
`;
}

function kafkaJava(mainClass, args, heap) {
  return [
    'java',
    [
      ...heap,
      '-XX:+UseG1GC',
      '-XX:MaxGCPauseMillis=20',
      '-XX:+ExitOnOutOfMemoryError',
      '-Djava.awt.headless=true',
      `-Dlog4j.configuration=file:${path.join(KAFKA_DIR, 'log4j.properties')}`,
      `-Dkafka.logs.dir=${LOG_DIR}`,
      '-cp',
      `${KAFKA_LIB}/*`,
      mainClass,
      ...args,
    ],
  ];
}

/** The pid in .teal/run/kafka.pid, if that process is alive and is our broker (not a reused pid). */
function kafkaPid() {
  const pid = readPid(KAFKA_PID);
  if (!pid || !pidAlive(pid)) return undefined;
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes(path.join(KAFKA_DIR, 'server.properties'))) return undefined;
  } catch {}
  return pid;
}

function kafkaRequest(apiKey, apiVersion, body, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const clientId = Buffer.from('teal-env');
    const header = Buffer.alloc(10);
    header.writeInt16BE(apiKey, 0);
    header.writeInt16BE(apiVersion, 2);
    header.writeInt32BE(1, 4);
    header.writeInt16BE(clientId.length, 8);
    const payload = Buffer.concat([header, clientId, body]);
    const size = Buffer.alloc(4);
    size.writeInt32BE(payload.length, 0);
    const socket = net.connect({ host: '127.0.0.1', port: KAFKA_PORT });
    let received = Buffer.alloc(0);
    const finish = (err, value) => {
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    socket.setTimeout(timeoutMs, () => finish(new Error('timeout')));
    socket.once('error', (err) => finish(err));
    socket.once('connect', () => socket.write(Buffer.concat([size, payload])));
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 4 && received.length >= 4 + received.readInt32BE(0)) {
        finish(undefined, received.subarray(8, 4 + received.readInt32BE(0)));
      }
    });
    socket.once('end', () => finish(new Error('connection closed')));
  });
}

/**
 * True once the broker answers a Metadata request (v1, no topics) listing itself: it is
 * registered with the controller and unfenced, so topics can be created.
 * Metadata v1 response: brokers [node_id int32, host string, port int32, rack nullable string],
 * controller_id int32, topics [...].
 */
async function kafkaReady() {
  try {
    const body = Buffer.alloc(4);
    body.writeInt32BE(0, 0);
    const res = await kafkaRequest(3, 1, body);
    return res.readInt32BE(0) >= 1;
  } catch {
    return false;
  }
}

async function kafkaUp() {
  const started = Date.now();
  const pid = kafkaPid();
  if (pid && (await kafkaReady())) return `kafka: already running on 127.0.0.1:${KAFKA_PORT} (pid ${pid})`;
  if (!pid && (await tcpAnswers(KAFKA_PORT))) {
    throw new Error(
      `port ${KAFKA_PORT} is taken by a process that is not teal's Kafka (${KAFKA_PID}): stop it (another checkout's \`npm run env:down\`?) and retry`,
    );
  }
  const jarsFetched = await ensureKafkaJars();
  fs.writeFileSync(path.join(KAFKA_DIR, 'server.properties'), kafkaServerProperties());
  fs.writeFileSync(path.join(KAFKA_DIR, 'log4j.properties'), kafkaLog4j());
  let formatted = false;
  if (!fs.existsSync(path.join(KAFKA_DATA, 'meta.properties'))) {
    fs.mkdirSync(KAFKA_DATA, { recursive: true });
    const [cmd, args] = kafkaJava(
      'kafka.tools.StorageTool',
      [
        'format',
        '--ignore-formatted',
        '-t',
        kafkaClusterId(),
        '-c',
        path.join(KAFKA_DIR, 'server.properties'),
      ],
      ['-Xmx256m', '-XX:TieredStopAtLevel=1'],
    );
    await runOk(cmd, args, { cwd: KAFKA_DIR });
    formatted = true;
  }
  let childPid = pid;
  if (!childPid) {
    const outFile = path.join(LOG_DIR, 'kafka.out');
    const out = fs.openSync(outFile, 'a');
    const [cmd, args] = kafkaJava(
      'kafka.Kafka',
      [path.join(KAFKA_DIR, 'server.properties')],
      ['-Xms256m', '-Xmx768m'],
    );
    // Detached with its output in a file, so no caller (npm, vitest) waits on its pipes.
    const child = spawn(cmd, args, { cwd: KAFKA_DIR, detached: true, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    child.unref();
    childPid = child.pid;
    fs.writeFileSync(KAFKA_PID, `${childPid}\n`);
  }
  const deadline = Date.now() + DEADLINE_KAFKA_MS;
  while (!(await kafkaReady())) {
    if (!pidAlive(childPid)) {
      fs.rmSync(KAFKA_PID, { force: true });
      throw new Error(
        `kafka: the broker exited while starting; ${path.join(LOG_DIR, 'kafka.log')}:\n${tail(path.join(LOG_DIR, 'kafka.log'))}\n${tail(path.join(LOG_DIR, 'kafka.out'), 10)}`,
      );
    }
    if (Date.now() > deadline)
      throw new Error(
        `kafka: not ready after ${DEADLINE_KAFKA_MS} ms; see ${path.join(LOG_DIR, 'kafka.log')}`,
      );
    await delay(200);
  }
  const what = [jarsFetched && 'jars resolved', formatted && 'formatted', 'started']
    .filter(Boolean)
    .join(', ');
  return `kafka: ${what} on 127.0.0.1:${KAFKA_PORT} (pid ${childPid}) in ${secs(started)}`;
}

async function kafkaDown() {
  const pid = kafkaPid();
  if (!pid) {
    fs.rmSync(KAFKA_PID, { force: true });
    return 'kafka: not running';
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + DEADLINE_STOP_MS;
  while (pidAlive(pid) && Date.now() < deadline) await delay(100);
  let how = 'stopped';
  if (pidAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (pidAlive(pid)) await delay(50);
    how = `killed (no exit ${DEADLINE_STOP_MS} ms after SIGTERM)`;
  }
  fs.rmSync(KAFKA_PID, { force: true });
  return `kafka: ${how}`;
}

// ---------------------------------------------------------------------------------------
// one command at a time

const LOCK_FILE = path.join(RUN_DIR, 'env.lock');

/**
 * Several test runs may call `up` at once (globalSetup does when `status` is unhappy); two
 * brokers racing would leave the pid file naming the one that lost. So up/down/reset take
 * an exclusive lock file holding the owner's pid; a lock whose owner is gone is taken over.
 */
async function withLock(fn) {
  fs.mkdirSync(RUN_DIR, { recursive: true });
  const deadline = Date.now() + 3 * 60_000;
  let told = false;
  for (;;) {
    try {
      fs.writeFileSync(LOCK_FILE, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      const owner = readPid(LOCK_FILE);
      if (owner === undefined || !pidAlive(owner)) {
        fs.rmSync(LOCK_FILE, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`another env command (pid ${owner}) holds ${LOCK_FILE}`);
      if (!told) log(`waiting for another env command (pid ${owner}) to finish`);
      told = true;
      await delay(200);
    }
  }
  try {
    return await fn();
  } finally {
    if (readPid(LOCK_FILE) === process.pid) fs.rmSync(LOCK_FILE, { force: true });
  }
}

// ---------------------------------------------------------------------------------------
// commands

async function settle(tasks) {
  const results = await Promise.allSettled(tasks);
  let failed = false;
  for (const r of results) {
    if (r.status === 'fulfilled') log(r.value);
    else {
      failed = true;
      process.stderr.write(`[env] error: ${r.reason?.message ?? r.reason}\n`);
    }
  }
  return !failed;
}

async function up() {
  const started = Date.now();
  await ensurePrerequisites();
  prepareStateDirs();
  const ok = await settle([...PG_CLUSTERS.map(pgUp), kafkaUp()]);
  if (!ok) throw new Error('up failed; what did start is left running (npm run env:down stops it)');
  log(
    `up in ${secs(started)}: blue postgres://postgres@127.0.0.1:5433/app, green postgres://postgres@127.0.0.1:5434/app, kafka 127.0.0.1:${KAFKA_PORT}`,
  );
}

async function down() {
  const started = Date.now();
  if (!pgBinDir()) {
    log('no Postgres binaries: nothing of ours can be running');
    return;
  }
  const ok = await settle([...PG_CLUSTERS.map(pgDown), kafkaDown()]);
  log(`down in ${secs(started)}`);
  if (!ok) throw new Error('down failed for the services above');
}

async function status() {
  let allUp = true;
  const lines = [];
  for (const cluster of PG_CLUSTERS) {
    const upNow = pgBinDir() !== undefined && (await pgRunning(cluster)) && (await pgReady(cluster, 'app'));
    allUp &&= upNow;
    lines.push(
      `${cluster.name.padEnd(6)} ${upNow ? 'up  ' : 'down'} postgres://postgres@127.0.0.1:${cluster.port}/app (data ${pgDataDir(cluster)})`,
    );
  }
  const pid = kafkaPid();
  const kafkaUpNow = pid !== undefined && (await kafkaReady());
  allUp &&= kafkaUpNow;
  lines.push(
    `${'kafka'.padEnd(6)} ${kafkaUpNow ? 'up  ' : 'down'} 127.0.0.1:${KAFKA_PORT}${pid ? ` (pid ${pid})` : ''}`,
  );
  for (const line of lines) log(line);
  process.exit(allUp ? 0 : 3);
}

async function reset() {
  await down();
  // Data only: the Kafka jars in .teal/kafka/lib (and Maven's cache) stay.
  fs.rmSync(pgRoot(), { recursive: true, force: true });
  fs.rmSync(KAFKA_DATA, { recursive: true, force: true });
  fs.rmSync(LOG_DIR, { recursive: true, force: true });
  log('wiped blue, green, Kafka data and logs');
  await up();
}

const commands = {
  up: () => withLock(up),
  down: () => withLock(down),
  status,
  reset: () => withLock(reset),
};
const command = process.argv[2];
if (!commands[command]) {
  process.stderr.write('usage: node infra/local/env.mjs up|down|status|reset\n');
  process.exit(2);
}
try {
  await commands[command]();
} catch (err) {
  fail(err?.message ?? String(err));
}
