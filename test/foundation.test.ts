import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// Proof that the local environment is real: blue decodes logically with pgoutput, the
// broker keeps acknowledged bytes, and green accepts writes. No mocks.

interface InsertMessage {
  relationOid: number;
  values: (string | null)[];
}

/**
 * The Insert messages in a pgoutput v1 stream.
 * Insert: Byte1('I') Int32(relation oid) Byte1('N') TupleData; TupleData: Int16(ncols) then
 * per column Byte1('n' null | 'u' unchanged toast | 't' text) and, for 't', Int32(len) Byte_n.
 * (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html)
 */
function insertsIn(messages: Buffer[]): InsertMessage[] {
  const inserts: InsertMessage[] = [];
  for (const msg of messages) {
    if (String.fromCharCode(msg[0]) !== 'I') continue;
    const relationOid = msg.readUInt32BE(1);
    expect(String.fromCharCode(msg[5])).toBe('N');
    const ncols = msg.readInt16BE(6);
    let at = 8;
    const values: (string | null)[] = [];
    for (let i = 0; i < ncols; i++) {
      const kind = String.fromCharCode(msg[at]);
      at += 1;
      if (kind === 't') {
        const len = msg.readInt32BE(at);
        values.push(msg.subarray(at + 4, at + 4 + len).toString('utf8'));
        at += 4 + len;
      } else {
        values.push(null);
      }
    }
    inserts.push({ relationOid, values });
  }
  return inserts;
}

describe('local environment', () => {
  test('blue decodes a committed insert through a pgoutput logical slot', async () => {
    const blue = await pgClient(blueUrl());
    expect((await blue.query('show wal_level')).rows[0].wal_level).toBe('logical');
    const table = uniqueName('foundation');
    const slot = uniqueName('foundation_slot');
    const pub = uniqueName('foundation_pub');
    await blue.query(`create table ${table} (id int primary key, note text)`);
    onTestFinished(async () => {
      const cleanup = await pgClient(blueUrl());
      await cleanup.query(
        'select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1',
        [slot],
      );
      await cleanup.query(`drop publication if exists ${pub}`);
      await cleanup.query(`drop table if exists ${table}`);
    });
    await blue.query(`create publication ${pub} for table ${table}`);
    await blue.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
    const note = `héllo ${randomBytes(6).toString('hex')}`;
    await blue.query(`insert into ${table} values (42, $1)`, [note]);

    const oid = (await blue.query('select $1::regclass::oid as oid', [table])).rows[0].oid;
    const changes = await blue.query(
      `select data from pg_logical_slot_peek_binary_changes($1, null, null,
         'proto_version', '1', 'publication_names', $2)`,
      [slot, pub],
    );
    // Text type parsing: bytea arrives as '\x<hex>'.
    const messages = changes.rows.map((r) => Buffer.from(String(r.data).slice(2), 'hex'));
    const kinds = messages.map((m) => String.fromCharCode(m[0]));
    expect(kinds).toEqual(['B', 'R', 'I', 'C']);
    expect(insertsIn(messages)).toEqual([{ relationOid: Number(oid), values: ['42', note] }]);
  });

  test('Kafka returns the exact bytes it acknowledged with acks=all', async () => {
    const kafka = new Kafka({
      clientId: 'teal-foundation-test',
      brokers: kafkaBrokers(),
      logLevel: logLevel.ERROR,
    });
    const topic = uniqueName('foundation');
    const admin = kafka.admin();
    await admin.connect();
    onTestFinished(async () => {
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect();
    });
    expect(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })).toBe(
      true,
    );

    const key = Buffer.from('key-1');
    // Every byte value, so nothing is mangled by an encoding on the way.
    const value = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(64)]);
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    onTestFinished(() => producer.disconnect());
    const [ack] = await producer.send({ topic, acks: -1, messages: [{ key, value }] });
    expect(ack.errorCode).toBe(0);

    const consumer = kafka.consumer({ groupId: uniqueName('foundation_group') });
    await consumer.connect();
    onTestFinished(() => consumer.disconnect());
    await consumer.subscribe({ topic, fromBeginning: true });
    const received = await new Promise<{ key: Buffer | null; value: Buffer | null; offset: string }>(
      (resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no message within 60 s')), 60_000);
        consumer
          .run({
            eachMessage: async ({ message }) => {
              clearTimeout(timer);
              resolve({ key: message.key, value: message.value, offset: message.offset });
            },
          })
          .catch(reject);
      },
    );
    expect(received.offset).toBe(ack.baseOffset);
    expect(received.key?.equals(key)).toBe(true);
    expect(received.value?.equals(value)).toBe(true);
  });

  test('green accepts a write and returns it as text', async () => {
    const green = await pgClient(greenUrl());
    const table = uniqueName('foundation');
    await green.query(`create table ${table} (id bigint primary key, amount numeric, at timestamptz)`);
    onTestFinished(async () => {
      const cleanup = await pgClient(greenUrl());
      await cleanup.query(`drop table if exists ${table}`);
    });
    await green.query("set time zone 'UTC'");
    await green.query(`insert into ${table} values ($1, $2, $3)`, [
      '9007199254740993',
      '123456789012345678901234567890.000000000000000001',
      '2024-02-29 23:59:59.123456+00',
    ]);
    const { rows } = await green.query(`select id, amount, at from ${table}`);
    expect(rows).toEqual([
      {
        id: '9007199254740993',
        amount: '123456789012345678901234567890.000000000000000001',
        at: '2024-02-29 23:59:59.123456+00',
      },
    ]);
  });

  // Everyone shares one environment and globalSetup calls `up` whenever `status` is unhappy:
  // a second `up` must find the running servers instead of starting (or failing on) new ones.
  test('env:up is idempotent and env:status reports all up', async () => {
    const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../infra/local/env.mjs');
    const run = promisify(execFile);
    const status = await run(process.execPath, [script, 'status']);
    expect(status.stdout).toMatch(/blue\s+up/);
    expect(status.stdout).toMatch(/green\s+up/);
    expect(status.stdout).toMatch(/kafka\s+up/);
    const before = serverPids(status.stdout);
    const up = await run(process.execPath, [script, 'up']);
    expect(up.stdout.match(/already running/g)).toHaveLength(3);
    // The same three server processes before and after: nothing was started again.
    const after = serverPids((await run(process.execPath, [script, 'status'])).stdout);
    expect(after).toEqual(before);
    expect(Object.values(before).every((pid) => /^\d+$/.test(pid))).toBe(true);
  });
});

/** Process ids of blue's and green's postmasters (postmaster.pid) and of the broker, from `env status`. */
function serverPids(statusOutput: string): Record<string, string> {
  const pids: Record<string, string> = {};
  for (const name of ['blue', 'green']) {
    const dataDir = new RegExp(`${name}\\s+up\\s.* \\(data ([^)]+)\\)`).exec(statusOutput)?.[1];
    pids[name] = dataDir ? readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0] : '';
  }
  pids.kafka = /kafka\s+up\s+\S+ \(pid (\d+)\)/.exec(statusOutput)?.[1] ?? '';
  return pids;
}
