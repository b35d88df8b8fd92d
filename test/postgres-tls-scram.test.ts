import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isRetriablePgError, TealError } from '@teal/errors';
import { connectClient, createPool } from '@teal/postgres';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { type ScratchPostgres, startScratchPostgres } from '../soak/scratch-postgres.ts';
import {
  makeTestCertificates,
  type SecurePostgres,
  startSecurePostgres,
  type TestCertificates,
} from './support/secure-postgres.ts';

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

  test('no password anywhere: TEAL_PG_AUTH naming PGPASSWORD and the passfile line to add', async () => {
    withEnv({ PGPASSWORD: undefined, PGPASSFILE: '/nonexistent/pgpass' });
    const { err } = await connectError(verifyFull(secure.tcpUrl('teal')));
    expect(err.code).toBe('TEAL_PG_AUTH');
    expect(err.message).toContain(`127.0.0.1:${secure.port}:postgres:teal:<password> to /nonexistent/pgpass`);
  });
});
