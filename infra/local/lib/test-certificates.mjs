// Test certificates made with openssl: a CA and leaf certificates it signs. The local broker's
// SASL_SSL listener (kafka-security.mjs) and the Postgres TLS tests (test/support/
// secure-postgres.ts) both use them. Node builtins only, like the rest of infra/local.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

// P-256 keys: quick to make, and every client teal ships (Node's TLS, Kafka's Java) takes them.
const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(dir, args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** `<name>.key` and a self-signed CA certificate `<name>.crt` in `dir`. */
export function makeCa(dir, name, { cn = name, days = 3 } = {}) {
  openssl(dir, [
    'req',
    '-x509',
    ...KEY,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
    '-days',
    String(days),
    '-subj',
    `/CN=${cn}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  fs.chmodSync(path.join(dir, `${name}.key`), 0o600);
}

/** `<name>.key` and `<name>.crt` signed by the CA `ca` in `dir`, with the x509v3 lines `ext`. */
export function makeLeaf(dir, name, { ca = 'ca', cn, ext, days = 3 }) {
  fs.writeFileSync(path.join(dir, `${name}.ext`), `${ext}\n`);
  openssl(dir, ['req', ...KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.crt`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-out',
    `${name}.crt`,
    '-days',
    String(days),
    '-extfile',
    `${name}.ext`,
  ]);
  fs.rmSync(path.join(dir, `${name}.csr`));
  fs.rmSync(path.join(dir, `${name}.ext`));
  fs.chmodSync(path.join(dir, `${name}.key`), 0o600);
}
