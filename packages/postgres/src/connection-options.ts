import { redactUrl, TealError } from '@teal/errors';

// How teal secures a Postgres connection, with libpq's meaning of every setting
// (https://www.postgresql.org/docs/current/libpq-ssl.html, libpq-envars.html, libpq-pgpass.html),
// not node-postgres's: there `sslmode=require` verifies the host name and `prefer` fails on a
// server without TLS. Pure: the URL and the PG* variables in, a plan out; the plan is carried
// out by tls-connection.ts (files, sockets). The URL's own parameters outrank PG* variables,
// which outrank libpq's defaults, as in libpq.

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** The PG* variables teal reads (libpq's: a Postgres user already has them set). */
export interface PgEnv {
  readonly PGSSLMODE?: string;
  readonly PGSSLROOTCERT?: string;
  readonly PGSSLCERT?: string;
  readonly PGSSLKEY?: string;
  readonly PGPASSWORD?: string;
  readonly PGPASSFILE?: string;
  readonly HOME?: string;
}

export interface TlsPlan {
  readonly sslmode: SslMode;
  /**
   * off: no SSLRequest (disable). fallback: TLS first, plaintext when the server answers 'N'
   * (prefer). plaintext-first: plaintext, TLS when the server rejects that startup (allow).
   */
  readonly tls: 'off' | 'fallback' | 'plaintext-first' | 'required';
  /**
   * verify-ca and verify-full: the chain must be checked, so a root certificate must be found.
   * Any other TLS mode checks the chain too when a root certificate is there (libpq's rule, so
   * `require` with sslrootcert acts as verify-ca), and encrypts without checking when none is.
   */
  readonly chainRequired: boolean;
  /** Check the host name against the certificate (verify-full only). */
  readonly verifyHost: boolean;
  /** Root certificate file; 'system' = the trust store Node ships; undefined = libpq's default file if it exists. */
  readonly rootCert: string | undefined;
  readonly rootCertExplicit: boolean;
  readonly clientCert: string | undefined;
  readonly clientKey: string | undefined;
}

export interface ConnectionPlan {
  /** The URL pg parses, without password and TLS parameters (teal supplies those itself). */
  readonly url: string;
  /** The password the URL carried, if any (it outranks PGPASSWORD and the passfile). */
  readonly urlPassword: string | undefined;
  readonly tls: TlsPlan;
}

const TLS_PARAMS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'ssl', 'uselibpqcompat'];

/** libpq's default file names under ~/.postgresql. */
export function defaultTlsFile(home: string | undefined, kind: 'root' | 'cert' | 'key'): string | undefined {
  if (!home) return undefined;
  const name = { root: 'root.crt', cert: 'postgresql.crt', key: 'postgresql.key' }[kind];
  return `${home.replace(/\/$/, '')}/.postgresql/${name}`;
}

function sslModeOf(value: string, source: string, url: string): SslMode {
  if ((SSL_MODES as readonly string[]).includes(value)) return value as SslMode;
  throw new TealError(
    'TEAL_CONFIG_INVALID',
    `sslmode ${JSON.stringify(value)} (${source}, for ${redactUrl(url)}) is not one of ${SSL_MODES.join(', ')}: fix it`,
  );
}

/** Reads a connection URL and the PG* variables into what teal does about TLS and the password. */
export function connectionPlan(url: string, env: PgEnv): ConnectionPlan {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not a URL (a bare database name, say): pg reads it; only the environment says more.
    return { url, urlPassword: undefined, tls: tlsPlan(url, {}, env) };
  }
  const params: Record<string, string> = {};
  for (const key of TLS_PARAMS) {
    const value = parsed.searchParams.get(key);
    if (value !== null) params[key] = value;
    parsed.searchParams.delete(key);
  }
  const urlPassword = parsed.password ? decodeURIComponent(parsed.password) : undefined;
  parsed.password = '';
  return { url: parsed.toString(), urlPassword, tls: tlsPlan(url, params, env) };
}

