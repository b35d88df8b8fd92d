import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type KafkaClientName, resolveConfig } from '@teal/config';
import { TealError } from '@teal/errors';
import { type IncomingRecord, KafkaClient, type KafkaOptions } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { controlPipeline, tableOnBoth } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, pgClient, uniqueName } from './support/env.ts';
import { type SecureKafka, secureKafka, unsecuredJws } from './support/kafka-security.ts';
import { makeTestCertificates, type TestCertificates } from './support/secure-postgres.ts';

// Issue 14 item 2: teal over the local broker's SASL_SSL listener (infra/local/lib/kafka-security.mjs:
// the test CA, SCRAM users made by the env script, PLAIN from the JAAS config, OAUTHBEARER with
// Kafka's unsecured validator). The pipeline runs through it with each Kafka client teal ships;
// every mechanism connects, produces and consumes; a wrong password, a wrong CA and a token
// hook that throws each end in one non-retriable error, quickly.

const CLIENTS: KafkaClientName[] = ['platformatic', 'kafkajs'];
let kafka: SecureKafka;
let dir: string;
let passwordFile: string;
let otherCerts: TestCertificates;

beforeAll(() => {
  kafka = secureKafka();
  dir = mkdtempSync(path.join(tmpdir(), 'teal-kafka-security-'));
  passwordFile = path.join(dir, 'scram-password');
  writeFileSync(passwordFile, `${kafka.scram.password}\n`);
  chmodSync(passwordFile, 0o600);
  otherCerts = makeTestCertificates();
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  otherCerts?.remove();
});

/** The secure listener, TLS with the test CA, the given SASL login: KafkaOptions as @teal/config resolves them. */
function secureOptions(
  client: KafkaClientName,
  env: Record<string, string>,
  file: object = {},
): KafkaOptions {
  const config = resolveConfig(
    { kafka: file },
    {
      env: {
        TEAL_KAFKA_BROKERS: kafka.saslSsl,
        TEAL_KAFKA_TLS_CA: kafka.ca,
        TEAL_KAFKA_CLIENT: client,
        ...env,
      },
    },
  );
  return {
    brokers: [...config.kafka.brokers],
    client: config.kafka.client,
    tls: config.kafka.tls,
    sasl: config.kafka.sasl,
  };
}

const scram256 = { TEAL_KAFKA_SASL_MECHANISM: 'SCRAM-SHA-256', TEAL_KAFKA_SASL_USERNAME: 'teal-scram' };

/** A topic of one partition through `options`: one record produced, then read back by a consumer group. */
async function roundTrip(options: KafkaOptions, name: string): Promise<IncomingRecord[]> {
  const client = new KafkaClient({ ...options, clientId: name });
  onTestFinished(async () => {
    const admin = client.admin();
    await admin.deleteTopics([name]).catch(() => undefined);
    await client.close();
  });
  await client.admin().ensureTopic(name, { partitions: 1 });
  const publisher = await client.publisher();
  await publisher.send([{ topic: name, key: Buffer.from('k'), value: Buffer.from(`hello ${name}`) }]);
  const got: IncomingRecord[] = [];
  const group = client.groupConsumer({ groupId: `${name}-group`, topics: new RegExp(`^${name}$`) });
  await group.run({
    eachBatch: async (batch) => {
      got.push(...batch.records);
    },
  });
  await waitFor(() => got.length > 0, { what: `the record on ${name}`, timeoutMs: 30_000 });
  return got;
}

/** The error `attempt` ends with, and how long it took. */
async function failure(attempt: () => Promise<unknown>): Promise<{ err: TealError; ms: number }> {
  const started = Date.now();
  const err = await attempt().then(
    () => {
      throw new Error('expected the connect to fail');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TealError);
  return { err: err as TealError, ms: Date.now() - started };
}

describe.each(CLIENTS)('the pipeline over SASL_SSL + SCRAM-SHA-256 (kafka.client %s)', (client) => {
  test('snapshot, stream, drain and verify', async () => {
    const name = uniqueName(`ksec_${client}`);
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    await tableOnBoth(blue, green, name, 'id int PRIMARY KEY, v text NOT NULL');
    await blue.query(`INSERT INTO ${name} SELECT g, 'snap ' || g FROM generate_series(1, 300) g`);
    const config = resolveConfig(
      {
        tables: [`public.${name}`],
        slot: `${name}_slot`,
        publication: `${name}_pub`,
        kafka: { topicPrefix: `${name}_t`, partitions: 2 },
        heartbeatMs: 500,
      },
      {
        env: {
          TEAL_BLUE_URL: blueUrl(),
          TEAL_GREEN_URL: greenUrl(),
          TEAL_KAFKA_BROKERS: kafka.saslSsl,
          TEAL_KAFKA_CLIENT: client,
          TEAL_KAFKA_TLS_CA: kafka.ca,
          ...scram256,
          TEAL_KAFKA_SASL_PASSWORD_FILE: passwordFile,
        },
      },
    );
    expect(config.kafka.sasl?.mechanism).toBe('SCRAM-SHA-256');
    const { control } = await controlPipeline(config);
    const count = async () => Number((await green.query(`SELECT count(*) AS n FROM ${name}`)).rows[0].n);
    await waitFor(async () => (await count()) === 300, { what: 'the snapshot in green', timeoutMs: 60_000 });
    await blue.query(`INSERT INTO ${name} SELECT g, 'stream ' || g FROM generate_series(301, 350) g`);
    await blue.query(`UPDATE ${name} SET v = v || ' (updated)' WHERE id % 10 = 0`);
    await blue.query(`DELETE FROM ${name} WHERE id % 25 = 0`);
    const drained = await control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.drained).toBe(true);
    expect(await count()).toBe(336);
    const report = await control.verify({});
    expect(report.ok, JSON.stringify(report)).toBe(true);
  });
});

