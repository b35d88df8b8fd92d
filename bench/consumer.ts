// Consumer benchmark: apply N mixed changes (inserts, updates, deletes) from Kafka into green,
// and, as the baseline, the same changes through native logical replication (publication on
// blue -> subscription on green). Prints rows/s of both, their ratio and the consumer's peak RSS.
//
//   npm run bench:consumer            (BENCH_ROWS=1000000 by default)
//   BENCH_ROWS=100000 npx tsx bench/consumer.ts
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import pg from 'pg';
import {
  column,
  type EventInput,
  TestStream,
  tableSchema,
} from '../services/consumer/src/testing/harness.ts';

const TOTAL = Number(process.env.BENCH_ROWS ?? 1_000_000);
const BLUE = process.env.TEAL_BLUE_URL ?? 'postgres://postgres@127.0.0.1:5433/app';
const GREEN = process.env.TEAL_GREEN_URL ?? 'postgres://postgres@127.0.0.1:5434/app';
const BROKERS = (process.env.TEAL_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const PARTITIONS = 4;
const TX_ROWS = 10_000;
const BATCH = Number(process.env.BENCH_BATCH ?? 5_000);

// The mix: half inserts, 35% updates, 15% deletes.
const INSERTS = Math.floor(TOTAL / 2);
const UPDATES = Math.floor(TOTAL * 0.35);
const DELETES = TOTAL - INSERTS - UPDATES;

async function client(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, types: { getTypeParser: () => (v: string) => v } });
  await c.connect();
  return c;
}

function changes(): EventInput[] {
  const events: EventInput[] = [];
  let lsn = 0x1000000n;
  let seq = 0;
  const next = () => {
    if (++seq > TX_ROWS) {
      lsn += 1n;
      seq = 1;
    }
    return { lsn, seq };
  };
  for (let id = 1; id <= INSERTS; id++) {
    events.push({ op: 'c', ...next(), after: { id: String(id), n: '0', payload: `row ${id} inserted` } });
  }
  for (let i = 0; i < UPDATES; i++) {
    const id = (i % INSERTS) + 1;
    events.push({
      op: 'u',
      ...next(),
      after: { id: String(id), n: String(i), payload: `row ${id} updated ${i}` },
    });
  }
  for (let i = 0; i < DELETES; i++) events.push({ op: 'd', ...next(), key: { id: String(INSERTS - i) } });
  return events;
}

