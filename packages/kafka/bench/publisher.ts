// Micro-benchmark of teal's Publisher.send alone (a script, not a test): N records of about
// 200 bytes (teal-like key, value and three headers) to a 4-partition topic, in batches, for
// each client; median of R runs. Needs the local Kafka (npm run env:up).
//   npx tsx packages/kafka/bench/publisher.ts
//   BENCH_RECORDS=200000 BENCH_BATCHES=2000,5000 BENCH_RUNS=3 BENCH_CLIENTS=kafkajs,platformatic \
//   BENCH_INFLIGHT=1,3 BENCH_PREASSIGN=0,1 npx tsx packages/kafka/bench/publisher.ts
// BENCH_INFLIGHT: send() calls issued before awaiting (EventPublisher issues up to 3).
// BENCH_PREASSIGN=1: every record carries its partition (partitionFor), sorted by partition.
import { randomBytes } from 'node:crypto';
import { KafkaClient, type KafkaClientKind, type OutgoingRecord } from '../src/index.ts';

const list = (v: string | undefined, d: string) => (v ?? d).split(',').map((s) => s.trim());
const total = Number(process.env.BENCH_RECORDS ?? 200_000);
const batches = list(process.env.BENCH_BATCHES, '2000,5000').map(Number);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const clients = list(process.env.BENCH_CLIENTS, 'kafkajs,platformatic') as KafkaClientKind[];
const inflights = list(process.env.BENCH_INFLIGHT, '1,3').map(Number);
const preassigns = list(process.env.BENCH_PREASSIGN, '0').map((s) => s === '1');
const brokers = list(process.env.TEAL_KAFKA_BROKERS, '127.0.0.1:9092');
const PARTITIONS = 4;

function makeRecords(topic: string, n: number): OutgoingRecord[] {
  const out: OutgoingRecord[] = [];
  for (let i = 0; i < n; i++) {
    const key = Buffer.concat([Buffer.from([0xc3, 0x01]), randomBytes(8), Buffer.from([i & 0x7f])]);
    out.push({
      topic,
      key,
      value: randomBytes(150),
      headers: { 'teal.position': `0/1A2B3C4D:${i + 1}`, 'teal.op': 'r', 'teal.xid': '123456' },
    });
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`Publisher.send micro-benchmark: ${total} records, ${PARTITIONS} partitions, median of ${runs}`);
const rows: string[] = [];
for (const kind of clients) {
  const client = new KafkaClient({ brokers, clientId: 'teal-bench', client: kind });
  const admin = client.admin();
  const topic = `teal_bench_pub_${kind}_${Date.now().toString(36)}`;
  await admin.ensureTopic(topic, { partitions: PARTITIONS });
  const publisher = await client.publisher();
  const base = makeRecords(topic, total);
  await publisher.send(base.slice(0, 100)); // warm-up: metadata, producer id
  for (const batch of batches) {
    for (const inflight of inflights) {
      for (const pre of preassigns) {
        let records = base;
        if (pre) {
          records = base.map((r) => ({ ...r, partition: publisher.partitionFor(r.key!, PARTITIONS) }));
        }
        const rates: number[] = [];
        for (let run = 0; run < runs; run++) {
          const t0 = performance.now();
          const pending: Promise<void>[] = [];
          for (let i = 0; i < records.length; i += batch) {
            let chunk = records.slice(i, i + batch);
            if (pre) chunk = chunk.sort((a, b) => a.partition! - b.partition!);
            pending.push(publisher.send(chunk));
            if (pending.length >= inflight) await pending.shift();
          }
          await Promise.all(pending);
          rates.push(total / ((performance.now() - t0) / 1000));
        }
        const line = `${kind.padEnd(12)} batch ${String(batch).padStart(5)} in-flight ${inflight} preassigned ${pre ? 'yes' : 'no '}: ${Math.round(median(rates))} records/s (runs: ${rates.map(Math.round).join(', ')})`;
        console.log(line);
        rows.push(line);
      }
    }
  }
  await admin.deleteTopics([topic]).catch(() => {});
  await client.close();
}
console.log(
  `load average: ${(await import('node:os'))
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
