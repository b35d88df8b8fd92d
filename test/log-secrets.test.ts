import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import { describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, freePort, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';
import { secureKafka, unsecuredJws } from './support/kafka-security.ts';
import { makeTestCertificates, type SecurePostgres, startSecurePostgres } from './support/secure-postgres.ts';
import { spawnTeal, type TealChild } from './support/teal-child.ts';

// Contract item 13: secrets never reach logs. teal runs as a child process (pino writes JSON
// to stdout), with a password in the blue URL (trust auth on loopback ignores it) and an API
// token; every byte it prints, on the happy path and on error paths, must be free of both.

const PASSWORD = 's3cr3t-pw';
const TOKEN = 'tok-9f8e7d6c5b4a39281706-secret';

function withPassword(url: string, port?: number): string {
  const u = new URL(url);
  u.password = PASSWORD;
  if (port !== undefined) u.port = String(port);
  return u.toString();
}

function teal(args: string[], env: Record<string, string>, cwd: string): TealChild {
  // No PG* variable of ours leaks into the child: each test says which it sets. Every level,
  // so that debug lines are checked too (under vitest teal logs only warnings).
  return spawnTeal(args, {
    cwd,
    env: { TEAL_LOG_LEVEL: 'trace', ...env },
    dropEnv: ['PG'],
    stopWaitMs: 10_000,
  });
}

function expectNoSecrets(output: string, secrets: readonly string[] = []): void {
  expect(output.length).toBeGreaterThan(0);
  for (const secret of [PASSWORD, TOKEN, encodeURIComponent(PASSWORD), TOKEN.slice(4, 24), ...secrets]) {
    const at = output.indexOf(secret);
    expect(at, at < 0 ? '' : `secret found in: ${output.slice(Math.max(0, at - 300), at + 100)}`).toBe(-1);
  }
}

/** Resolves once teal run's control API answers; fails at once when the child exits first. */
async function apiUp(child: TealChild, url: string): Promise<void> {
  // pino's stdout is buffered when piped: wait on the API itself, not on a log line.
  await waitFor(
    async () => {
      if (child.proc.exitCode !== null) throw new Error(`teal run exited early:\n${child.output()}`);
      return (await fetch(`${url}/healthz`).catch(() => undefined))?.ok || undefined;
    },
    { what: 'control API up', timeoutMs: 60_000 },
  );
}

/**
 * A working directory and table `name` on the shared blue and green, with everything a teal
 * run leaves (slot, publication, tables, topics) removed when the test finishes.
 */
async function replicatedTable(name: string) {
  const dir = mkdtempSync(join(tmpdir(), 'teal-log-secrets-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const blue = await pgClient(blueUrl());
  const green = await pgClient(greenUrl());
  for (const db of [blue, green]) await db.query(`CREATE TABLE public.${name} (id int PRIMARY KEY, v text)`);
  onTestFinished(async () => {
    await blue
      .query(
        'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active',
        [name],
      )
      .catch(() => undefined);
    await blue.query(`DROP PUBLICATION IF EXISTS ${name}`);
    for (const db of [blue, green]) await db.query(`DROP TABLE IF EXISTS public.${name}`);
    const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-log-secrets-test' });
    const admin = kafka.admin();
    await admin.deleteTopics(await admin.listTopics(`${name}.`)).catch(() => undefined);
    await admin.close();
    await kafka.close();
  });
  return { dir, blue, green };
}

describe('secrets never reach logs', () => {
  test('teal run (producer + consumer + API) with a password in the blue URL and an API token', async () => {
    const name = uniqueName('logsec');
    const { dir, blue, green } = await replicatedTable(name);
    writeFileSync(
      join(dir, 'teal.config.ts'),
      `export default ${JSON.stringify({ slot: name, publication: name, tables: [`public.${name}`], kafka: { topicPrefix: name, partitions: 1 } })};\n`,
    );
    const port = await freePort();
    const child = teal(
      ['run'],
      {
        TEAL_BLUE_URL: withPassword(blueUrl()),
        TEAL_GREEN_URL: greenUrl(),
        TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
        TEAL_API_HOST: '127.0.0.1',
        TEAL_API_PORT: String(port),
        TEAL_API_TOKEN: TOKEN,
      },
      dir,
    );
    const url = `http://127.0.0.1:${port}`;
    await apiUp(child, url);
    await blue.query(`INSERT INTO public.${name} VALUES (1, 'one')`);
    await waitFor(async () => (await green.query(`SELECT v FROM public.${name}`)).rows.length === 1, {
      what: 'row replicated',
      timeoutMs: 60_000,
    });
    // The token the right way, the wrong way, in the query string, as Basic; a failing route.
    const calls: [string, RequestInit][] = [
      ['/status', { headers: { authorization: `Bearer ${TOKEN}` } }],
      ['/status', { headers: { authorization: `Bearer ${TOKEN}x` } }],
      [`/status?token=${TOKEN}`, {}],
      ['/status', { headers: { authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}` } }],
      [
        '/drain',
        {
          method: 'POST',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
          body: `{"timeoutMs":"${TOKEN}"}`,
        },
      ],
      [
        '/verify',
        {
          method: 'POST',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
          body: `{"tables":["public.${name}"]}`,
        },
      ],
      [`/nope/${TOKEN}`, { headers: { authorization: `Bearer ${TOKEN}` } }],
    ];
    for (const [path, init] of calls) await (await fetch(url + path, init)).text();
    const status = await fetch(`${url}/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expectNoSecrets(await status.text());
    child.proc.kill('SIGTERM');
    await child.exited;
    const out = child.output();
    expect(out).toMatch(/control API listening/);
    expectNoSecrets(out);
  });

  test('error paths: a blue URL with a password on a wrong port, for producer and run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'teal-log-secrets-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const name = uniqueName('logsecerr');
    writeFileSync(
      join(dir, 'teal.config.ts'),
      `export default ${JSON.stringify({ slot: name, publication: name, kafka: { topicPrefix: name } })};\n`,
    );
    for (const command of ['producer', 'run', 'verify']) {
      const child = teal(
        [command],
        {
          TEAL_BLUE_URL: withPassword(blueUrl(), 5999),
          TEAL_GREEN_URL: withPassword(greenUrl(), 5998),
          TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
          TEAL_API_PORT: '0',
          TEAL_API_TOKEN: TOKEN,
        },
        dir,
      );
      // It either exits with the error or keeps retrying with backoff, logging each attempt.
      await waitFor(
        () => child.proc.exitCode !== null || /5999|ECONNREFUSED|unreachable/i.test(child.output()),
        {
          what: `${command} reports the unreachable blue`,
          timeoutMs: 60_000,
        },
      );
      child.proc.kill('SIGTERM');
      await child.exited;
      const out = child.output();
      expect(out, command).toMatch(/5999|5998|ECONNREFUSED|unreachable/i);
      expectNoSecrets(out);
    }
  });
});

// Issue 14 item 3, Postgres half: the passwords teal finds itself (PGPASSWORD, a passfile) and
// the TLS client key it reads (PGSSLKEY) are secrets too, on blue and green behind hostssl +
// SCRAM. A wrong password is one as well: the refusal names the server, never the password.
describe('secrets teal reads itself: PGPASSWORD, a passfile, a TLS client key', () => {
  const ENV_PASSWORD = 'pgpassword-Secret-3e1f07';
  const FILE_PASSWORD = 'passfile-Secret-a6d2c9';
  const WRONG_PASSWORD = 'wrong-Secret-77b1e5';

  test('teal run, /status, teal check (right and wrong passwords) and teal producer print none of them', async () => {
    const name = uniqueName('logsec_tls');
    const certs = makeTestCertificates();
    onTestFinished(() => certs.remove());
    const servers: SecurePostgres[] = [];
    onTestFinished(() => {
      for (const s of servers) s.destroy();
    });
    const blue = await startSecurePostgres(certs);
    servers.push(blue);
    const green = await startSecurePostgres(certs);
    servers.push(green);
    for (const server of servers) {
      const admin = await server.admin();
      // One role, the PGPASSWORD password; another with the passfile's.
      await admin.query(`CREATE ROLE teal_env SUPERUSER LOGIN PASSWORD '${ENV_PASSWORD}'`);
      await admin.query(`CREATE ROLE teal_file SUPERUSER LOGIN PASSWORD '${FILE_PASSWORD}'`);
      await admin.query(`CREATE TABLE public.${name} (id int PRIMARY KEY, v text)`);
      await admin.end();
    }
    onTestFinished(async () => {
      const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-log-secrets-test' });
      const admin = kafka.admin();
      await admin.deleteTopics(await admin.listTopics(`${name}.`)).catch(() => undefined);
      await admin.close();
      await kafka.close();
    });
    const dir = mkdtempSync(join(tmpdir(), 'teal-log-secrets-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      join(dir, 'teal.config.ts'),
      `export default ${JSON.stringify({ slot: name, publication: name, tables: [`public.${name}`], kafka: { topicPrefix: name, partitions: 1 } })};\n`,
    );
    const passfile = join(dir, 'pgpass');
    writeFileSync(passfile, `*:*:*:teal_file:${FILE_PASSWORD}\n`);
    chmodSync(passfile, 0o600);
    // The key's base64 body, line by line: none may appear anywhere.
    const keyLines = readFileSync(certs.clientKeyFile, 'utf8')
      .split('\n')
      .filter((l) => l.length > 20 && !l.startsWith('-----'));
    expect(keyLines.length).toBeGreaterThan(0);
    const secrets = [ENV_PASSWORD, FILE_PASSWORD, WRONG_PASSWORD, ...keyLines];
    const url = (s: SecurePostgres, user: string) =>
      `${s.tcpUrl(user)}?sslmode=verify-full&sslrootcert=${encodeURIComponent(certs.caFile)}`;
    const common = {
      TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
      PGSSLCERT: certs.clientCertFile,
      PGSSLKEY: certs.clientKeyFile,
    };
    const envUser = {
      ...common,
      TEAL_BLUE_URL: url(blue, 'teal_env'),
      TEAL_GREEN_URL: url(green, 'teal_env'),
    };

    // teal run with PGPASSWORD: rows flow, /status is read, then it stops.
    const port = await freePort();
    const run = teal(['run'], { ...envUser, PGPASSWORD: ENV_PASSWORD, TEAL_API_PORT: String(port) }, dir);
    const api = `http://127.0.0.1:${port}`;
    await apiUp(run, api);
    const blueAdmin = await blue.admin();
    const greenAdmin = await green.admin();
    onTestFinished(async () => {
      await blueAdmin.end();
      await greenAdmin.end();
    });
    await blueAdmin.query(`INSERT INTO public.${name} VALUES (1, 'one')`);
    await waitFor(async () => (await greenAdmin.query(`SELECT v FROM public.${name}`)).rows.length === 1, {
      what: 'row replicated over TLS',
      timeoutMs: 60_000,
    });
    expectNoSecrets(await (await fetch(`${api}/status`)).text(), secrets);
    run.proc.kill('SIGTERM');
    await run.exited;
    expectNoSecrets(run.output(), secrets);

    // teal check with the passfile's password: it connects, and says so without it.
    const fileUser = {
      ...common,
      TEAL_BLUE_URL: url(blue, 'teal_file'),
      TEAL_GREEN_URL: url(green, 'teal_file'),
    };
    const check = teal(['check'], { ...fileUser, PGPASSFILE: passfile }, dir);
    await check.exited;
    expect(check.output()).toMatch(/1 table checked: 0 blocking/);
    expectNoSecrets(check.output(), secrets);

    // A wrong password: teal check and teal producer (its preflight) end at once with the
    // TEAL_PG_AUTH message naming the server, exit 1, no retry loop.
    for (const command of ['check', 'producer']) {
      const child = teal([command], { ...envUser, PGPASSWORD: WRONG_PASSWORD }, dir);
      const code = await Promise.race([
        child.exited,
        new Promise((r) => setTimeout(() => r('timeout'), 60_000)),
      ]);
      const out = child.output();
      expect(code, `${command} did not exit:\n${out}`).not.toBe('timeout');
      expect(code, out).toBe(1);
      expect(out, command).toMatch(/refused the login \(28P01: password authentication failed/);
      expect(out, command).toContain(`Postgres at 127.0.0.1:${blue.port}`);
      expectNoSecrets(out, secrets);
    }
  });
});

// Issue 14 item 3, Kafka half: the SASL password (variable and file), an OAUTHBEARER token, a
// TLS client key and its passphrase, over the local broker's SASL_SSL listener
// (test/support/kafka-security.ts). A wrong password ends teal check at once, naming the user.
describe('Kafka secrets: SASL passwords, an OAuth token, a TLS client key and its passphrase', () => {
  test('teal run, /status and teal check (SCRAM, PLAIN from a file, OAUTHBEARER, a wrong password) print none of them', async () => {
    const kafka = secureKafka();
    const name = uniqueName('logsec_kafka');
    const { dir, blue, green } = await replicatedTable(name);
    // The client key, encrypted with a passphrase (PKCS#8), as teal is given it.
    const passphrase = 'key-Passphrase-1b9d44';
    const keyFile = join(dir, 'client-key.pem');
    execFileSync('openssl', [
      'pkcs8',
      '-topk8',
      '-in',
      kafka.clientKey,
      '-out',
      keyFile,
      '-passout',
      `pass:${passphrase}`,
    ]);
    const pemLines = (file: string) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.length > 20 && !l.startsWith('-----'));
    const token = unsecuredJws('teal-log-secrets');
    const wrong = 'wrong-Kafka-Secret-0c4d2a';
    const secrets = [
      kafka.scram.password,
      kafka.plain.password,
      token,
      token.split('.')[1]!,
      passphrase,
      wrong,
      ...pemLines(keyFile),
      ...pemLines(kafka.clientKey),
    ];
    const plainFile = join(dir, 'plain-password');
    writeFileSync(plainFile, `${kafka.plain.password}\n`);
    chmodSync(plainFile, 0o600);
    const config = {
      slot: name,
      publication: name,
      tables: [`public.${name}`],
      kafka: { topicPrefix: name, partitions: 1 },
    };
    writeFileSync(join(dir, 'teal.config.ts'), `export default ${JSON.stringify(config)};\n`);
    // The token hook in a config of its own (`teal check --config`).
    writeFileSync(
      join(dir, 'oauth.config.ts'),
      `export default { ...${JSON.stringify(config)}, kafka: { ...${JSON.stringify(config.kafka)}, sasl: { mechanism: 'OAUTHBEARER', oauthBearer: async () => ({ token: ${JSON.stringify(token)}, expiresAt: Date.now() + 3_600_000 }) } } };\n`,
    );
    const common = {
      TEAL_BLUE_URL: blueUrl(),
      TEAL_GREEN_URL: greenUrl(),
      TEAL_KAFKA_BROKERS: kafka.saslSsl,
      TEAL_KAFKA_TLS_CA: kafka.ca,
      TEAL_KAFKA_TLS_CERT: kafka.clientCert,
      TEAL_KAFKA_TLS_KEY: keyFile,
      TEAL_KAFKA_TLS_KEY_PASSPHRASE: passphrase,
    };
    const scram = {
      ...common,
      TEAL_KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
      TEAL_KAFKA_SASL_USERNAME: kafka.scram.username,
    };

    const port = await freePort();
    const run = teal(
      ['run'],
      { ...scram, TEAL_KAFKA_SASL_PASSWORD: kafka.scram.password, TEAL_API_PORT: String(port) },
      dir,
    );
    const api = `http://127.0.0.1:${port}`;
    await apiUp(run, api);
    await blue.query(`INSERT INTO public.${name} VALUES (1, 'one')`);
    await waitFor(async () => (await green.query(`SELECT v FROM public.${name}`)).rows.length === 1, {
      what: 'row replicated through SASL_SSL',
      timeoutMs: 60_000,
    });
    expectNoSecrets(await (await fetch(`${api}/status`)).text(), secrets);
    run.proc.kill('SIGTERM');
    await run.exited;
    expectNoSecrets(run.output(), secrets);

    const plain = {
      ...common,
      TEAL_KAFKA_SASL_MECHANISM: 'PLAIN',
      TEAL_KAFKA_SASL_USERNAME: kafka.plain.username,
      TEAL_KAFKA_SASL_PASSWORD_FILE: plainFile,
    };
    // Three checks side by side (each is a teal start): PLAIN from a file, the token hook, a wrong password.
    const checks = [
      teal(['check'], plain, dir),
      teal(['check', '--config', 'oauth.config.ts'], common, dir),
      teal(['check'], { ...scram, TEAL_KAFKA_SASL_PASSWORD: wrong }, dir),
    ];
    const codes = await Promise.all(
      checks.map((c) => Promise.race([c.exited, new Promise((r) => setTimeout(() => r('timeout'), 60_000))])),
    );
    for (const [i, what] of ['PLAIN, password file', 'OAUTHBEARER'].entries()) {
      expect(checks[i]!.output(), what).toMatch(/1 table checked: 0 blocking/);
      expectNoSecrets(checks[i]!.output(), secrets);
    }
    // The wrong password ends teal check at once, naming the user.
    const out = checks[2]!.output();
    expect(codes[2], `teal check did not exit:\n${out}`).not.toBe('timeout');
    expect(out).toMatch(/refused the SASL SCRAM-SHA-512 login of user "teal-scram"/);
    expectNoSecrets(out, secrets);
  });
});
