import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { makeCa, makeLeaf } from '../../infra/local/lib/test-certificates.mjs';
import { type ScratchPostgres, startScratchPostgres } from '../../soak/scratch-postgres.ts';

// What a managed Postgres looks like, on this machine: a CA and certificates made with
// openssl in a temp dir, and a scratch cluster with ssl = on that lets nobody in over TCP but
// with TLS and a SCRAM password (hostssl ... scram-sha-256). The postgres OS user's unix
// socket (trust, in the cluster's own directory) is the one way in without either, for
// setting up roles and tables.

export interface TestCertificates {
  dir: string;
  /** The CA that signed the server and client certificates. */
  caFile: string;
  /** Another CA, which signed nothing the server presents (a wrong sslrootcert). */
  otherCaFile: string;
  /** Server certificate for DNS:localhost and IP:127.0.0.1, and its key. */
  serverCertFile: string;
  serverKeyFile: string;
  /** Server certificate for DNS:elsewhere.invalid only (a host-name mismatch), and its key. */
  misnamedCertFile: string;
  misnamedKeyFile: string;
  /** Client certificate with CN=teal, and its key. */
  clientCertFile: string;
  clientKeyFile: string;
  remove(): void;
}

/** A CA, a second CA, server certificates (right and wrong name) and a client certificate. */
export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(path.join(tmpdir(), 'teal-test-certs-'));
  makeCa(dir, 'ca');
  makeCa(dir, 'other-ca');
  const server =
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth';
  makeLeaf(dir, 'server', { cn: 'localhost', ext: `${server}\nsubjectAltName=DNS:localhost,IP:127.0.0.1` });
  makeLeaf(dir, 'misnamed', {
    cn: 'elsewhere.invalid',
    ext: `${server}\nsubjectAltName=DNS:elsewhere.invalid`,
  });
  makeLeaf(dir, 'client', { cn: 'teal', ext: 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth' });
  const f = (name: string) => path.join(dir, name);
  return {
    dir,
    caFile: f('ca.crt'),
    otherCaFile: f('other-ca.crt'),
    serverCertFile: f('server.crt'),
    serverKeyFile: f('server.key'),
    misnamedCertFile: f('misnamed.crt'),
    misnamedKeyFile: f('misnamed.key'),
    clientCertFile: f('client.crt'),
    clientKeyFile: f('client.key'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface SecurePostgres extends ScratchPostgres {
  /** `postgres://<user>@127.0.0.1:<port>/<database>`: no password, no TLS parameters. */
  tcpUrl(user: string, database?: string): string;
  /** A superuser client over the unix socket (trust), for setup; the caller ends it. */
  admin(database?: string): Promise<pg.Client>;
}

export interface SecureOptions {
  /** Server certificate and key, default the certificates' right-named pair. */
  server?: { certFile: string; keyFile: string };
  /** Lines before the hostssl scram-sha-256 ones, e.g. an md5 user or a `cert` login. */
  extraHba?: readonly string[];
  /** Check clients' certificates against the test CA (needed by a `cert` line). */
  clientCa?: boolean;
  settings?: Record<string, string>;
}

/** A scratch cluster with ssl = on and only `hostssl ... scram-sha-256` over TCP. */
export async function startSecurePostgres(
  certs: TestCertificates,
  opts: SecureOptions = {},
): Promise<SecurePostgres> {
  const server = {
    ...(opts.server ?? { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile }),
    caFile: opts.clientCa ? certs.caFile : undefined,
  };
  const scratch = await startScratchPostgres(
    { password_encryption: "'scram-sha-256'", ...opts.settings },
    {
      tls: server,
      unixSocket: true,
      hba: [
        'local all postgres trust',
        ...(opts.extraHba ?? []),
        'hostssl all all 127.0.0.1/32 scram-sha-256',
        'hostssl replication all 127.0.0.1/32 scram-sha-256',
      ],
    },
  );
  return {
    ...scratch,
    tcpUrl: (user, database = 'postgres') => `postgres://${user}@127.0.0.1:${scratch.port}/${database}`,
    async admin(database = 'postgres') {
      const client = new pg.Client({
        host: scratch.socketDir,
        port: scratch.port,
        user: 'postgres',
        database,
        ssl: false,
      });
      // A fence (cutover) terminates it with the other client sessions: not a crash of the test.
      client.on('error', () => {});
      await client.connect();
      return client;
    },
  };
}