async function teal(
  green: pg.Client,
  suffix: string,
): Promise<{ rate: number; rssMb: number; seconds: number; startSeconds: number; cpuSeconds: number }> {
  const prefix = `bench_${suffix}`;
  const table = `bench_teal_${suffix}`;
  await green.query(`CREATE TABLE public.${table} (id int PRIMARY KEY, n int, payload text)`);
  const kafka = new KafkaClient({ brokers: BROKERS, clientId: 'teal-bench' });
  const stream = new TestStream(kafka, prefix, PARTITIONS);
  const schema = tableSchema('public', table, [
    column('id', 'int4', true),
    column('n', 'int4'),
    column('payload', 'text'),
  ]);
  const events = changes();
  let t = Date.now();
  await stream.send(schema, events);
  console.log(`published ${events.length} records to Kafka in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  await stream.close();
  const topic = stream.topicOf(schema);

  const main = path.resolve(import.meta.dirname, '../services/consumer/src/main.ts');
  t = Date.now();
  // apply.batchSize: rows per green transaction (default 500); the bench config raises it.
  const configFile = path.join(mkdtempSync(path.join(tmpdir(), 'teal-bench-')), 'teal.config.mjs');
  writeFileSync(configFile, `export default { apply: { batchSize: ${BATCH} } };\n`);
  // BENCH_NODE_ARGS: extra node flags for the consumer process, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p".
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', main, '--config', configFile], {
    env: {
      ...process.env,
      TEAL_GREEN_URL: GREEN,
      TEAL_KAFKA_BROKERS: BROKERS.join(','),
      TEAL_TOPIC_PREFIX: prefix,
      TEAL_CONSUMER_GROUP: `${prefix}-g`,
      TEAL_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  let peakKb = 0;
  let firstApplied = 0;
  await waitFor(
    async () => {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      peakKb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? peakKb);
      const { rows } = await green.query<{ o: string | null }>(
        'SELECT sum(kafka_offset + 1) AS o FROM teal.applied_position WHERE topic = $1',
        [topic],
      );
      const applied = Number(rows[0].o ?? 0);
      if (applied > 0 && firstApplied === 0) firstApplied = Date.now();
      return applied >= events.length;
    },
    { what: 'teal consumer caught up', timeoutMs: 3_600_000, intervalMs: 200 },
  );
  const seconds = (Date.now() - t) / 1000;
  const startSeconds = (firstApplied - t) / 1000;
  // utime + stime of the consumer (clock ticks, 100 Hz): less sensitive to a loaded machine than wall time.
  const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / 100;
  child.kill('SIGTERM');
  const { rows } = await green.query(`SELECT count(*)::int AS n FROM public.${table}`);
  if (Number(rows[0].n) !== INSERTS - DELETES)
    throw new Error(`teal: expected ${INSERTS - DELETES} rows, got ${rows[0].n}`);
  const admin = kafka.admin();
  await admin.deleteTopics(await admin.listTopics(`${prefix}.`));
  await admin.close();
  await kafka.close();
  await green.query(`DROP TABLE public.${table}`);
  return { rate: TOTAL / seconds, rssMb: peakKb / 1024, seconds, startSeconds, cpuSeconds };
}

// The same changes through native logical replication, measured from the first write on blue
// to the subscription having applied the last one.
async function native(
  blue: pg.Client,
  green: pg.Client,
  suffix: string,
): Promise<{ rate: number; seconds: number }> {
  const table = `bench_native_${suffix}`;
  const ddl = `CREATE TABLE public.${table} (id int PRIMARY KEY, n int, payload text)`;
  await blue.query(ddl);
  await green.query(ddl);
  await blue.query(`CREATE PUBLICATION ${table} FOR TABLE public.${table}`);
  const url = new URL(BLUE);
  const conninfo = `host=${url.hostname} port=${url.port} dbname=${url.pathname.slice(1)} user=${url.username}`;
  await green.query(
    `CREATE SUBSCRIPTION ${table} CONNECTION '${conninfo}' PUBLICATION ${table} WITH (copy_data = false)`,
  );
  try {
    const t = Date.now();
    for (let lo = 1; lo <= INSERTS; lo += TX_ROWS) {
      const hi = Math.min(INSERTS, lo + TX_ROWS - 1);
      await blue.query(
        `INSERT INTO public.${table} SELECT g, 0, 'row ' || g || ' inserted' FROM generate_series(${lo}, ${hi}) g`,
      );
    }
    // Updates in the same per-transaction row counts, cycling over the inserted ids.
    for (let lo = 0; lo < UPDATES; lo += TX_ROWS) {
      const hi = Math.min(UPDATES, lo + TX_ROWS) - 1;
      await blue.query(
        `UPDATE public.${table} t SET n = u.i, payload = 'row ' || t.id || ' updated ' || u.i
           FROM (SELECT i, (i % ${INSERTS}) + 1 AS id FROM generate_series(${lo}, ${hi}) i) u WHERE t.id = u.id`,
      );
    }
    for (let lo = 0; lo < DELETES; lo += TX_ROWS) {
      const hi = Math.min(DELETES, lo + TX_ROWS) - 1;
      await blue.query(`DELETE FROM public.${table} WHERE id BETWEEN ${INSERTS - hi} AND ${INSERTS - lo}`);
    }
    const { rows } = await blue.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    await waitFor(
      async () => {
        const r = await blue.query<{ ok: boolean }>(
          `SELECT confirmed_flush_lsn >= $1::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $2`,
          [rows[0].lsn, table],
        );
        return r.rows[0]?.ok === true || (r.rows[0]?.ok as unknown) === 't';
      },
      { what: 'native subscription caught up', timeoutMs: 3_600_000, intervalMs: 200 },
    );
    const seconds = (Date.now() - t) / 1000;
    const { rows: count } = await green.query(`SELECT count(*)::int AS n FROM public.${table}`);
    if (Number(count[0].n) !== INSERTS - DELETES)
      throw new Error(`native: expected ${INSERTS - DELETES}, got ${count[0].n}`);
    return { rate: TOTAL / seconds, seconds };
  } finally {
    await green.query(`DROP SUBSCRIPTION IF EXISTS ${table}`);
    await blue.query(`DROP PUBLICATION IF EXISTS ${table}`);
    await blue.query(`DROP TABLE IF EXISTS public.${table}`);
    await green.query(`DROP TABLE IF EXISTS public.${table}`);
  }
}

const suffix = `${Date.now().toString(36)}`;
const blue = await client(BLUE);
const green = await client(GREEN);
try {
  console.log(
    `${TOTAL} changes: ${INSERTS} inserts, ${UPDATES} updates, ${DELETES} deletes; ${PARTITIONS} partitions`,
  );
  // BENCH_NATIVE=0 skips the baseline (for repeated consumer-only runs while tuning).
  const n = process.env.BENCH_NATIVE === '0' ? undefined : await native(blue, green, suffix);
  if (n) console.log(`native logical replication: ${n.seconds.toFixed(1)} s, ${Math.round(n.rate)} rows/s`);
  const t = await teal(green, suffix);
  console.log(
    `teal consumer: ${t.seconds.toFixed(1)} s (first batch committed after ${t.startSeconds.toFixed(1)} s), ` +
      `${Math.round(t.rate)} rows/s, peak RSS ${t.rssMb.toFixed(0)} MB, consumer CPU ${t.cpuSeconds.toFixed(1)} s`,
  );
  if (n) console.log(`ratio teal/native: ${(t.rate / n.rate).toFixed(2)}x`);
} finally {
  await blue.end();
  await green.end();
}
