// Micro-benchmark of teal's GroupConsumer alone (a script, not a test): one topic of N
// records of about 200 bytes (teal-like key and value, no headers, 4 partitions) is read whole
// by a new group with each client and a handler that does nothing; wall seconds and the
// process's CPU seconds (user + system: the client's fetch decoding and record conversion),
// median of R runs, clients alternating. Needs the local Kafka (npm run env:up).
//   npx tsx packages/kafka/bench/group-consumer.ts
//   BENCH_RECORDS=500000 BENCH_RUNS=3 BENCH_CLIENTS=kafkajs,platformatic npx tsx packages/kafka/bench/group-consumer.ts
import { randomBytes } from 'node:crypto';
import { waitFor } from '@teal/runtime';
import { KafkaClient, type KafkaClientKind, type OutgoingRecord } from '../src/index.ts';

const list = (v: string | undefined, d: string) => (v ?? d).split(',').map((s) => s.trim());
const total = Number(process.env.BENCH_RECORDS ?? 500_000);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const clients = list(process.env.BENCH_CLIENTS, 'kafkajs,platformatic') as KafkaClientKind[];
const brokers = list(process.env.TEAL_KAFKA_BROKERS, '127.0.0.1:9092');
const PARTITIONS = 4;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const writer = new KafkaClient({ brokers, clientId: 'teal-bench-writer', client: 'platformatic' });
const admin = writer.admin();
const topic = `teal_bench_group_${Date.now().toString(36)}`;
await admin.ensureTopic(topic, { partitions: PARTITIONS });
const publisher = await writer.publisher();
for (let i = 0; i < total; i += 5_000) {
  const records: OutgoingRecord[] = [];
  for (let j = i; j < Math.min(i + 5_000, total); j++)
    records.push({
      topic,
      key: Buffer.concat([Buffer.from([0xc3, 0x01]), randomBytes(8)]),
      value: randomBytes(180),
    });
  await publisher.send(records);
}
console.log(`GroupConsumer micro-benchmark: ${total} records in ${PARTITIONS} partitions, median of ${runs}`);

const results = new Map<KafkaClientKind, { wall: number[]; cpu: number[] }>();
for (let run = 0; run < runs; run++) {
  for (const kind of clients) {
    const client = new KafkaClient({ brokers, clientId: 'teal-bench-reader', client: kind });
    let seen = 0;
    const group = client.groupConsumer({
      groupId: `${topic}_${kind}_${run}`,
      topics: new RegExp(`^${topic}$`),
      client: kind,
      maxBytesPerPartition: 1024 * 1024,
    });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await group.run({
      async eachBatch(batch) {
        seen += batch.records.length;
      },
    });
    await waitFor(() => seen >= total, { what: `${total} records`, timeoutMs: 600_000, intervalMs: 20 });
    const wall = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    await group.close();
    await client.close();
    const r = results.get(kind) ?? { wall: [], cpu: [] };
    r.wall.push(wall);
    r.cpu.push((cpu.user + cpu.system) / 1e6);
    results.set(kind, r);
    console.log(`  run ${run + 1} ${kind}: ${wall.toFixed(2)} s wall, ${r.cpu.at(-1)!.toFixed(2)} CPU s`);
  }
}
console.log('| client | records/s (wall) | CPU s per 100k records | wall s | CPU s |');
console.log('|---|---|---|---|---|');
for (const [kind, r] of results) {
  const wall = median(r.wall);
  const cpu = median(r.cpu);
  console.log(
    `| ${kind} | ${Math.round(total / wall).toLocaleString('en-US')} | ${((cpu * 100_000) / total).toFixed(2)} | ${wall.toFixed(2)} | ${cpu.toFixed(2)} |`,
  );
}
await admin.deleteTopics([topic]);
await admin.close();
await publisher.close();
await writer.close();
