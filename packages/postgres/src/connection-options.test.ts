import { TealError } from '@teal/errors';
import { describe, expect, it } from 'vitest';
import {
  authError,
  connectionPlan,
  isTlsError,
  parsePassfile,
  passfileLookup,
  tlsFailedError,
  tlsRefusedError,
} from './connection-options.ts';

const server = { host: 'db.example.com', port: 5432, user: 'teal', database: 'app' };

describe('connectionPlan: libpq sslmode semantics', () => {
  it('defaults to prefer: TLS first, plaintext when refused, nothing verified without a root cert', () => {
    const plan = connectionPlan('postgres://teal@db.example.com/app', {});
    expect(plan.tls).toMatchObject({
      sslmode: 'prefer',
      tls: 'fallback',
      chainRequired: false,
      verifyHost: false,
    });
    expect(plan.tls.rootCert).toBeUndefined();
  });

  it.each([
    ['disable', 'off', false, false],
    ['allow', 'plaintext-first', false, false],
    ['prefer', 'fallback', false, false],
    ['require', 'required', false, false],
    ['verify-ca', 'required', true, false],
    ['verify-full', 'required', true, true],
  ] as const)('sslmode=%s: tls %s, chain required %s, host checked %s', (mode, tls, chain, host) => {
    const plan = connectionPlan(`postgres://teal@h/app?sslmode=${mode}`, {});
    expect(plan.tls).toMatchObject({ sslmode: mode, tls, chainRequired: chain, verifyHost: host });
  });

  it('the URL outranks PGSSLMODE and PGSSLROOTCERT, which outrank the defaults under HOME', () => {
    const env = { PGSSLMODE: 'verify-full', PGSSLROOTCERT: '/env/ca.pem', HOME: '/home/u' };
    expect(connectionPlan('postgres://h/app?sslmode=require&sslrootcert=/url/ca.pem', env).tls).toMatchObject(
      {
        sslmode: 'require',
        rootCert: '/url/ca.pem',
        rootCertExplicit: true,
      },
    );
    expect(connectionPlan('postgres://h/app', env).tls).toMatchObject({
      sslmode: 'verify-full',
      rootCert: '/env/ca.pem',
    });
    expect(connectionPlan('postgres://h/app', { HOME: '/home/u/' }).tls).toMatchObject({
      rootCert: '/home/u/.postgresql/root.crt',
      rootCertExplicit: false,
      clientCert: '/home/u/.postgresql/postgresql.crt',
      clientKey: '/home/u/.postgresql/postgresql.key',
    });
  });

  it('takes the password and every TLS parameter out of the URL pg sees, keeping the rest', () => {
    const plan = connectionPlan(
      'postgres://teal:p%40ss%3Aw@h:6432/app?sslmode=verify-ca&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/k.pem&application_name=x',
      {},
    );
    expect(plan.urlPassword).toBe('p@ss:w');
    expect(plan.url).toBe('postgres://teal@h:6432/app?application_name=x');
    expect(plan.tls).toMatchObject({ clientCert: '/c.pem', clientKey: '/k.pem' });
  });

  it("reads node-postgres's ssl=true as verify-full (what it meant there), ssl=no-verify as require", () => {
    expect(connectionPlan('postgres://h/app?ssl=true', {}).tls.sslmode).toBe('verify-full');
    expect(connectionPlan('postgres://h/app?ssl=no-verify', {}).tls.sslmode).toBe('require');
    expect(connectionPlan('postgres://h/app?ssl=false', {}).tls.sslmode).toBe('disable');
  });

  it('refuses an unknown sslmode with what to change, without the password', () => {
    const err = (() => {
      try {
        connectionPlan('postgres://teal:hunter2@h/app?sslmode=verify', {});
      } catch (e) {
        return e as TealError;
      }
    })();
    expect(err).toBeInstanceOf(TealError);
    expect(err?.code).toBe('TEAL_CONFIG_INVALID');
    expect(err?.message).toMatch(/sslmode "verify".*disable, allow, prefer, require, verify-ca, verify-full/);
    expect(err?.message).not.toContain('hunter2');
    expect(() => connectionPlan('postgres://h/app', { PGSSLMODE: 'on' })).toThrow(/PGSSLMODE/);
  });
});

