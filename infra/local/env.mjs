#!/usr/bin/env node
// The local environment without Docker: blue Postgres on 127.0.0.1:5433, green on :5434
// and one Apache Kafka broker (KRaft, broker+controller) on :9092, all state under .teal/.
//
//   node infra/local/env.mjs up|down|status|reset [--blue 13..18] [--green 13..18]
//
// --blue/--green choose each side's PostgreSQL major (same ports; default: the major its data
// directory has, else Debian's 15); a side whose data another major made is made again.
//
// Plain Node ESM with builtins only: it runs before `npm ci` has anything to offer.
// Every command is idempotent; `down` stops only what `up` started (data dirs, pid files).
// This file is the commands; lib/ holds the parts: prerequisites.mjs (Postgres, Java, Maven),
// postgres.mjs (blue and green), kafka.mjs (the broker), lock.mjs, common.mjs (helpers).
import fs from 'node:fs';
import { fail, LOG_DIR, log, logError, RUN_DIR, STATE, secs } from './lib/common.mjs';
import {
  KAFKA_DATA,
  KAFKA_DIR,
  KAFKA_PORT,
  kafkaDown,
  kafkaPid,
  kafkaReady,
  kafkaSaslSslUp,
  kafkaSecurityLine,
  kafkaUp,
} from './lib/kafka.mjs';
import { withLock } from './lib/lock.mjs';
import {
  PG_CLUSTERS,
  parsePgMajor,
  pgDataDir,
  pgDataMajor,
  pgDown,
  pgIsUp,
  pgRoot,
  pgServerVersion,
  pgUp,
  preparePgDirs,
} from './lib/postgres.mjs';
import { ensurePrerequisites, pgBinDir } from './lib/prerequisites.mjs';

function prepareStateDirs() {
  for (const dir of [STATE, LOG_DIR, RUN_DIR, KAFKA_DIR]) fs.mkdirSync(dir, { recursive: true });
  // The postgres user needs to traverse .teal (which we created) to reach .teal/pg.
  fs.chmodSync(STATE, 0o755);
  fs.chmodSync(LOG_DIR, 0o755);
  preparePgDirs();
}

/** Runs the services' steps side by side and prints each one's line; false if any failed. */
async function settle(tasks) {
  const results = await Promise.allSettled(tasks);
  let failed = false;
  for (const r of results) {
    if (r.status === 'fulfilled') log(r.value);
    else {
      failed = true;
      logError(r.reason?.message ?? r.reason);
    }
  }
  return !failed;
}

async function up() {
  const started = Date.now();
  await ensurePrerequisites();
  prepareStateDirs();
  const ok = await settle([...PG_CLUSTERS.map((c) => pgUp(c, majors[c.name])), kafkaUp()]);
  if (!ok) throw new Error('up failed; what did start is left running (npm run env:down stops it)');
  log(
    `up in ${secs(started)}: blue postgres://postgres@127.0.0.1:5433/app, green postgres://postgres@127.0.0.1:5434/app, kafka 127.0.0.1:${KAFKA_PORT}`,
  );
  log(`kafka ${kafkaSecurityLine()}`);
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

/** Exit 0 when all three are up, 3 otherwise (test/global-setup.ts runs `up` then). */
async function status() {
  let allUp = true;
  const lines = [];
  for (const cluster of PG_CLUSTERS) {
    const upNow = await pgIsUp(cluster);
    allUp &&= upNow;
    const major = pgDataMajor(cluster);
    const version = upNow
      ? `PostgreSQL ${await pgServerVersion(cluster)}`
      : major
        ? `PostgreSQL ${major}`
        : 'no data';
    lines.push(
      `${cluster.name.padEnd(6)} ${upNow ? 'up  ' : 'down'} ${version} postgres://postgres@127.0.0.1:${cluster.port}/app (data ${pgDataDir(cluster)})`,
    );
  }
  const pid = kafkaPid();
  const kafkaUpNow = pid !== undefined && (await kafkaReady());
  allUp &&= kafkaUpNow;
  lines.push(
    `${'kafka'.padEnd(6)} ${kafkaUpNow ? 'up  ' : 'down'} 127.0.0.1:${KAFKA_PORT}${pid ? ` (pid ${pid})` : ''}`,
  );
  // Not part of "all up": a broker started before the listener existed has no :9093 yet.
  const saslUp = kafkaUpNow && (await kafkaSaslSslUp());
  lines.push(
    `${''.padEnd(6)} ${saslUp ? 'up  ' : 'down'} ${kafkaSecurityLine()}${kafkaUpNow && !saslUp ? ' (absent: npm run env:down && npm run env:up)' : ''}`,
  );
  for (const line of lines) log(line);
  process.exit(allUp ? 0 : 3);
}

async function reset() {
  // A side keeps its major through the wipe unless asked for another.
  for (const cluster of PG_CLUSTERS) majors[cluster.name] ??= pgDataMajor(cluster);
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
const usage = 'usage: node infra/local/env.mjs up|down|status|reset [--blue 13..18] [--green 13..18]\n';
const [command, ...options] = process.argv.slice(2);
/** Each side's asked-for major ({ blue: 16 }): for up and reset, which make clusters. */
const majors = {};
for (let i = 0; i < options.length; i += 2) {
  const side = /^--(blue|green)$/.exec(options[i])?.[1];
  if (!side || !['up', 'reset'].includes(command)) {
    process.stderr.write(`unknown argument ${options[i]}\n${usage}`);
    process.exit(2);
  }
  try {
    majors[side] = parsePgMajor(side, options[i + 1]);
  } catch (err) {
    fail(err.message);
  }
}
if (!commands[command]) {
  process.stderr.write(usage);
  process.exit(2);
}
try {
  await commands[command]();
} catch (err) {
  fail(err?.message ?? String(err));
}
