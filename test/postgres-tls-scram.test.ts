import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isRetriablePgError, TealError } from '@teal/errors';
import { KafkaClient } from '@teal/kafka';
import { connectClient, createPool } from '@teal/postgres';
import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { type ScratchPostgres, startScratchPostgres } from '../soak/scratch-postgres.ts';
import { freePort, kafkaBrokers, uniqueName } from './support/env.ts';
import {
  makeTestCertificates,
  type SecurePostgres,
  startSecurePostgres,
  type TestCertificates,
} from './support/secure-postgres.ts';
import { spawnTeal, type TealChild } from './support/teal-child.ts';

// Issue 14 item 1: every connection teal makes speaks TLS with libpq's sslmode and logs in
// with a SCRAM (or md5) password that is not in the URL. The servers here let nobody in over
// TCP without TLS and a password (hostssl ... scram-sha-256); a wrong CA, a wrong password
// and a server without TLS each fail once, at once, with a TealError that names the server
// and the fix.

const PASSWORD = 'Scram-pw-7f3a9c';
const MD5_PASSWORD = 'md5-pw-51be0d';

let certs: TestCertificates;
let secure: SecurePostgres;
let plain: ScratchPostgres;

/** Sets PG* variables for one test (teal reads them where it builds a connection). */
function withEnv(vars: Record<string, string | undefined>): void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  onTestFinished(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}

function verifyFull(url: string, ca = certs.caFile): string {
  return `${url}?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}`;
}

