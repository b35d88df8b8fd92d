// The direct initial copy against the COPY pipe, in one run on the same data.
//   npx tsx services/cli/bench/direct-copy.ts [scale=20] [rounds=1]
// Makes a scratch database on blue and green (pgbench -i -s <scale>: 100k rows per scale unit),
// then per round: the pipe (psql \copy TO STDOUT | psql \copy FROM STDIN), teal's direct copy of
// pgbench_accounts as it is (bytes piped), and with a derive transform (rows parsed, derived,
// formatted). Green's table is emptied before each. rows/s = rows / seconds from the slot being
// made (Producer.start() returned) to the table's copy being done in green; the line below it
// counts from the start (slot creation waits for every transaction open on blue to end).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolveConfig } from '@teal/config';
import { greenCopyTarget } from '@teal/consumer/direct-copy';
import { KafkaClient } from '@teal/kafka';
import { readSnapshotProgress } from '@teal/postgres';
import { Producer } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import pg from 'pg';

const scale = Number(process.argv[2] ?? 20);
const rounds = Number(process.argv[3] ?? 1);
const blueBase = process.env.TEAL_BLUE_URL ?? 'postgres://postgres@127.0.0.1:5433/app';
const greenBase = process.env.TEAL_GREEN_URL ?? 'postgres://postgres@127.0.0.1:5434/app';
const brokers = (process.env.TEAL_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const db = `dcbench_${randomBytes(3).toString('hex')}`;
const inDb = (url: string) => {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
};
const [blueUrl, greenUrl] = [inDb(blueBase), inDb(greenBase)];
const rows = scale * 100_000;
const DDL =
  'CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler character(84))';

async function admin(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

function pipe(): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const out = spawn('psql', [blueUrl, '-Atc', '\\copy pgbench_accounts TO STDOUT'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const into = spawn('psql', [greenUrl, '-Atc', '\\copy pgbench_accounts FROM STDIN'], {
      stdio: [out.stdout, 'ignore', 'inherit'],
    });
    into.on('exit', (code) =>
      code === 0 ? resolve((performance.now() - t0) / 1000) : reject(new Error(`psql ${code}`)),
    );
  });
}

/** Seconds from the producer's start, and from the slot being made (the copy alone), to the copy done in green. */
async function direct(derive: boolean): Promise<{ total: number; copy: number }> {
  const name = `${db}_${derive ? 'd' : 'p'}_${randomBytes(2).toString('hex')}`;
  const config = resolveConfig(
    {
      tables: ['public.pgbench_accounts'],
      slot: name,
      publication: name,
      kafka: { topicPrefix: name, partitions: 4 },
      snapshot: { via: 'direct' },
      transforms: derive
        ? { 'public.pgbench_accounts': { derive: { bucket: (row) => String(Number(row.aid) % 10) } } }
        : {},
    },
    { env: { TEAL_BLUE_URL: blueUrl, TEAL_GREEN_URL: greenUrl, TEAL_KAFKA_BROKERS: brokers.join(',') } },
  );
  const green = new pg.Client({ connectionString: greenUrl });
  await green.connect();
  const t0 = performance.now();
  const producer = new Producer(config, {
    directCopy: (c) => greenCopyTarget(c, { sessions: c.snapshot.parallel }),
  });
  try {
    await producer.start();
    const t1 = performance.now();
    await waitFor(
      async () => (await readSnapshotProgress(green)).get('public.pgbench_accounts')?.state === 'done',
      { what: 'copy done', timeoutMs: 3_600_000, intervalMs: 100 },
    );
    const end = performance.now();
    return { total: (end - t0) / 1000, copy: (end - t1) / 1000 };
  } finally {
    await producer.stop();
    await admin(blueUrl, `SELECT pg_drop_replication_slot('${name}')`).catch(() => {});
    await admin(blueUrl, `DROP PUBLICATION IF EXISTS ${name}`);
    await green.query('TRUNCATE teal.snapshot_progress').catch(() => {});
    await green.end();
    const kafka = new KafkaClient({ brokers });
    const a = kafka.admin();
    await a.deleteTopics(await a.listTopics(`${name}.`)).catch(() => {});
    await kafka.close();
  }
}

async function main(): Promise<void> {
  await admin(blueBase, `CREATE DATABASE ${db}`);
  await admin(greenBase, `CREATE DATABASE ${db}`);
  try {
    execFileSync('pgbench', ['-i', '-q', '-s', String(scale), blueUrl], { stdio: 'inherit' });
    await admin(greenUrl, DDL);
    const line = (what: string, s: number) =>
      console.log(
        `${what.padEnd(28)} ${s.toFixed(2).padStart(8)} s  ${Math.round(rows / s)
          .toLocaleString('en-US')
          .padStart(10)} rows/s`,
      );
    for (let r = 1; r <= rounds; r++) {
      console.log(
        `round ${r}: ${rows.toLocaleString('en-US')} rows, load ${(await import('node:os'))
          .loadavg()
          .map((l) => l.toFixed(1))
          .join(' ')}`,
      );
      await admin(greenUrl, 'TRUNCATE pgbench_accounts');
      line('COPY pipe (psql | psql)', await pipe());
      await admin(greenUrl, 'TRUNCATE pgbench_accounts');
      const piped = await direct(false);
      line('teal direct (piped bytes)', piped.copy);
      line('  incl. slot creation', piped.total);
      await admin(greenUrl, 'DROP TABLE pgbench_accounts');
      await admin(greenUrl, DDL.replace('filler character(84)', 'filler character(84), bucket text'));
      const derived = await direct(true);
      line('teal direct (derive)', derived.copy);
      line('  incl. slot creation', derived.total);
      await admin(greenUrl, 'DROP TABLE pgbench_accounts');
      await admin(greenUrl, DDL);
    }
  } finally {
    await admin(blueBase, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin(greenBase, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  }
}

await main();
