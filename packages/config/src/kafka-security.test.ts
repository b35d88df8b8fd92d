import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TealError } from '@teal/errors';
import { describe, expect, it, onTestFinished } from 'vitest';
import { resolveConfig } from './resolve-config.ts';

const PEM_CERT = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
const PEM_KEY = '-----BEGIN PRIVATE KEY-----\nMIIEsecretkeybody\n-----END PRIVATE KEY-----\n';

function files(): { dir: string; write(name: string, text: string): string } {
  const dir = mkdtempSync(join(tmpdir(), 'teal-kafka-sec-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return {
    dir,
    write(name, text) {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
  };
}

function problems(input: unknown, env: Record<string, string> = {}): string[] {
  try {
    resolveConfig(input, { env });
  } catch (err) {
    expect((err as TealError).code).toBe('TEAL_CONFIG_INVALID');
    return (err as TealError).details?.problems as string[];
  }
  throw new Error('expected the config to be refused');
}

describe('kafka.tls and kafka.sasl', () => {
  it('leave both off by default (plaintext, no login)', () => {
    const config = resolveConfig(undefined);
    expect(config.kafka.tls).toBeUndefined();
    expect(config.kafka.sasl).toBeUndefined();
  });

  it('read the CA, client cert and key from files, the password from a file, and keep secrets out of JSON', () => {
    const f = files();
    const config = resolveConfig({
      kafka: {
        tls: {
          ca: f.write('ca.pem', PEM_CERT),
          cert: f.write('c.pem', PEM_CERT),
          key: f.write('k.pem', PEM_KEY),
        },
        sasl: { mechanism: 'scram-sha-512', username: 'teal', passwordFile: f.write('pw', 'p4ss-secret\n') },
      },
    });
    expect(config.kafka.tls).toMatchObject({ ca: PEM_CERT, cert: PEM_CERT, verifyHostname: true });
    expect(config.kafka.tls?.key?.()).toBe(PEM_KEY);
    expect(config.kafka.sasl).toMatchObject({ mechanism: 'SCRAM-SHA-512', username: 'teal' });
    expect(config.kafka.sasl?.mechanism !== 'OAUTHBEARER' && config.kafka.sasl?.password()).toBe(
      'p4ss-secret',
    );
    const dumped = JSON.stringify(config);
    expect(dumped).not.toContain('p4ss-secret');
    expect(dumped).not.toContain('secretkeybody');
  });

  it('take everything from TEAL_KAFKA_* variables, which win over the file', () => {
    const f = files();
    const config = resolveConfig(
      { kafka: { sasl: { mechanism: 'PLAIN', username: 'file-user', password: 'file-pw' } } },
      {
        env: {
          TEAL_KAFKA_TLS_CA: f.write('ca.pem', PEM_CERT),
          TEAL_KAFKA_TLS_VERIFY_HOSTNAME: '0',
          TEAL_KAFKA_SASL_MECHANISM: 'SCRAM-SHA-256',
          TEAL_KAFKA_SASL_USERNAME: 'env-user',
          TEAL_KAFKA_SASL_PASSWORD_FILE: f.write('pw', 'env-pw'),
        },
      },
    );
    expect(config.kafka.tls).toMatchObject({ ca: PEM_CERT, verifyHostname: false });
    expect(config.kafka.sasl).toMatchObject({ mechanism: 'SCRAM-SHA-256', username: 'env-user' });
    expect(config.kafka.sasl?.mechanism !== 'OAUTHBEARER' && config.kafka.sasl?.password()).toBe('env-pw');
    // TEAL_KAFKA_TLS=1 alone: TLS with Node's CAs.
    expect(resolveConfig(undefined, { env: { TEAL_KAFKA_TLS: '1' } }).kafka.tls).toMatchObject({
      ca: undefined,
      verifyHostname: true,
    });
  });

  it('take an OAUTHBEARER token hook from the file', () => {
    const hook = async () => ({ token: 't' });
    const config = resolveConfig({
      kafka: { tls: true, sasl: { mechanism: 'OAUTHBEARER', oauthBearer: hook } },
    });
    expect(config.kafka.sasl).toEqual({ mechanism: 'OAUTHBEARER', oauthBearer: hook });
  });

  it('refuse bad settings at load, naming the key, never showing a secret', () => {
    const f = files();
    const list = problems(
      {
        kafka: {
          tls: { ca: join(f.dir, 'missing.pem'), cert: f.write('c.pem', PEM_CERT), verifyHostnam: false },
          sasl: { mechanism: 'SCRAM-SHA-1', username: 'u', password: 'inline-Secret' },
        },
      },
      {},
    );
    expect(list.join('\n')).toMatch(
      /kafka\.tls\.ca: cannot read the CA certificate file .*missing\.pem.*ENOENT/,
    );
    expect(list.join('\n')).toMatch(/kafka\.tls\.verifyHostnam: unknown key; did you mean "verifyHostname"/);
    expect(list.join('\n')).toMatch(/kafka\.sasl\.mechanism: expected one of PLAIN, SCRAM-SHA-256/);
    expect(list.join('\n')).not.toContain('inline-Secret');

    expect(problems({ kafka: { sasl: { mechanism: 'PLAIN', username: 'u' } } })).toEqual([
      expect.stringMatching(
        /^kafka\.sasl\.passwordFile: PLAIN needs a password: set TEAL_KAFKA_SASL_PASSWORD_FILE/,
      ),
    ]);
    expect(problems({ kafka: { sasl: { mechanism: 'OAUTHBEARER' } } })).toEqual([
      expect.stringMatching(/^kafka\.sasl\.oauthBearer: OAUTHBEARER needs a token hook/),
    ]);
    expect(problems({}, { TEAL_KAFKA_SASL_USERNAME: 'u' })).toEqual([
      expect.stringMatching(/^kafka\.sasl\.mechanism: the SASL mechanism is missing/),
    ]);
    expect(problems({ kafka: { tls: false } }, { TEAL_KAFKA_TLS_CA: PEM_CERT })).toEqual([
      expect.stringMatching(/^kafka\.tls: TLS is off here but env TEAL_KAFKA_TLS_CA set TLS settings/),
    ]);
    const notPem = problems({}, { TEAL_KAFKA_TLS_KEY: f.write('k.txt', 'hunter2-not-a-key') });
    expect(notPem).toEqual([expect.stringMatching(/^env TEAL_KAFKA_TLS_KEY: the client key is not PEM/)]);
    expect(notPem.join()).not.toContain('hunter2');
    const twice = problems(
      {
        kafka: {
          sasl: { mechanism: 'PLAIN', username: 'u', password: 'a', passwordFile: f.write('pw', 'b') },
        },
      },
      {},
    );
    expect(twice).toEqual([expect.stringMatching(/the SASL password is given twice/)]);
  });
});
