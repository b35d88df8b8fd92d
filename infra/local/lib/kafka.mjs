// One Apache Kafka broker in KRaft mode (broker and controller in one JVM) on 127.0.0.1:9092:
// its jars resolved by Maven from infra/kafka/pom.xml, its storage formatted once, the
// process detached with its pid in .teal/run/kafka.pid.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  delay,
  LOG_DIR,
  log,
  pidAlive,
  ROOT,
  RUN_DIR,
  readPid,
  runOk,
  STATE,
  secs,
  tail,
  tcpAnswers,
  waitFor,
} from './common.mjs';

export const KAFKA_PORT = 9092;
const KAFKA_CONTROLLER_PORT = 9093;
export const KAFKA_DIR = path.join(STATE, 'kafka');
const KAFKA_LIB = path.join(KAFKA_DIR, 'lib');
export const KAFKA_DATA = path.join(KAFKA_DIR, 'data');
const KAFKA_POM = path.join(ROOT, 'infra', 'kafka', 'pom.xml');
const KAFKA_PID = path.join(RUN_DIR, 'kafka.pid');
const KAFKA_LOG = path.join(LOG_DIR, 'kafka.log');
const DEADLINE_KAFKA_MS = 120_000;
const DEADLINE_STOP_MS = 30_000;

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
  const file = KAFKA_LOG.replaceAll('\\', '/');
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
export function kafkaPid() {
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
export async function kafkaReady() {
  try {
    const body = Buffer.alloc(4);
    body.writeInt32BE(0, 0);
    const res = await kafkaRequest(3, 1, body);
    return res.readInt32BE(0) >= 1;
  } catch {
    return false;
  }
}

/** Resolves the jars and formats the storage when needed, starts the broker, waits until it is ready. */
export async function kafkaUp() {
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
  await waitFor(kafkaReady, {
    deadlineMs: DEADLINE_KAFKA_MS,
    everyMs: 200,
    check: () => {
      if (pidAlive(childPid)) return;
      fs.rmSync(KAFKA_PID, { force: true });
      throw new Error(
        `kafka: the broker exited while starting; ${KAFKA_LOG}:\n${tail(KAFKA_LOG)}\n${tail(path.join(LOG_DIR, 'kafka.out'), 10)}`,
      );
    },
    timeoutMessage: `kafka: not ready after ${DEADLINE_KAFKA_MS} ms; see ${KAFKA_LOG}`,
  });
  const what = [jarsFetched && 'jars resolved', formatted && 'formatted', 'started']
    .filter(Boolean)
    .join(', ');
  return `kafka: ${what} on 127.0.0.1:${KAFKA_PORT} (pid ${childPid}) in ${secs(started)}`;
}

/** SIGTERM, then SIGKILL when the broker has not exited after DEADLINE_STOP_MS. */
export async function kafkaDown() {
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
