// The local broker's SASL_SSL listener, for tests of Kafka TLS and SASL: a CA and a server
// certificate made with openssl (SAN IP:127.0.0.1, DNS:localhost), a client certificate the
// listener accepts (ssl.client.auth=requested), test users for PLAIN (the listener's JAAS
// config), SCRAM-SHA-256 and SCRAM-SHA-512 (created through the PLAINTEXT listener on every
// up, so an environment made before the listener existed gets them too) and OAUTHBEARER with
// Kafka's built-in unsecured-JWS validator, which accepts any unsigned token with a `sub`:
// test only, never a production setting. Everything lives in <kafka dir>/security/, and
// credentials.json there says where (SECURITY_FILE; test/support/kafka-security.ts reads it).
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { makeCa, makeLeaf } from './test-certificates.mjs';

export const SECURITY_FILE = 'credentials.json';
const SCRAM_ITERATIONS = 8192;

/** The CA, certificates and test credentials, made once per security dir (kept across `reset`). */
function ensureMaterial(dir, saslSslAddress) {
  const file = path.join(dir, SECURITY_FILE);
  if (fs.existsSync(file)) {
    const known = JSON.parse(fs.readFileSync(file, 'utf8'));
    // (Material from before the certificates were .crt files is made again.)
    if (known.saslSsl === saslSslAddress && fs.existsSync(path.join(dir, 'server.crt'))) return known;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Kept across `reset`, so valid for years rather than the test certificates' days.
  makeCa(dir, 'ca', { cn: 'teal local Kafka test CA', days: 3650 });
  makeLeaf(dir, 'server', {
    cn: 'localhost',
    ext: 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth',
    days: 3650,
  });
  makeLeaf(dir, 'client', { cn: 'teal-client', ext: 'extendedKeyUsage=clientAuth', days: 3650 });
  const secret = () => randomBytes(18).toString('base64url');
  const info = {
    saslSsl: saslSslAddress,
    ca: path.join(dir, 'ca.crt'),
    clientCert: path.join(dir, 'client.crt'),
    clientKey: path.join(dir, 'client.key'),
    plain: { username: 'teal-plain', password: secret() },
    // One user with both SCRAM mechanisms.
    scram: { username: 'teal-scram', password: secret() },
    oauthbearer: { validator: 'unsecured JWS (alg none, a sub claim); test only' },
  };
  fs.writeFileSync(file, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
  return info;
}

/** A multi-line PEM as one server.properties value (java.util.Properties reads \n escapes). */
const pemValue = (file) => fs.readFileSync(file, 'utf8').trim().replaceAll('\n', '\\n');

/**
 * The server.properties lines of the SASL_SSL listener (named SASL_SSL) at `address`, making
 * the certificates and credentials first when `dir` has none. Returns { lines, info }.
 */
export function saslSslListener(dir, address) {
  const info = ensureMaterial(dir, address);
  const l = 'listener.name.sasl_ssl';
  const lines = [
    'sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER',
    `${l}.ssl.keystore.type=PEM`,
    `${l}.ssl.keystore.certificate.chain=${pemValue(path.join(dir, 'server.crt'))}`,
    `${l}.ssl.keystore.key=${pemValue(path.join(dir, 'server.key'))}`,
    `${l}.ssl.truststore.type=PEM`,
    `${l}.ssl.truststore.certificates=${pemValue(info.ca)}`,
    // A client certificate signed by the CA is checked when given, not required.
    `${l}.ssl.client.auth=requested`,
    `${l}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${info.plain.username}="${info.plain.password}";`,
    `${l}.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
    `${l}.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
    // No server callback handler: Kafka's OAuthBearerUnsecuredValidatorCallbackHandler (test only).
    `${l}.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;`,
  ];
  return { lines, info };
}

// SCRAM's SaltedPassword (RFC 5802: Hi = PBKDF2 with HMAC) for Kafka's mechanism ids.
const SCRAM = [
  { id: 1, hash: 'sha256', bytes: 32 },
  { id: 2, hash: 'sha512', bytes: 64 },
];

const compactString = (s) => {
  const b = Buffer.from(s);
  return Buffer.concat([uvarint(b.length + 1), b]);
};
const compactBytes = (b) => Buffer.concat([uvarint(b.length + 1), b]);
function uvarint(n) {
  const out = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
const int32 = (n) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

/**
 * AlterUserScramCredentials v0 bodies (KIP-554, flexible version) upserting `username` with
 * `password`, one per mechanism (SCRAM-SHA-256, SCRAM-SHA-512: the broker refuses one user
 * twice in a request):
 *   deletions: [name, mechanism int8] upsertions: [name, mechanism int8, iterations int32,
 *   salt bytes, salted_password bytes] (compact arrays/strings/bytes, empty tagged fields).
 */
export function scramUpsertBodies(username, password) {
  return SCRAM.map(({ id, hash, bytes }) => {
    const salt = randomBytes(16);
    const salted = pbkdf2Sync(password, salt, SCRAM_ITERATIONS, bytes, hash);
    const upsert = Buffer.concat([
      compactString(username),
      Buffer.from([id]),
      int32(SCRAM_ITERATIONS),
      compactBytes(salt),
      compactBytes(salted),
      Buffer.from([0]),
    ]);
    return Buffer.concat([uvarint(1), uvarint(2), upsert, Buffer.from([0])]);
  });
}

/**
 * Errors of an AlterUserScramCredentials v0 response body (after the response header's
 * correlation id): [tagged fields] throttle int32, results [user, error_code int16, message].
 */
export function scramUpsertErrors(res) {
  let at = 1; // the flexible response header's empty tagged fields
  at += 4;
  const readUvarint = () => {
    let n = 0;
    let shift = 0;
    for (;;) {
      const byte = res[at++];
      n |= (byte & 0x7f) << shift;
      if (byte < 0x80) return n;
      shift += 7;
    }
  };
  const readCompactString = () => {
    const len = readUvarint() - 1;
    if (len < 0) return null;
    const s = res.toString('utf8', at, at + len);
    at += len;
    return s;
  };
  const errors = [];
  for (let count = readUvarint() - 1; count > 0; count--) {
    const user = readCompactString();
    const code = res.readInt16BE(at);
    at += 2;
    const message = readCompactString();
    readUvarint(); // tagged fields
    if (code !== 0) errors.push(`${user}: error ${code}${message ? ` (${message})` : ''}`);
  }
  return errors;
}
