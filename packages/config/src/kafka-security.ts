import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  KAFKA_SASL_MECHANISMS,
  type KafkaSaslMechanism,
  type KafkaSaslSettings,
  type KafkaTlsSettings,
} from './define-config.ts';
import { bool, checkKeys, describeValue, isObj, type Obj, type Problems } from './validate.ts';

// kafka.tls and kafka.sasl: TLS to the brokers and the SASL login, the way Postgres secrets
// work in teal (packages/postgres/src/connection-options.ts): a secret comes from a file or an
// environment variable and is never required inline; every file is read once, at load, so a
// path that is wrong is refused here with its key named, not at the first connect. Secrets
// (private key, passphrase, password) are kept behind functions: JSON.stringify and the
// logger leave functions out, so a dumped config holds none of them. docs/kafka-security.md.

export const TLS_KEYS = ['ca', 'cert', 'key', 'passphrase', 'passphraseFile', 'verifyHostname'];
export const SASL_KEYS = ['mechanism', 'username', 'password', 'passwordFile', 'oauthBearer'];

type Read = (path: string) => [value: unknown, from: string];

/** The file's kafka.tls / kafka.sasl objects, checked for unknown keys; {} when absent. */
export function kafkaSecuritySections(p: Problems, kafka: Obj): { tls: Obj; sasl: Obj } {
  const sub = (key: 'tls' | 'sasl', allowed: string[]): Obj => {
    const value = kafka[key];
    if (!isObj(value)) return {};
    checkKeys(p, value, `kafka.${key}`, allowed);
    return value;
  };
  return { tls: sub('tls', TLS_KEYS), sasl: sub('sasl', SASL_KEYS) };
}

const isEnv = (from: string) => from.startsWith('env ');
const secret = (text: string) => () => text;

/** Where relative paths in `from` resolve: the config file's directory, or cwd for variables. */
function baseDir(from: string, configPath: string | undefined): string {
  return !isEnv(from) && configPath ? path.dirname(configPath) : process.cwd();
}

function readText(p: Problems, file: string, from: string, what: string, base: string): string | undefined {
  const full = path.resolve(base, file);
  try {
    return readFileSync(full, 'utf8');
  } catch (err) {
    p.add(
      from,
      `cannot read ${what} file ${JSON.stringify(full)} (${(err as NodeJS.ErrnoException).code ?? 'error'}): fix the path or its permissions`,
    );
    return undefined;
  }
}

/** A PEM given as its text or as a file path; `marker` must occur in it. Secret values are never shown. */
function pem(
  p: Problems,
  [value, from]: [unknown, string],
  what: string,
  marker: RegExp,
  configPath: string | undefined,
): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '') {
    p.add(
      from,
      `expected a file path or the PEM text of ${what}, got ${describeValue(typeof value === 'string' ? '' : value)}`,
    );
    return undefined;
  }
  const text = value.trimStart().startsWith('-----BEGIN')
    ? value
    : readText(p, value, from, what, baseDir(from, configPath));
  if (text === undefined) return undefined;
  if (!marker.test(text)) {
    p.add(from, `${what} is not PEM (no ${marker.source.replaceAll('\\', '')} block): give a PEM file`);
    return undefined;
  }
  return text;
}

/**
 * A secret from the value itself or a file (whose one trailing newline is dropped). A variable
 * outranks the file's key; two sources on the same level are a problem (which one was meant?).
 */
function secretText(
  p: Problems,
  [value, from]: [unknown, string],
  [file, fileFrom]: [unknown, string],
  what: string,
  configPath: string | undefined,
): string | undefined {
  if (value !== undefined && file !== undefined && isEnv(from) === isEnv(fileFrom)) {
    p.add(from, `${what} is given twice (${from} and ${fileFrom}): keep one`);
    return undefined;
  }
  const useFile = file !== undefined && (value === undefined || isEnv(fileFrom));
  if (useFile) {
    if (typeof file !== 'string' || file === '') {
      p.add(fileFrom, `expected the path of a file holding ${what}, got ${describeValue(file)}`);
      return undefined;
    }
    const text = readText(p, file, fileFrom, what, baseDir(fileFrom, configPath))?.replace(/\r?\n$/, '');
    if (text === '') p.add(fileFrom, `the ${what} file is empty`);
    return text || undefined;
  }
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') {
    p.add(
      from,
      `expected ${what} as a non-empty string (better: a file), got ${typeof value === 'string' ? 'an empty string' : describeValue(typeof value === 'function' ? value : typeof value)}`,
    );
    return undefined;
  }
  return value;
}

const TLS_ENV_PATHS = [
  'kafka.tls.ca',
  'kafka.tls.cert',
  'kafka.tls.key',
  'kafka.tls.passphrase',
  'kafka.tls.passphraseFile',
  'kafka.tls.verifyHostname',
];

