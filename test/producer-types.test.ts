import { resolveConfig } from '@teal/config';
import { KafkaClient } from '@teal/kafka';
import { decodeAll, Producer, TopicReader } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// Contract item 4 through the producer: every value, read back from Kafka, equals blue's
// own text of it, for snapshot rows and for stream events alike.
describe('producer: lossless values', () => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-producer-types-test' });
  afterAll(() => kafka.close());

  test('edge values of built-in and user types equal blue text, snapshot and stream', async () => {
    const name = uniqueName('prod_types');
    const blue = await pgClient(blueUrl());
    await blue.query(`CREATE TYPE ${name}_mood AS ENUM ('sad', 'ok', 'happy')`);
    await blue.query(`CREATE DOMAIN ${name}_pos AS int CHECK (VALUE > 0)`);
    await blue.query(`CREATE TYPE ${name}_pair AS (a int, b text)`);
    await blue.query(`CREATE TABLE ${name} (
      id int PRIMARY KEY, n numeric, i8 int8, tz timestamptz, d date, f8 float8, f4 float4, b bytea, j jsonb, js json,
      arr int[], arr2 text[][], mood ${name}_mood, pos ${name}_pos, pair ${name}_pair, r int4range, tr tstzrange,
      iv interval, m money, ip inet, cidr_ cidr, mac macaddr, bits bit varying, x xml, ts tsvector, u uuid, t time,
      ttz timetz, tsn timestamp, bo boolean, n2 numeric(12,2), c char(3), pt point, oid_ oid)`);
    onTestFinished(async () => {
      await blue.query(`DROP TABLE IF EXISTS ${name}`);
      await blue.query(`DROP TYPE IF EXISTS ${name}_pair, ${name}_mood`);
      await blue.query(`DROP DOMAIN IF EXISTS ${name}_pos`);
    });
    const rows = [
      `(1, 'NaN', 9007199254740993, '2024-02-29 23:59:59.123456+00', '0044-03-15 BC', 'NaN', '-0', '\\x00ff10', '{"big": 123456789012345678901234567890.5, "s": "é"}', '{"a" : 1}',
        '{1,NULL,3}', '{{a,NULL},{"b c",d}}', 'happy', 7, '(1,"x,y")', '[1,10)', '[2024-01-01 00:00:00+00,infinity)',
        '1 year 2 mons -3 days 04:05:06.789', '-12.34', '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', B'10101', '<a>x</a>', 'fat cat:2 rat', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        '23:59:59.999999', '01:02:03+05:30', '2000-01-01 00:00:00', true, 12.5, 'ab', '(1.5,-2)', 4294967295)`,
      `(2, 'Infinity', -9223372036854775808, 'infinity', 'infinity', 'Infinity', 'NaN', '\\x', '[]', 'null', '{}', '{}', 'sad', 1, '(,)', 'empty', 'empty',
        '-178000000 years', '0', '::1', '::/0', 'ff:ff:ff:ff:ff:ff', B'', '<r/>', '', '00000000-0000-0000-0000-000000000000', '00:00', '00:00+00', '-infinity', false, -0.01, '', '(0,0)', 0)`,
      `(3, '-Infinity', 9223372036854775807, '-infinity', '-infinity', '-Infinity', '1.17549435e-38', NULL, '0.000000000000000000001', '"x"', '{{1,2},{3,4}}', '{NULL}', NULL, NULL, NULL, '(,)', NULL,
        '00:00:00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
      `(4, '0.000000000000000000000000000001234500', 0, '1970-01-01 00:00:00.000001+00', '2000-02-29', 1.7976931348623157e308, 3.4028235e38, '\\x${Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex')}', '{"n": -0.0, "e": 1e400}', '[1, 2.50]',
        '[0:1]={5,6}', '{{{x}}}', 'ok', 2147483647, '(-1,"")', '(,5]', '(2024-01-01 00:00:00.5+00,2024-01-02 00:00:00+00]',
        '-1 days +23:59:59.999999', '92233720368547758.07', '2001:db8::1', '2001:db8::/32', '00:00:00:00:00:00', B'1', '<?xml version="1.0"?><z/>', 'a:1A b:2B', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '24:00:00', '24:00:00-15:59', '294276-12-31 23:59:59.999999', true, 9999999999.99, 'xyz', '(1e-300,1e300)', 1)`,
    ];
    await blue.query(`INSERT INTO ${name} VALUES ${rows.slice(0, 2).join(', ')}`);
    const producer = new Producer(
      resolveConfig(
        {
          tables: [name],
          slot: `${name}_slot`,
          publication: `${name}_pub`,
          kafka: { topicPrefix: `${name}_t`, partitions: 2 },
        },
        {
          env: {
            TEAL_BLUE_URL: blueUrl(),
            TEAL_GREEN_URL: greenUrl(),
            TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
          },
        },
      ),
    );
    onTestFinished(async () => {
      await producer.stop();
      await blue.query('SELECT pg_drop_replication_slot($1)', [`${name}_slot`]);
      await blue.query(`DROP PUBLICATION IF EXISTS ${name}_pub`);
    });
    await producer.start();
    await waitFor(() => producer.status().state === 'streaming', { what: 'streaming' });
    await blue.query(`INSERT INTO ${name} VALUES ${rows.slice(2).join(', ')}`);
    await blue.query(`UPDATE ${name} SET n = n, f8 = f8 WHERE id = 1`);

    const topic = `${name}_t.public.${name}`;
    const reader = new TopicReader(kafka, [topic]);
    await reader.start();
    onTestFinished(() => reader.stop());
    await waitFor(() => reader.records.length >= 5, { what: '5 records' });
    const events = (await decodeAll(kafka, `${name}_t`, reader.records)).map((d) => d.event);
    const expected = new Map(
      (await blue.query<Record<string, string | null>>(`SELECT * FROM ${name}`)).rows.map((r) => [r.id, r]),
    );
    expect(events.filter((e) => e.op === 'r')).toHaveLength(2);
    expect(events.filter((e) => e.op === 'c')).toHaveLength(2);
    for (const e of events) {
      expect(e.after, `${e.op} of id ${e.key.id}`).toEqual(expected.get(e.key.id ?? ''));
    }
  });
});
