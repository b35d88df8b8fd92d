// One Apache Kafka broker in KRaft mode (broker and controller in one JVM): PLAINTEXT on
// 127.0.0.1:9092 for everything, SASL_SSL on 127.0.0.1:9093 for the Kafka security tests
// (kafka-security.mjs), the controller on :9094; its jars resolved by Maven from
// infra/kafka/pom.xml, its storage formatted once, the process detached with its pid in
// .teal/run/kafka.pid. kafkaBroker() makes another one on other ports and directories (a
// helper's own broker); the exports below it are the local environment's.
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
import { SECURITY_FILE, saslSslListener, scramUpsertBodies, scramUpsertErrors } from './kafka-security.mjs';

const KAFKA_LIB = path.join(STATE, 'kafka', 'lib');
const KAFKA_POM = path.join(ROOT, 'infra', 'kafka', 'pom.xml');
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

function kafkaRequest(port, apiKey, apiVersion, body, { flexible = false, timeoutMs = 2000 } = {}) {
  return new Promise((resolve, reject) => {
    const clientId = Buffer.from('teal-env');
    const header = Buffer.alloc(10);
    header.writeInt16BE(apiKey, 0);
    header.writeInt16BE(apiVersion, 2);
    header.writeInt32BE(1, 4);
    header.writeInt16BE(clientId.length, 8);
    // Request header v2 (flexible versions) ends with empty tagged fields.
    const payload = Buffer.concat([header, clientId, flexible ? Buffer.from([0]) : Buffer.alloc(0), body]);
    const size = Buffer.alloc(4);
    size.writeInt32BE(payload.length, 0);
    const socket = net.connect({ host: '127.0.0.1', port });
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
 * A Kafka cluster id: 16 random bytes as URL-safe base64 without padding (a Kafka Uuid). One in
 * 64 such strings starts with '-', which kafka-storage's argument parser reads as an option
 * ("argument --cluster-id/-t: expected one argument"): Kafka's own Uuid.randomUuid() draws again
 * for the same reason, and so does this.
 */
export function newKafkaClusterId() {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/**
 * One local broker. Defaults: the local environment's (.teal/kafka, ports 9092/9093/9094,
 * pid and logs in .teal/run and .teal/logs); a helper's own broker passes others, e.g.
 * kafkaBroker({ port: 19092, saslSslPort: 19093, controllerPort: 19094, dir: '/tmp/x/kafka' }).
 */
export function kafkaBroker({
  port = 9092,
  saslSslPort = 9093,
  controllerPort = 9094,
  dir = path.join(STATE, 'kafka'),
  runDir = RUN_DIR,
  logDir = LOG_DIR,
} = {}) {
  const data = path.join(dir, 'data');
  const securityDir = path.join(dir, 'security');
  const pidFile = path.join(runDir, 'kafka.pid');
  const logFile = path.join(logDir, 'kafka.log');
  const outFile = path.join(logDir, 'kafka.out');
  const propertiesFile = path.join(dir, 'server.properties');
  const saslSslAddress = `127.0.0.1:${saslSslPort}`;

  function clusterId() {
    const file = path.join(dir, 'cluster-id');
    const stored = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : '';
    // A stored id with a leading '-' never formatted the storage (kafka-storage refused it):
    // drawing a new one loses nothing.
    if (stored && !stored.startsWith('-')) return stored;
    const id = newKafkaClusterId();
    fs.writeFileSync(file, `${id}\n`);
    return id;
  }

  function serverProperties() {
    const sasl = saslSslListener(securityDir, saslSslAddress);
    // The controller moved from :9093 to :9094 when SASL_SSL took :9093; a data dir made
    // before keeps working (a static quorum's voter endpoints come from this file only).
    const text = `# written by infra/local/env.mjs on every up; edits here are overwritten
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${controllerPort}
listeners=PLAINTEXT://127.0.0.1:${port},SASL_SSL://${saslSslAddress},CONTROLLER://127.0.0.1:${controllerPort}
advertised.listeners=PLAINTEXT://127.0.0.1:${port},SASL_SSL://${saslSslAddress}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=${data}
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
# fewer than the default 50 partitions: the first consumer group on a fresh broker joins faster
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
min.insync.replicas=1
# SASL_SSL (infra/local/lib/kafka-security.mjs): test CA and users in ${securityDir}
${sasl.lines.join('\n')}
`;
    return { text, info: sasl.info };
  }

  function log4j() {
    const file = logFile.replaceAll('\\', '/');
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

  function java(mainClass, args, heap) {
    return [
      'java',
      [
        ...heap,
        '-XX:+UseG1GC',
        '-XX:MaxGCPauseMillis=20',
        '-XX:+ExitOnOutOfMemoryError',
        '-Djava.awt.headless=true',
        `-Dlog4j.configuration=file:${path.join(dir, 'log4j.properties')}`,
        `-Dkafka.logs.dir=${logDir}`,
        '-cp',
        `${KAFKA_LIB}/*`,
        mainClass,
        ...args,
      ],
    ];
  }

  /** The pid in the pid file, if that process is alive and is this broker (not a reused pid). */
  function pid() {
    const found = readPid(pidFile);
    if (!found || !pidAlive(found)) return undefined;
    try {
      const cmdline = fs.readFileSync(`/proc/${found}/cmdline`, 'utf8');
      if (!cmdline.includes(propertiesFile)) return undefined;
    } catch {}
    return found;
  }

  /**
   * True once the broker answers a Metadata request (v1, no topics) listing itself: it is
   * registered with the controller and unfenced, so topics can be created.
   * Metadata v1 response: brokers [node_id int32, host string, port int32, rack nullable string],
   * controller_id int32, topics [...].
   */
  async function ready() {
    try {
      const body = Buffer.alloc(4);
      body.writeInt32BE(0, 0);
      const res = await kafkaRequest(port, 3, 1, body);
      return res.readInt32BE(0) >= 1;
    } catch {
      return false;
    }
  }

  /** Upserts the SCRAM user (both mechanisms) through the PLAINTEXT listener; idempotent. */
  async function ensureScramUser(info) {
    const errors = [];
    for (const body of scramUpsertBodies(info.scram.username, info.scram.password)) {
      errors.push(
        ...scramUpsertErrors(await kafkaRequest(port, 51, 0, body, { flexible: true, timeoutMs: 10_000 })),
      );
    }
    if (errors.length > 0) throw new Error(`kafka: cannot create the SCRAM test user: ${errors.join('; ')}`);
  }

  /** Whether the running broker was started from the server.properties up would write now. */
  function runningConfigCurrent() {
    try {
      return fs.readFileSync(propertiesFile, 'utf8') === serverProperties().text;
    } catch {
      return false;
    }
  }

  /** Resolves the jars and formats the storage when needed, starts the broker, waits until it is ready. */
  async function up() {
    const started = Date.now();
    const running = pid();
    fs.mkdirSync(dir, { recursive: true });
    for (const d of [runDir, logDir]) fs.mkdirSync(d, { recursive: true });
    if (running && (await ready())) {
      const current = runningConfigCurrent();
      // Idempotent, and cheap: an environment started before the users existed gets them.
      if (current) await ensureScramUser(serverProperties().info);
      const stale = current
        ? ''
        : '; it runs an older config without the SASL_SSL listener: npm run env:down && npm run env:up';
      return `kafka: already running on 127.0.0.1:${port} (pid ${running})${stale}`;
    }
    for (const p of [port, saslSslPort, controllerPort]) {
      if (!running && (await tcpAnswers(p))) {
        throw new Error(
          `port ${p} is taken by a process that is not teal's Kafka (${pidFile}): stop it (another checkout's \`npm run env:down\`?) and retry`,
        );
      }
    }
    const jarsFetched = await ensureKafkaJars();
    const { text, info } = serverProperties();
    fs.writeFileSync(propertiesFile, text, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'log4j.properties'), log4j());
    let formatted = false;
    if (!fs.existsSync(path.join(data, 'meta.properties'))) {
      fs.mkdirSync(data, { recursive: true });
      const [cmd, args] = java(
        'kafka.tools.StorageTool',
        ['format', '--ignore-formatted', '-t', clusterId(), '-c', propertiesFile],
        ['-Xmx256m', '-XX:TieredStopAtLevel=1'],
      );
      await runOk(cmd, args, { cwd: dir });
      formatted = true;
    }
    let childPid = running;
    if (!childPid) {
      const out = fs.openSync(outFile, 'a');
      const [cmd, args] = java('kafka.Kafka', [propertiesFile], ['-Xms256m', '-Xmx768m']);
      // Detached with its output in a file, so no caller (npm, vitest) waits on its pipes.
      const child = spawn(cmd, args, { cwd: dir, detached: true, stdio: ['ignore', out, out] });
      fs.closeSync(out);
      child.unref();
      childPid = child.pid;
      fs.writeFileSync(pidFile, `${childPid}\n`);
    }
    await waitFor(ready, {
      deadlineMs: DEADLINE_KAFKA_MS,
      everyMs: 200,
      check: () => {
        if (pidAlive(childPid)) return;
        fs.rmSync(pidFile, { force: true });
        throw new Error(
          `kafka: the broker exited while starting; ${logFile}:\n${tail(logFile)}\n${tail(outFile, 10)}`,
        );
      },
      timeoutMessage: `kafka: not ready after ${DEADLINE_KAFKA_MS} ms; see ${logFile}`,
    });
    await ensureScramUser(info);
    const what = [jarsFetched && 'jars resolved', formatted && 'formatted', 'started']
      .filter(Boolean)
      .join(', ');
    return `kafka: ${what} on 127.0.0.1:${port} (pid ${childPid}) in ${secs(started)}`;
  }

  /** SIGTERM, then SIGKILL when the broker has not exited after DEADLINE_STOP_MS. */
  async function down() {
    const running = pid();
    if (!running) {
      fs.rmSync(pidFile, { force: true });
      return 'kafka: not running';
    }
    process.kill(running, 'SIGTERM');
    const deadline = Date.now() + DEADLINE_STOP_MS;
    while (pidAlive(running) && Date.now() < deadline) await delay(100);
    let how = 'stopped';
    if (pidAlive(running)) {
      process.kill(running, 'SIGKILL');
      while (pidAlive(running)) await delay(50);
      how = `killed (no exit ${DEADLINE_STOP_MS} ms after SIGTERM)`;
    }
    fs.rmSync(pidFile, { force: true });
    return `kafka: ${how}`;
  }

  /** Whether the running broker has the SASL_SSL listener (one started before it existed has its controller on that port). */
  async function saslSslUp() {
    let props = '';
    try {
      props = fs.readFileSync(propertiesFile, 'utf8');
    } catch {}
    return props.includes(`SASL_SSL://${saslSslAddress}`) && (await tcpAnswers(saslSslPort));
  }

  /** The line env:up and env:status print about the SASL_SSL listener. */
  function securityLine() {
    return `SASL_SSL ${saslSslAddress} (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER unsecured test tokens), CA ${path.join(securityDir, 'ca.crt')}, test users in ${path.join(securityDir, SECURITY_FILE)}`;
  }

  return { port, saslSslPort, dir, data, securityDir, up, down, pid, ready, saslSslUp, securityLine };
}

const local = kafkaBroker();
export const KAFKA_PORT = local.port;
export const KAFKA_DIR = local.dir;
export const KAFKA_DATA = local.data;
/** Where the local broker's SASL_SSL address, test CA and users are (kafka-security.mjs). */
export const KAFKA_SECURITY_FILE = path.join(local.securityDir, SECURITY_FILE);
export const kafkaPid = local.pid;
export const kafkaReady = local.ready;
export const kafkaUp = local.up;
export const kafkaDown = local.down;
export const kafkaSecurityLine = local.securityLine;
export const kafkaSaslSslUp = local.saslSslUp;