function tlsPlan(url: string, params: Record<string, string>, env: PgEnv): TlsPlan {
  let sslmode: SslMode;
  if (params.sslmode !== undefined) sslmode = sslModeOf(params.sslmode, 'the URL', url);
  else if (params.ssl !== undefined) {
    // node-postgres's own parameter: ssl=true verified the chain and the host name there.
    sslmode = /^(1|true)$/i.test(params.ssl)
      ? 'verify-full'
      : params.ssl === 'no-verify'
        ? 'require'
        : 'disable';
  } else if (env.PGSSLMODE) sslmode = sslModeOf(env.PGSSLMODE, 'PGSSLMODE', url);
  else sslmode = 'prefer';
  const explicitRoot = params.sslrootcert ?? (env.PGSSLROOTCERT || undefined);
  const rootCert = explicitRoot ?? defaultTlsFile(env.HOME, 'root');
  const tls =
    sslmode === 'disable'
      ? 'off'
      : sslmode === 'prefer'
        ? 'fallback'
        : sslmode === 'allow'
          ? 'plaintext-first'
          : 'required';
  return {
    sslmode,
    tls,
    chainRequired: sslmode === 'verify-ca' || sslmode === 'verify-full',
    verifyHost: sslmode === 'verify-full',
    rootCert,
    rootCertExplicit: explicitRoot !== undefined,
    clientCert: params.sslcert ?? (env.PGSSLCERT || defaultTlsFile(env.HOME, 'cert')),
    clientKey: params.sslkey ?? (env.PGSSLKEY || defaultTlsFile(env.HOME, 'key')),
  };
}

// ---- passfile (libpq-pgpass.html) ----

export interface PassfileEntry {
  readonly host: string;
  readonly port: string;
  readonly database: string;
  readonly user: string;
  readonly password: string;
}

/** `hostname:port:database:username:password` lines; `\:` and `\\` escape; `#` starts a comment. */
export function parsePassfile(text: string): PassfileEntry[] {
  const entries: PassfileEntry[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const fields: string[] = [];
    let field = '';
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (c === '\\' && i + 1 < line.length) field += line[++i];
      else if (c === ':' && fields.length < 4) {
        fields.push(field);
        field = '';
      } else field += c;
    }
    fields.push(field);
    if (fields.length !== 5) continue;
    const [host, port, database, user, password] = fields as [string, string, string, string, string];
    entries.push({ host, port, database, user, password });
  }
  return entries;
}

export interface PassfileTarget {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
}

/** The password of the first matching line; `*` matches anything, `localhost` also a unix socket. */
export function passfileLookup(
  entries: readonly PassfileEntry[],
  target: PassfileTarget,
): string | undefined {
  const host = target.host.startsWith('/') ? 'localhost' : target.host;
  const match = (pattern: string, value: string) => pattern === '*' || pattern === value;
  return entries.find(
    (e) =>
      match(e.host, host) &&
      match(e.port, String(target.port)) &&
      match(e.database, target.database) &&
      match(e.user, target.user),
  )?.password;
}

// ---- what a failed connection means ----

// Node's certificate verification codes (https://nodejs.org/api/tls.html, X509 error codes)
// and the host-name check's; OpenSSL's own errors arrive as ERR_SSL_* / ERR_OSSL_*.
const CERT_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'OUT_OF_MEM',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** True for an error of the TLS handshake or of certificate verification (decided by code). */
export function isTlsError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (CERT_CODES.has(code) || /^ERR_(SSL|OSSL|TLS)_/.test(code));
}

export interface ServerName {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
}

export function describeServer(s: ServerName): string {
  return `Postgres at ${s.host}:${s.port} (database ${JSON.stringify(s.database)}, user ${JSON.stringify(s.user)})`;
}

