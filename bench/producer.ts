// Producer benchmark (a script, not a test): an initial snapshot of N rows and then N
// changes in one streamed transaction, blue -> Kafka on the local environment.
// Prints rows/s and the peak RSS of this process (which runs the producer).
//   npm run bench:producer            (N = 1 000 000)
//   BENCH_ROWS=200000 npx tsx bench/producer.ts
//   TEAL_KAFKA_CLIENT=kafkajs|platformatic picks the Kafka client (default: @teal/kafka's).

import { loadavg } from 'node:os';
import { parseLsn, schemasTopic, tableTopic } from '@teal/change-event';
import { resolveConfig } from '@teal/config';
import { KafkaClient } from '@teal/kafka';
import { Producer } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import pg from 'pg';

const rows = Number(process.env.BENCH_ROWS ?? 1_000_000);
const blueUrl = process.env.TEAL_BLUE_URL ?? 'postgres://postgres@127.0.0.1:5433/app';
const name = `bench_prod_${Date.now().toString(36)}`;
const config = resolveConfig(
  {
    tables: [name],
    slot: `${name}_slot`,
    publication: `${name}_pub`,
    kafka: { topicPrefix: `${name}_t` },
    heartbeatMs: 1000,
    // This bench measures blue -> Kafka: the snapshot as records, whatever teal's default path.
    snapshot: { via: 'kafka' },
  },
  { env: process.env },
);

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 50);
const mb = (n: number) => `${(n / 2 ** 20).toFixed(0)} MB`;

const blue = new pg.Client({ connectionString: blueUrl, types: { getTypeParser: () => (v: string) => v } });
await blue.connect();
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
console.log(`Kafka client: ${config.kafka.client}; load average ${load()}`);
console.log(`loading ${rows} rows into blue table ${name} ...`);
await blue.query(`CREATE TABLE ${name} (id int8 PRIMARY KEY, v text NOT NULL, n numeric, t timestamptz)`);
await blue.query(
  `INSERT INTO ${name} SELECT g, md5(g::text), g * 1.25, '2024-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, $1) g`,
  [rows],
);
await blue.query(`ANALYZE ${name}`);

const producer = new Producer(config);
const tStart = performance.now();
await producer.start();
const t0 = performance.now();
console.log(`start (tables, publication, slot, Kafka): ${((t0 - tStart) / 1000).toFixed(1)} s`);
await waitFor(() => producer.status().state === 'streaming', {
  timeoutMs: 600_000,
  intervalMs: 50,
  what: 'snapshot',
});
const snapshotSeconds = (performance.now() - t0) / 1000;
const snapshotRss = peakRss;
console.log(
  `snapshot: ${rows} rows in ${snapshotSeconds.toFixed(1)} s = ${Math.round(rows / snapshotSeconds)} rows/s, peak RSS ${mb(snapshotRss)}`,
);

peakRss = 0;
const t1 = performance.now();
await blue.query(`UPDATE ${name} SET v = v || 'x', n = n + 1`);
const { rows: lsnRows } = await blue.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l');
const target = parseLsn(lsnRows[0].l);
const commitSeconds = (performance.now() - t1) / 1000;
await waitFor(
  () => {
    const c = producer.status().confirmedLsn;
    return c !== null && parseLsn(c) >= target;
  },
  { timeoutMs: 900_000, intervalMs: 50, what: 'stream confirmed' },
);
const streamSeconds = (performance.now() - t1) / 1000;
console.log(
  `stream: ${rows} updates in one transaction (commit took ${commitSeconds.toFixed(1)} s) confirmed after ${streamSeconds.toFixed(1)} s = ${Math.round(rows / streamSeconds)} rows/s, peak RSS ${mb(peakRss)}`,
);

console.log(`load average ${load()}`);
clearInterval(sampler);
await producer.stop();
await blue.query('SELECT pg_drop_replication_slot($1)', [`${name}_slot`]);
await blue.query(`DROP PUBLICATION ${name}_pub`);
await blue.query(`DROP TABLE ${name}`);
await blue.end();
const kafka = new KafkaClient({ brokers: [...config.kafka.brokers], client: config.kafka.client });
const admin = kafka.admin();
await admin
  .deleteTopics([tableTopic(`${name}_t`, 'public', name), schemasTopic(`${name}_t`)])
  .catch(() => {});
await kafka.close();
