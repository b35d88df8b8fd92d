import { TealError } from '@teal/errors';
import { describe, expect, it } from 'vitest';
import { TRANSIENT_MS, transientLevel } from './kafkajs/connection.ts';
import { oauthTokenSource, securityError, tlsOptions } from './security.ts';

describe('oauthTokenSource', () => {
  it('reuses a token until a fifth of its lifetime is left, then asks the hook again', async () => {
    let now = 1_000_000;
    let calls = 0;
    const source = oauthTokenSource(
      async () => ({ token: `t${++calls}`, expiresAt: now + 600_000 }),
      () => now,
    );
    expect((await source()).token).toBe('t1');
    now += 470_000; // 130 s left of 600: more than 120 s
    expect((await source()).token).toBe('t1');
    now += 20_000; // 110 s left: refresh, before expiry
    expect((await source()).token).toBe('t2');
    expect(calls).toBe(2);
  });

  it('asks once for concurrent connects', async () => {
    let calls = 0;
    const source = oauthTokenSource(async () => ({ token: `t${++calls}` }));
    const tokens = await Promise.all([source(), source(), source()]);
    expect(tokens.map((t) => t.token)).toEqual(['t1', 't1', 't1']);
  });

  it('turns a throwing hook or a missing token into TEAL_KAFKA_AUTH, not retriable', async () => {
    const thrown = await oauthTokenSource(async () => {
      throw new Error('idp down');
    })().catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(TealError);
    expect(thrown).toMatchObject({ code: 'TEAL_KAFKA_AUTH', retriable: false });
    expect((thrown as Error).message).toContain('idp down');
    const empty = await oauthTokenSource(async () => ({ token: '' }))().catch((e: unknown) => e);
    expect(empty).toMatchObject({ code: 'TEAL_KAFKA_AUTH' });
  });
});

describe('securityError', () => {
  const options = {
    brokers: ['b:9093'],
    tls: {},
    sasl: { mechanism: 'SCRAM-SHA-256' as const, username: 'alice', password: () => 'pw-secret' },
  };
  it('names the brokers and the fix for a certificate Node refused', () => {
    const err = Object.assign(new Error('self-signed certificate in certificate chain'), {
      code: 'SELF_SIGNED_CERT_IN_CHAIN',
    });
    const wrapped = securityError(
      new Error('Connection failed', { cause: err }),
      'cannot list topics',
      options,
    );
    expect(wrapped).toMatchObject({ code: 'TEAL_KAFKA_TLS', retriable: false });
    expect(wrapped?.message).toMatch(/TLS to b:9093 failed \(SELF_SIGNED_CERT_IN_CHAIN\).*kafka\.tls\.ca/);
  });
  it('names the user, never the password, for a refused login', () => {
    const wrapped = securityError(new Error('SASL SCRAM SHA256 authentication failed'), 'connect', options);
    expect(wrapped).toMatchObject({ code: 'TEAL_KAFKA_AUTH' });
    expect(wrapped?.message).toContain('user "alice"');
    expect(wrapped?.message).not.toContain('pw-secret');
  });
  it('leaves other failures to the retrying path', () => {
    expect(securityError(new Error('connect ECONNREFUSED'), 'connect', options)).toBeUndefined();
  });
});

describe('tlsOptions', () => {
  it('checks the chain always, the host name unless verifyHostname is false', () => {
    expect(tlsOptions({ ca: 'CA' })).toEqual({ ca: 'CA', rejectUnauthorized: true });
    const off = tlsOptions({ verifyHostname: false, key: () => 'K', passphrase: () => 'P' });
    expect(off).toMatchObject({ rejectUnauthorized: true, key: 'K', passphrase: 'P' });
    expect(off.checkServerIdentity?.('h', {} as never)).toBeUndefined();
  });
});

describe('kafkajs log levels: a transient coordinator answer is debug, a persistent one a warning', () => {
  it('keeps "group coordinator is not available" at debug during a normal join, warns once it lasts', () => {
    const episodes = new Map();
    const text = 'Response GroupCoordinator(key: 10, version: 2) The group coordinator is not available';
    expect(transientLevel(episodes, text, 0)).toBe('debug');
    expect(transientLevel(episodes, text, 2_000)).toBe('debug');
    // kafkajs asks again every few seconds while it lasts.
    const levels = [];
    for (let t = 4_000; t <= TRANSIENT_MS + 4_000; t += 4_000) levels.push(transientLevel(episodes, text, t));
    expect(levels.at(-1)).toBe('warn');
    expect(levels.filter((l) => l === 'debug').length).toBeGreaterThan(0);
    // Over and begun again later: a new episode.
    expect(transientLevel(episodes, text, TRANSIENT_MS + 60_000)).toBe('debug');
    expect(transientLevel(new Map(), 'Connection error: ECONNREFUSED', 0)).toBe('warn');
  });
});