async function sslOf(client: pg.Client | pg.Pool): Promise<{ ssl: string; version: string | null }> {
  const { rows } = await client.query('SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
  return rows[0];
}

/** The one error of a connect, with how long it took (a hang or a retry loop would show). */
async function connectError(url: string): Promise<{ err: TealError; ms: number }> {
  const started = Date.now();
  const err = await connectClient(url, {
    applicationName: 'teal-tls-test',
    connectionTimeoutMillis: 10_000,
  }).then(
    async (c) => {
      await c.end();
      throw new Error(`connected to ${url}, expected a refusal`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TealError);
  return { err: err as TealError, ms: Date.now() - started };
}

beforeAll(async () => {
  certs = makeTestCertificates();
  secure = await startSecurePostgres(certs, {
    extraHba: ['hostssl all teal_md5 127.0.0.1/32 md5'],
  });
  plain = await startScratchPostgres();
  const admin = await secure.admin();
  try {
    await admin.query(`CREATE ROLE teal LOGIN REPLICATION PASSWORD '${PASSWORD}'`);
    await admin.query(
      `SET password_encryption = 'md5'; CREATE ROLE teal_md5 LOGIN PASSWORD '${MD5_PASSWORD}'`,
    );
    // The stored verifiers say which mechanism each login uses.
    const { rows } = await admin.query(
      "SELECT rolname, left(rolpassword, 3) AS kind FROM pg_authid WHERE rolname LIKE 'teal%' ORDER BY 1",
    );
    expect(rows).toEqual([
      { rolname: 'teal', kind: 'SCR' },
      { rolname: 'teal_md5', kind: 'md5' },
    ]);
  } finally {
    await admin.end();
  }
}, 120_000);

afterAll(() => {
  secure?.destroy();
  plain?.destroy();
  certs?.remove();
});

describe('Postgres over TLS with SCRAM and md5 passwords', () => {
  test('verify-full with PGPASSWORD: a client, a pool and a walsender session are all TLS, logged in by SCRAM', async () => {
    withEnv({ PGPASSWORD: PASSWORD, PGPASSFILE: '/nonexistent' });
    const url = verifyFull(secure.tcpUrl('teal'));
    const client = await connectClient(url, { applicationName: 'teal-tls-test' });
    onTestFinished(() => client.end());
    expect(await sslOf(client)).toMatchObject({ ssl: 't' });
    const pool = createPool(url, { applicationName: 'teal-tls-test', max: 2 });
    onTestFinished(() => pool.end());
    expect(await sslOf(pool)).toMatchObject({ ssl: 't' });
    const walsender = await connectClient(url, { applicationName: 'teal-tls-test', replication: 'database' });
    onTestFinished(() => walsender.end());
    expect((await walsender.query('IDENTIFY_SYSTEM')).rows[0]).toMatchObject({ dbname: 'postgres' });
  });

  test('a passfile (PGPASSFILE, mode 0600) gives the password; one others can read is ignored, as libpq does, and the error says so', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'teal-passfile-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'pgpass');
    writeFileSync(file, `# teal test\n127.0.0.1:${secure.port}:*:teal:${PASSWORD.replace(/:/g, '\\:')}\n`);
    chmodSync(file, 0o600);
    withEnv({ PGPASSWORD: undefined, PGPASSFILE: file });
    const client = await connectClient(verifyFull(secure.tcpUrl('teal')), {
      applicationName: 'teal-tls-test',
    });
    expect(await sslOf(client)).toMatchObject({ ssl: 't' });
    await client.end();
    chmodSync(file, 0o644);
    const { err } = await connectError(verifyFull(secure.tcpUrl('teal')));
    expect(err.code).toBe('TEAL_PG_AUTH');
    expect(err.message).toMatch(
      /asks for a password.*PGPASSWORD.*was ignored: group or others can read it; chmod 0600/,
    );
  });

  test('an md5 password works too (a hostssl ... md5 line)', async () => {
    withEnv({ PGPASSWORD: MD5_PASSWORD });
    const client = await connectClient(verifyFull(secure.tcpUrl('teal_md5')), {
      applicationName: 'teal-tls-test',
    });
    onTestFinished(() => client.end());
    expect(await sslOf(client)).toMatchObject({ ssl: 't' });
  });

  test('the password in the URL still works and outranks PGPASSWORD', async () => {
    withEnv({ PGPASSWORD: 'not-this-one' });
    const u = new URL(verifyFull(secure.tcpUrl('teal')));
    u.password = PASSWORD;
    const client = await connectClient(u.toString(), { applicationName: 'teal-tls-test' });
    onTestFinished(() => client.end());
    expect(await sslOf(client)).toMatchObject({ ssl: 't' });
  });

  test('PGSSLMODE and PGSSLROOTCERT apply when the URL says nothing; prefer (the default) takes TLS when offered', async () => {
    withEnv({ PGPASSWORD: PASSWORD, PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.otherCaFile });
    expect((await connectError(secure.tcpUrl('teal'))).err.code).toBe('TEAL_PG_TLS');
    withEnv({ PGSSLROOTCERT: certs.caFile });
    const strict = await connectClient(secure.tcpUrl('teal'), { applicationName: 'teal-tls-test' });
    await strict.end();
    withEnv({ PGSSLMODE: undefined, PGSSLROOTCERT: undefined });
    const preferred = await connectClient(secure.tcpUrl('teal'), { applicationName: 'teal-tls-test' });
    onTestFinished(() => preferred.end());
    expect(await sslOf(preferred)).toMatchObject({ ssl: 't' });
  });
});

describe('each failure is one clear error, at once', () => {
  test('a wrong CA under verify-full: TEAL_PG_TLS naming the server and sslrootcert', async () => {
    withEnv({ PGPASSWORD: PASSWORD });
    const { err, ms } = await connectError(verifyFull(secure.tcpUrl('teal'), certs.otherCaFile));
    expect(err.code).toBe('TEAL_PG_TLS');
    expect(err.retriable).toBe(false);
    expect(isRetriablePgError(err)).toBe(false);
    expect(err.message).toContain(`Postgres at 127.0.0.1:${secure.port}`);
    expect(err.message).toMatch(/sslrootcert=.*PGSSLROOTCERT/);
    expect(ms).toBeLessThan(5_000);
  });

  test('a wrong password: TEAL_PG_AUTH (28P01), not retriable, and the password is nowhere in it', async () => {
    withEnv({ PGPASSWORD: `${PASSWORD}-wrong` });
    const pool = createPool(verifyFull(secure.tcpUrl('teal')), { applicationName: 'teal-tls-test', max: 1 });
    onTestFinished(() => pool.end());
    const started = Date.now();
    const err = await pool.query('SELECT 1').then(
      () => undefined,
      (e: unknown) => e as TealError,
    );
    expect(err).toBeInstanceOf(TealError);
    expect(err?.code).toBe('TEAL_PG_AUTH');
    expect(isRetriablePgError(err)).toBe(false);
    expect(err?.message).toMatch(
      /Postgres at 127\.0\.0\.1:\d+ \(database "postgres", user "teal"\) refused the login \(28P01/,
    );
    expect(err?.message).toMatch(/PGPASSWORD/);
    expect(err?.message).not.toContain(PASSWORD);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  test('a server without TLS under verify-full: TEAL_PG_TLS "does not accept TLS"; under prefer it connects in plaintext', async () => {
    const { err, ms } = await connectError(verifyFull(plain.url));
    expect(err.code).toBe('TEAL_PG_TLS');
    expect(err.message).toMatch(
      new RegExp(`Postgres at 127\\.0\\.0\\.1:${plain.port} .*does not accept TLS connections.*ssl = on`),
    );
    expect(ms).toBeLessThan(5_000);
    const fallback = await connectClient(plain.url, { applicationName: 'teal-tls-test' });
    onTestFinished(() => fallback.end());
    expect(await sslOf(fallback)).toMatchObject({ ssl: 'f' });
  });

  test("sslmode=allow: plaintext first, and over TLS when the server's pg_hba rejects plaintext (hostssl only)", async () => {
    withEnv({ PGPASSWORD: PASSWORD });
    const onSecure = await connectClient(`${secure.tcpUrl('teal')}?sslmode=allow`, {
      applicationName: 'teal-tls-test',
    });
    onTestFinished(() => onSecure.end());
    expect(await sslOf(onSecure)).toMatchObject({ ssl: 't' });
    const onPlain = await connectClient(`${plain.url}?sslmode=allow`, { applicationName: 'teal-tls-test' });
    onTestFinished(() => onPlain.end());
    expect(await sslOf(onPlain)).toMatchObject({ ssl: 'f' });
    // Refused both ways (a wrong password): the one error is the login's.
    withEnv({ PGPASSWORD: 'wrong' });
    const { err } = await connectError(`${secure.tcpUrl('teal')}?sslmode=allow`);
    expect(err.code).toBe('TEAL_PG_AUTH');
  });

  test('verify-ca checks the chain but not the host name; verify-full refuses a certificate for another name', async () => {
    const misnamed = await startSecurePostgres(certs, {
      server: { certFile: certs.misnamedCertFile, keyFile: certs.misnamedKeyFile },
    });
    onTestFinished(() => misnamed.destroy());
    const admin = await misnamed.admin();
    await admin.query(`CREATE ROLE teal LOGIN PASSWORD '${PASSWORD}'`);
    await admin.end();
    withEnv({ PGPASSWORD: PASSWORD });
    const url = misnamed.tcpUrl('teal');
    const ca = await connectClient(
      `${url}?sslmode=verify-ca&sslrootcert=${encodeURIComponent(certs.caFile)}`,
      {
        applicationName: 'teal-tls-test',
      },
    );
    expect(await sslOf(ca)).toMatchObject({ ssl: 't' });
    await ca.end();
    const { err } = await connectError(verifyFull(url));
    expect(err.code).toBe('TEAL_PG_TLS');
    expect(err.message).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID.*subjectAltName.*verify-ca/);
    // verify-ca still checks the chain.
    const wrong = await connectError(
      `${url}?sslmode=verify-ca&sslrootcert=${encodeURIComponent(certs.otherCaFile)}`,
    );
    expect(wrong.err.code).toBe('TEAL_PG_TLS');
  });

  test('a client certificate (PGSSLCERT/PGSSLKEY, or sslcert/sslkey in the URL) logs in where pg_hba says cert; without one the refusal says so', async () => {
    const server = await startSecurePostgres(certs, {
      clientCa: true,
      extraHba: ['hostssl all teal 127.0.0.1/32 cert'],
    });
    onTestFinished(() => server.destroy());
    const admin = await server.admin();
    await admin.query('CREATE ROLE teal LOGIN');
    await admin.end();
    withEnv({
      PGPASSWORD: undefined,
      PGPASSFILE: '/nonexistent',
      PGSSLCERT: certs.clientCertFile,
      PGSSLKEY: certs.clientKeyFile,
    });
    const byEnv = await connectClient(verifyFull(server.tcpUrl('teal')), {
      applicationName: 'teal-tls-test',
    });
    expect(await sslOf(byEnv)).toMatchObject({ ssl: 't' });
    await byEnv.end();
    withEnv({ PGSSLCERT: '/nonexistent/client.crt', PGSSLKEY: undefined });
    const { err } = await connectError(verifyFull(server.tcpUrl('teal')));
    expect(err.code).toBe('TEAL_PG_AUTH');
    const inUrl = `${verifyFull(server.tcpUrl('teal'))}&sslcert=${encodeURIComponent(certs.clientCertFile)}&sslkey=${encodeURIComponent(certs.clientKeyFile)}`;
    const byUrl = await connectClient(inUrl, { applicationName: 'teal-tls-test' });
    onTestFinished(() => byUrl.end());
    expect(await sslOf(byUrl)).toMatchObject({ ssl: 't' });
  });

  test('no password anywhere: TEAL_PG_AUTH naming PGPASSWORD and the passfile line to add', async () => {
    withEnv({ PGPASSWORD: undefined, PGPASSFILE: '/nonexistent/pgpass' });
    const { err } = await connectError(verifyFull(secure.tcpUrl('teal')));
    expect(err.code).toBe('TEAL_PG_AUTH');
    expect(err.message).toContain(`127.0.0.1:${secure.port}:postgres:teal:<password> to /nonexistent/pgpass`);
  });
});

// ---- the whole pipeline through TLS + SCRAM ----

const BLUE_PASSWORD = 'Blue-scram-2c81e4';
const GREEN_PASSWORD = 'Green-scram-94d07b';

/** `npx teal <args>` as a child, with exactly the environment given on top of ours minus PG* and TEAL_*. */
function teal(args: string[], env: Record<string, string>, cwd: string): TealChild {
  return spawnTeal(args, { cwd, env: { TEAL_LOG_LEVEL: 'debug', ...env }, dropEnv: ['PG', 'TEAL_'] });
}

async function post(url: string, body: unknown = {}): Promise<Record<string, unknown>> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  expect(res.status, JSON.stringify(json)).toBe(200);
  return json;
}

/** A superuser of its own with a SCRAM password, database `app` with `ddl`, on a secure cluster. */
async function prepare(
  server: SecurePostgres,
  user: string,
  password: string,
  ddl: string,
): Promise<pg.Client> {
  const admin = await server.admin();
  await admin.query(`CREATE ROLE ${user} SUPERUSER LOGIN PASSWORD '${password}'`);
  await admin.query(`CREATE DATABASE app OWNER ${user}`);
  await admin.end();
  const app = await server.admin('app');
  onTestFinished(() => app.end().catch(() => {}));
  await app.query(ddl);
  return app;
}

describe('the pipeline with blue and green behind TLS + SCRAM', () => {
  test('teal run: snapshot, stream, drain, verify and cutover with sslmode=verify-full, the test CA and passwords from a passfile', async () => {
    const name = uniqueName('tls_pipe');
    const ddl = 'CREATE TABLE items (id serial PRIMARY KEY, v text NOT NULL)';
    const green = await startSecurePostgres(certs);
    onTestFinished(() => green.destroy());
    const blueApp = await prepare(secure, 'teal_blue', BLUE_PASSWORD, ddl);
    const greenApp = await prepare(green, 'teal_green', GREEN_PASSWORD, ddl);
    onTestFinished(async () => {
      const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: name });
      const admin = kafka.admin();
      await admin.deleteTopics(await admin.listTopics(`${name}.`)).catch(() => undefined);
      await admin.close();
      await kafka.close();
      const a = await secure.admin();
      await a.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active');
      await a.query('DROP DATABASE IF EXISTS app WITH (FORCE)');
      await a.query('DROP ROLE IF EXISTS teal_blue');
      await a.end();
    });
    await blueApp.query("INSERT INTO items (v) SELECT 'snap ' || g FROM generate_series(1, 200) g");

    const dir = mkdtempSync(path.join(tmpdir(), 'teal-tls-pipeline-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const passfile = path.join(dir, 'pgpass');
    writeFileSync(
      passfile,
      `127.0.0.1:${secure.port}:app:teal_blue:${BLUE_PASSWORD}\n127.0.0.1:${green.port}:app:teal_green:${GREEN_PASSWORD}\n`,
    );
    chmodSync(passfile, 0o600);
    writeFileSync(
      path.join(dir, 'teal.config.ts'),
      `export default ${JSON.stringify({ slot: name, publication: name, tables: ['public.items'], heartbeatMs: 500, kafka: { topicPrefix: name, partitions: 2 } })};\n`,
    );
    const port = await freePort();
    const api = `http://127.0.0.1:${port}`;
    const child = teal(
      ['run'],
      {
        TEAL_BLUE_URL: verifyFull(secure.tcpUrl('teal_blue', 'app')),
        TEAL_GREEN_URL: verifyFull(green.tcpUrl('teal_green', 'app')),
        TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
        TEAL_API_PORT: String(port),
        PGPASSFILE: passfile,
      },
      dir,
    );
    await waitFor(
      async () => {
        if (child.proc.exitCode !== null) throw new Error(`teal run exited early:\n${child.output()}`);
        return (await fetch(`${api}/healthz`).catch(() => undefined))?.ok || undefined;
      },
      { what: 'control API up', timeoutMs: 90_000 },
    );
    const greenCount = async () => (await greenApp.query('SELECT count(*)::int AS n FROM items')).rows[0].n;
    await waitFor(async () => (await greenCount()) === 200, {
      what: 'the snapshot in green',
      timeoutMs: 90_000,
    });

    await blueApp.query("INSERT INTO items (v) SELECT 'stream ' || g FROM generate_series(1, 50) g");
    await blueApp.query("UPDATE items SET v = v || ' (updated)' WHERE id % 10 = 0");
    await blueApp.query('DELETE FROM items WHERE id % 25 = 0');
    const drain = await post(`${api}/drain`, { timeoutMs: 60_000 });
    expect(drain).toMatchObject({ drained: true, clean: true });
    expect(await greenCount()).toBe(240);
    const verify = await post(`${api}/verify`);
    expect(verify, JSON.stringify(verify)).toMatchObject({ ok: true });
    // Every session teal holds on either side, the walsender included, is TLS.
    const sessions = async (db: pg.Client, user: string) =>
      (
        await db.query(
          `SELECT a.backend_type, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = $1`,
          [user],
        )
      ).rows as { backend_type: string; ssl: boolean | string }[];
    const blueSessions = await sessions(blueApp, 'teal_blue');
    expect(blueSessions.map((r) => r.backend_type)).toContain('walsender');
    expect(blueSessions.every((r) => r.ssl === true || r.ssl === 't')).toBe(true);
    const greenSessions = await sessions(greenApp, 'teal_green');
    expect(greenSessions.length).toBeGreaterThan(0);
    expect(greenSessions.every((r) => r.ssl === true || r.ssl === 't')).toBe(true);

    const cutover = await post(`${api}/cutover`, { timeoutMs: 60_000 });
    expect(cutover, JSON.stringify(cutover)).toMatchObject({ safeToSwitch: true, fenced: true });
    // The sequence came along: green's next id follows blue's last.
    const nextGreen = (await greenApp.query("SELECT nextval('items_id_seq')::int AS n")).rows[0].n;
    expect(nextGreen).toBeGreaterThan(250);

    const status = await (await fetch(`${api}/status`)).text();
    child.proc.kill('SIGTERM');
    expect(await child.exited).toBe(0);
    for (const secret of [BLUE_PASSWORD, GREEN_PASSWORD]) {
      expect(child.output()).not.toContain(secret);
      expect(status).not.toContain(secret);
    }
  });
});
