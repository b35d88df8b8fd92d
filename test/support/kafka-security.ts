import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// The local broker's SASL_SSL listener as infra/local/lib/kafka-security.mjs made it: its
// address, the test CA and client certificate, and the test users. TEAL_TEST_KAFKA_SECURITY
// names another credentials.json (a broker of one's own); the default is the local env's.

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface SecureKafka {
  /** host:port of the SASL_SSL listener. */
  saslSsl: string;
  /** PEM files. */
  ca: string;
  clientCert: string;
  clientKey: string;
  plain: { username: string; password: string };
  /** One user with SCRAM-SHA-256 and SCRAM-SHA-512 credentials. */
  scram: { username: string; password: string };
}

export function secureKafkaFile(): string {
  return (
    process.env.TEAL_TEST_KAFKA_SECURITY ?? path.join(ROOT, '.teal', 'kafka', 'security', 'credentials.json')
  );
}

/** Reads the listener's facts; throws saying what to do when the environment has none. */
export function secureKafka(): SecureKafka {
  const file = secureKafkaFile();
  if (!existsSync(file)) {
    throw new Error(
      `no SASL_SSL listener facts at ${file}: the local broker predates its SASL_SSL listener; restart it (npm run env:down && npm run env:up) or set TEAL_TEST_KAFKA_SECURITY`,
    );
  }
  const facts = JSON.parse(readFileSync(file, 'utf8')) as SecureKafka;
  // The broker reads its listeners from here; one started before SASL_SSL existed has none.
  const properties = path.join(path.dirname(path.dirname(file)), 'server.properties');
  if (!existsSync(properties) || !readFileSync(properties, 'utf8').includes(`SASL_SSL://${facts.saslSsl}`)) {
    throw new Error(
      `the local broker has no SASL_SSL listener on ${facts.saslSsl} (${properties}): it was started before the listener existed; restart it (npm run env:down && npm run env:up)`,
    );
  }
  return facts;
}

/** An unsigned JWS (alg none) as Kafka's unsecured OAUTHBEARER validator takes it: test only. */
export function unsecuredJws(sub: string, lifetimeSeconds = 3600): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${part({ alg: 'none' })}.${part({ sub, iat: now, exp: now + lifetimeSeconds })}.`;
}