describe('each SASL mechanism over TLS connects, produces and consumes', () => {
  test.each([
    [
      'PLAIN',
      () =>
        secureOptions('platformatic', {
          TEAL_KAFKA_SASL_MECHANISM: 'PLAIN',
          TEAL_KAFKA_SASL_USERNAME: kafka.plain.username,
          TEAL_KAFKA_SASL_PASSWORD: kafka.plain.password,
        }),
    ],
    [
      'SCRAM-SHA-512',
      () =>
        secureOptions('platformatic', {
          TEAL_KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
          TEAL_KAFKA_SASL_USERNAME: kafka.scram.username,
          TEAL_KAFKA_SASL_PASSWORD_FILE: passwordFile,
        }),
    ],
    [
      'OAUTHBEARER',
      () =>
        secureOptions(
          'platformatic',
          {},
          {
            sasl: {
              mechanism: 'OAUTHBEARER',
              oauthBearer: async () => ({ token: unsecuredJws('teal'), expiresAt: Date.now() + 3_600_000 }),
            },
          },
        ),
    ],
  ] as const)('%s (platformatic admin and publisher, kafkajs group)', async (mechanism, options) => {
    const got = await roundTrip(options(), uniqueName(`ksec_${mechanism.replace(/\W/g, '')}`));
    expect(got.map((r) => r.value?.toString())).toEqual([expect.stringMatching(/^hello /)]);
  });

  test('a client certificate (kafka.tls.cert/key) is accepted with SCRAM, kafkajs for every role', async () => {
    const options = secureOptions('kafkajs', {
      ...scram256,
      TEAL_KAFKA_SASL_PASSWORD_FILE: passwordFile,
      TEAL_KAFKA_TLS_CERT: kafka.clientCert,
      TEAL_KAFKA_TLS_KEY: kafka.clientKey,
    });
    expect(options.tls?.key).toBeTypeOf('function');
    const got = await roundTrip(options, uniqueName('ksec_mtls'));
    expect(got).toHaveLength(1);
  });
});

describe('a refused connect is one clear, non-retriable error, quickly', () => {
  test.each(CLIENTS)(
    'a wrong SCRAM password (%s): TEAL_KAFKA_AUTH naming the user, not the password',
    async (client) => {
      const wrong = 'not-the-password-5f1c';
      const options = secureOptions(client, { ...scram256, TEAL_KAFKA_SASL_PASSWORD: wrong });
      const kc = new KafkaClient(options);
      onTestFinished(() => kc.close());
      const { err, ms } = await failure(() => kc.admin().listTopics());
      expect(err.code).toBe('TEAL_KAFKA_AUTH');
      expect(err.retriable).toBe(false);
      expect(err.message).toContain('"teal-scram"');
      expect(err.message).toContain(kafka.saslSsl);
      expect(err.message).not.toContain(wrong);
      expect(ms).toBeLessThan(10_000);
    },
  );

  test.each(CLIENTS)(
    'a CA that did not sign the broker (%s): TEAL_KAFKA_TLS saying to give the right CA',
    async (client) => {
      const options = secureOptions(client, {
        ...scram256,
        TEAL_KAFKA_SASL_PASSWORD_FILE: passwordFile,
        TEAL_KAFKA_TLS_CA: otherCerts.caFile,
      });
      const kc = new KafkaClient(options);
      onTestFinished(() => kc.close());
      const { err, ms } = await failure(() => kc.admin().listTopics());
      expect(err.code).toBe('TEAL_KAFKA_TLS');
      expect(err.retriable).toBe(false);
      expect(err.message).toMatch(/kafka\.tls\.ca|TEAL_KAFKA_TLS_CA/);
      // Both before the library's own retries (platformatic's preflight, the kafkajs TLS probe).
      expect(ms).toBeLessThan(5_000);
    },
  );

  test("a token hook that throws: TEAL_KAFKA_AUTH with the hook's message, for the publisher and the group", async () => {
    let calls = 0;
    const options = secureOptions(
      'platformatic',
      {},
      {
        sasl: {
          mechanism: 'OAUTHBEARER',
          oauthBearer: async () => {
            calls++;
            throw new Error('the identity provider said no');
          },
        },
      },
    );
    const kc = new KafkaClient(options);
    onTestFinished(() => kc.close());
    const publisher = await failure(() => kc.publisher());
    expect(publisher.err.code).toBe('TEAL_KAFKA_AUTH');
    expect(publisher.err.message).toContain('the identity provider said no');
    expect(publisher.ms).toBeLessThan(10_000);
    const group = kc.groupConsumer({ groupId: uniqueName('ksec_hook'), topics: /^never$/ });
    const consumed = await failure(() => group.run({ eachBatch: async () => {} }));
    expect(consumed.err.code).toBe('TEAL_KAFKA_AUTH');
    expect(consumed.ms).toBeLessThan(10_000);
    // Not retried in a loop: a handful of connects, each asking once.
    expect(calls).toBeLessThan(10);
  });
});