/** The one message for a server that answered the SSLRequest with 'N' under a mode that requires TLS. */
export function tlsRefusedError(server: ServerName, sslmode: SslMode): TealError {
  return new TealError(
    'TEAL_PG_TLS',
    `${describeServer(server)} does not accept TLS connections, and sslmode=${sslmode} requires TLS: turn ssl on in the server's postgresql.conf (ssl = on, ssl_cert_file, ssl_key_file), or connect to the right server; only sslmode=prefer, allow or disable accept a plaintext connection`,
  );
}

export function tlsFailedError(server: ServerName, plan: TlsPlan, err: unknown): TealError {
  const code = (err as { code?: unknown } | null)?.code;
  const detail = `${(err as Error | undefined)?.message ?? String(err)}${typeof code === 'string' ? ` [${code}]` : ''}`;
  const fix =
    code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH'
      ? `connect by a host name the server's certificate names (its subjectAltName), or use sslmode=verify-ca to check the chain without the host name`
      : CERT_CODES.has(String(code))
        ? `give the CA that signed the server's certificate with sslrootcert= in the URL or PGSSLROOTCERT (now ${plan.rootCert ? JSON.stringify(plan.rootCert) : 'none'}; 'system' trusts the CAs Node ships), or renew the server's certificate if it expired`
        : 'check the client certificate and key (sslcert, sslkey / PGSSLCERT, PGSSLKEY) and that the server accepts TLS 1.2 or newer';
  return new TealError(
    'TEAL_PG_TLS',
    `the TLS connection to ${describeServer(server)} failed under sslmode=${plan.sslmode}: ${detail}: ${fix}`,
    { cause: err },
  );
}

export function tlsFileError(server: ServerName, setting: string, file: string, err: unknown): TealError {
  const code = (err as { code?: unknown } | null)?.code;
  return new TealError(
    'TEAL_PG_TLS',
    `${setting} ${JSON.stringify(file)} for ${describeServer(server)} cannot be read${typeof code === 'string' ? ` (${code})` : ''}: fix the path in the URL or the PG* variable, or the file's permissions`,
    { cause: err },
  );
}

export function noRootCertError(server: ServerName, plan: TlsPlan): TealError {
  return new TealError(
    'TEAL_PG_TLS',
    `sslmode=${plan.sslmode} for ${describeServer(server)} needs a root certificate to check the server's against, and ${plan.rootCert ? `${JSON.stringify(plan.rootCert)} does not exist` : 'none is given'}: set sslrootcert= in the URL or PGSSLROOTCERT to the CA file (sslrootcert=system trusts the CAs Node ships), or use sslmode=require to encrypt without verifying`,
  );
}

/** Auth failures: 28P01 (wrong password), 28000 (no pg_hba entry, unknown user, ...). */
export function authError(server: ServerName, sqlstate: string, err: unknown): TealError {
  const detail = (err as Error | undefined)?.message ?? String(err);
  const fix =
    sqlstate === '28P01'
      ? 'give the right password: in the URL, PGPASSWORD, or a passfile line host:port:database:user:password (PGPASSFILE, default ~/.pgpass, mode 0600)'
      : "ask for a pg_hba.conf line that lets this user in from this address (a 'hostssl' line needs sslmode other than disable), or use another user";
  return new TealError(
    'TEAL_PG_AUTH',
    `${describeServer(server)} refused the login (${sqlstate}: ${detail}): ${fix}`,
    {
      cause: err,
    },
  );
}

export function noPasswordError(
  server: ServerName,
  passfile: string | undefined,
  passfileNote: string | undefined,
): TealError {
  return new TealError(
    'TEAL_PG_AUTH',
    `${describeServer(server)} asks for a password and teal has none: set PGPASSWORD, or add a line ${server.host}:${server.port}:${server.database}:${server.user}:<password> to ${passfile ?? '~/.pgpass'} (PGPASSFILE names another file; mode 0600), or put it in the URL${passfileNote ? ` (${passfileNote})` : ''}`,
  );
}