/** kafka.tls resolved: undefined for plaintext. */
export function resolveKafkaTls(
  p: Problems,
  read: Read,
  configPath: string | undefined,
): KafkaTlsSettings | undefined {
  const [onValue, onFrom] = read('kafka.tls');
  let on: boolean | undefined;
  if (onValue === undefined || typeof onValue === 'boolean') on = onValue;
  else if (isObj(onValue)) on = true;
  else
    p.add(
      onFrom,
      `expected true, false or an object { ${TLS_KEYS.join(', ')} }, got ${describeValue(onValue)}`,
    );
  const fromEnv = TLS_ENV_PATHS.filter((key) => {
    const [value, from] = read(key);
    return value !== undefined && isEnv(from);
  });
  if (on === false && fromEnv.length > 0) {
    p.add(
      onFrom,
      `TLS is off here but ${fromEnv.map((k) => read(k)[1]).join(', ')} set TLS settings: remove one or the other`,
    );
    return undefined;
  }
  if (on !== true && fromEnv.length === 0) return undefined;

  const ca = pem(p, read('kafka.tls.ca'), 'the CA certificate', /-----BEGIN CERTIFICATE-----/, configPath);
  const cert = pem(
    p,
    read('kafka.tls.cert'),
    'the client certificate',
    /-----BEGIN CERTIFICATE-----/,
    configPath,
  );
  const key = pem(
    p,
    read('kafka.tls.key'),
    'the client key',
    /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
    configPath,
  );
  const passphrase = secretText(
    p,
    read('kafka.tls.passphrase'),
    read('kafka.tls.passphraseFile'),
    'the client key passphrase',
    configPath,
  );
  if ((cert === undefined) !== (key === undefined) && p.list.length === 0) {
    p.add(
      cert === undefined ? read('kafka.tls.key')[1] : read('kafka.tls.cert')[1],
      'a client certificate needs both cert and key: set the other one',
    );
  }
  const verifyHostname = bool(p, ...read('kafka.tls.verifyHostname')) ?? true;
  return {
    ca,
    cert,
    key: key === undefined ? undefined : secret(key),
    passphrase: passphrase === undefined ? undefined : secret(passphrase),
    verifyHostname,
  };
}

/** kafka.sasl resolved: undefined for no SASL. */
export function resolveKafkaSasl(
  p: Problems,
  read: Read,
  configPath: string | undefined,
): KafkaSaslSettings | undefined {
  const [mechValue, mechFrom] = read('kafka.sasl.mechanism');
  const [sasl, saslFrom] = read('kafka.sasl');
  if (sasl !== undefined && !isObj(sasl)) {
    p.add(saslFrom, `expected an object { ${SASL_KEYS.join(', ')} }, got ${describeValue(sasl)}`);
    return undefined;
  }
  if (mechValue === undefined) {
    if (sasl !== undefined || SASL_KEYS.some((k) => read(`kafka.sasl.${k}`)[0] !== undefined))
      p.add(mechFrom, `the SASL mechanism is missing: set it to one of ${KAFKA_SASL_MECHANISMS.join(', ')}`);
    return undefined;
  }
  const mechanism =
    typeof mechValue === 'string'
      ? KAFKA_SASL_MECHANISMS.find((m) => m === mechValue.toUpperCase())
      : undefined;
  if (!mechanism) {
    p.add(mechFrom, `expected one of ${KAFKA_SASL_MECHANISMS.join(', ')}, got ${describeValue(mechValue)}`);
    return undefined;
  }
  const [hook, hookFrom] = read('kafka.sasl.oauthBearer');
  if (mechanism === 'OAUTHBEARER') {
    if (typeof hook !== 'function') {
      p.add(
        hookFrom,
        `OAUTHBEARER needs a token hook in teal.config.ts: oauthBearer: async () => ({ token, expiresAt }), got ${describeValue(hook)}`,
      );
      return undefined;
    }
    return { mechanism, oauthBearer: hook as () => Promise<{ token: string }> };
  }
  if (hook !== undefined)
    p.add(hookFrom, `only OAUTHBEARER takes a token hook; ${mechanism} takes username and password`);
  return userPassword(p, read, mechanism, configPath);
}

function userPassword(
  p: Problems,
  read: Read,
  mechanism: Exclude<KafkaSaslMechanism, 'OAUTHBEARER'>,
  configPath: string | undefined,
): KafkaSaslSettings | undefined {
  const [username, userFrom] = read('kafka.sasl.username');
  if (typeof username !== 'string' || username === '') {
    p.add(
      userFrom,
      `${mechanism} needs a user name (kafka.sasl.username or TEAL_KAFKA_SASL_USERNAME), got ${describeValue(username)}`,
    );
  }
  const passwordAt = read('kafka.sasl.password');
  const fileAt = read('kafka.sasl.passwordFile');
  const password = secretText(p, passwordAt, fileAt, 'the SASL password', configPath);
  if (password === undefined && passwordAt[0] === undefined && fileAt[0] === undefined) {
    p.add(
      'kafka.sasl.passwordFile',
      `${mechanism} needs a password: set TEAL_KAFKA_SASL_PASSWORD_FILE (or TEAL_KAFKA_SASL_PASSWORD, or kafka.sasl.passwordFile)`,
    );
  }
  if (typeof username !== 'string' || username === '' || password === undefined) return undefined;
  return { mechanism, username, password: secret(password) };
}

export type { KafkaSaslMechanism };