describe('passfile', () => {
  const text = [
    '# comment',
    'db.example.com:5432:app:teal:first',
    'db.example.com:5432:app:teal:second',
    '*:*:*:other:wild\\:card\\\\',
    'localhost:5433:*:teal:socket',
    'broken:line',
    '',
  ].join('\n');

  it('parses fields with \\: and \\\\ escapes, skipping comments and short lines', () => {
    expect(parsePassfile(text)).toHaveLength(4);
    expect(parsePassfile(text)[2]).toEqual({
      host: '*',
      port: '*',
      database: '*',
      user: 'other',
      password: 'wild:card\\',
    });
  });

  it('takes the first matching line; * matches anything; localhost also matches a unix socket', () => {
    const entries = parsePassfile(text);
    expect(passfileLookup(entries, server)).toBe('first');
    expect(passfileLookup(entries, { ...server, user: 'other', port: 1 })).toBe('wild:card\\');
    expect(passfileLookup(entries, { host: '/tmp', port: 5433, database: 'x', user: 'teal' })).toBe('socket');
    expect(passfileLookup(entries, { ...server, database: 'nope' })).toBeUndefined();
  });

  it('a password with a colon at the end of the line is kept whole', () => {
    expect(parsePassfile('h:1:d:u:a:b:c')[0]?.password).toBe('a:b:c');
  });
});

describe('what a failed connection says', () => {
  it('knows TLS failures by code, not by text', () => {
    for (const code of [
      'SELF_SIGNED_CERT_IN_CHAIN',
      'ERR_TLS_CERT_ALTNAME_INVALID',
      'ERR_SSL_WRONG_VERSION_NUMBER',
    ])
      expect(isTlsError(Object.assign(new Error('x'), { code }))).toBe(true);
    for (const code of ['ECONNREFUSED', '28P01', undefined])
      expect(isTlsError(Object.assign(new Error('certificate'), { code }))).toBe(false);
  });

  it('every message names the server and the fix, and none is retriable', () => {
    const plan = connectionPlan('postgres://h/app?sslmode=verify-full&sslrootcert=/ca.pem', {}).tls;
    const errors = [
      tlsRefusedError(server, 'verify-full'),
      tlsFailedError(
        server,
        plan,
        Object.assign(new Error('self-signed certificate in certificate chain'), {
          code: 'SELF_SIGNED_CERT_IN_CHAIN',
        }),
      ),
      tlsFailedError(
        server,
        plan,
        Object.assign(new Error("Hostname/IP does not match certificate's altnames"), {
          code: 'ERR_TLS_CERT_ALTNAME_INVALID',
        }),
      ),
      authError(
        server,
        '28P01',
        Object.assign(new Error('password authentication failed for user "teal"'), { code: '28P01' }),
      ),
    ];
    for (const err of errors) {
      expect(err.retriable).toBe(false);
      expect(err.message).toContain('Postgres at db.example.com:5432 (database "app", user "teal")');
    }
    expect(errors.map((e) => e.code)).toEqual(['TEAL_PG_TLS', 'TEAL_PG_TLS', 'TEAL_PG_TLS', 'TEAL_PG_AUTH']);
    expect(errors[0]?.message).toMatch(/ssl = on/);
    expect(errors[1]?.message).toMatch(/sslrootcert=.*"\/ca.pem"/);
    expect(errors[2]?.message).toMatch(/subjectAltName.*verify-ca/);
    expect(errors[3]?.message).toMatch(/PGPASSWORD.*passfile/);
  });
});
