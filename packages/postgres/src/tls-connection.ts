import { existsSync, readFileSync, statSync } from 'node:fs';
import { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import {
  type ConnectionPlan,
  noPasswordError,
  noRootCertError,
  type PgEnv,
  parsePassfile,
  passfileLookup,
  type ServerName,
  type TlsPlan,
  tlsFileError,
} from './connection-options.ts';

// The I/O half of connection-options.ts: the files a plan names (certificates, the
// passfile) and the socket's TLS negotiation. Files are read at each connect, not once, so a
// rotated certificate or passfile is picked up by the next connection.

/** The TLS options of one connection; throws TEAL_PG_TLS when a file the plan needs is missing. */
export function tlsOptions(plan: TlsPlan, server: ServerName): ConnectionOptions {
  const options: ConnectionOptions = {};
  const read = (setting: string, file: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw tlsFileError(server, setting, file, err);
    }
  };
  let verify = false;
  if (plan.rootCert === 'system') verify = true;
  else if (plan.rootCert && (plan.rootCertExplicit || existsSync(plan.rootCert))) {
    options.ca = read('sslrootcert', plan.rootCert);
    verify = true;
  }
  if (!verify && plan.chainRequired) throw noRootCertError(server, plan);
  options.rejectUnauthorized = verify;
  if (verify && !plan.verifyHost) options.checkServerIdentity = () => undefined;
  // libpq sends a client certificate only when its file exists (the default name or a given one).
  if (plan.clientCert && existsSync(plan.clientCert)) {
    options.cert = read('sslcert', plan.clientCert);
    // Not enumerable: a logged or inspected options object never shows the key.
    Object.defineProperty(options, 'key', {
      value: read('sslkey', plan.clientKey ?? ''),
      enumerable: false,
    });
  }
  return options;
}

/**
 * The password for one login, in libpq's order: the URL's, PGPASSWORD, then the passfile
 * (PGPASSFILE, default ~/.pgpass; ignored, as libpq does, when group or others can read it).
 * Asked only when the server wants one (trust and cert logins never read the passfile).
 */
export function resolvePassword(plan: ConnectionPlan, env: PgEnv, server: ServerName): string {
  if (plan.urlPassword !== undefined) return plan.urlPassword;
  if (env.PGPASSWORD) return env.PGPASSWORD;
  const file = env.PGPASSFILE || (env.HOME ? `${env.HOME.replace(/\/$/, '')}/.pgpass` : undefined);
  let note: string | undefined;
  if (file && existsSync(file)) {
    const stat = statSync(file);
    if (!stat.isFile()) note = `${file} is not a plain file`;
    else if ((stat.mode & 0o077) !== 0)
      note = `${file} was ignored: group or others can read it; chmod 0600 it`;
    else {
      const password = passfileLookup(parsePassfile(readFileSync(file, 'utf8')), server);
      if (password !== undefined) return password;
      note = `no line of ${file} matches`;
    }
  }
  throw noPasswordError(server, file, note);
}

export function pgEnv(): PgEnv {
  const e = process.env;
  return {
    PGSSLMODE: e.PGSSLMODE,
    PGSSLROOTCERT: e.PGSSLROOTCERT,
    PGSSLCERT: e.PGSSLCERT,
    PGSSLKEY: e.PGSSLKEY,
    PGPASSWORD: e.PGPASSWORD,
    PGPASSFILE: e.PGPASSFILE,
    HOME: e.HOME,
  };
}

interface PgConnectionInternals {
  stream: import('node:net').Socket;
  ssl: unknown;
  _connecting: boolean;
  _ending: boolean;
  _keepAlive: boolean;
  _keepAliveInitialDelayMillis: number;
  attachListeners(stream: unknown): void;
  upgradeToSSL(host: string, onError: (err: Error & { code?: string }) => void): void;
  emit(event: string, ...args: unknown[]): boolean;
}

const PgConnection = (pg as unknown as { Connection: new (config: object) => object }).Connection;

/** How one connection negotiates TLS: TlsPlan['tls'] without 'off'. */
export type Negotiation = 'fallback' | 'plaintext-first' | 'required';

/**
 * node-postgres's Connection with libpq's `prefer` and `allow`. prefer: TLS first, and when
 * the server answers the SSLRequest with 'N', the startup goes on over the same plaintext
 * socket (pg ends the connection there). allow: a plaintext startup first, and when the
 * server rejects it (an ErrorResponse before the session is up: a hostssl-only pg_hba), once
 * more over a new TLS socket, as libpq does. It records the server's answer so that a refusal
 * under `require` or stricter is told as such, from the protocol byte, not an error's text.
 * Follows pg 8's Connection.connect (lib/connection.js); the TLS tests run it for real.
 */
export class NegotiatingConnection extends PgConnection {
  /** The server's answer to the SSLRequest: 'S', 'N', another byte, or undefined (none yet). */
  tlsAnswer: string | undefined;
  private plaintext: boolean;
  private sessionUp = false;
  private plaintextError: unknown;
  private target: [number, string] = [0, ''];

  constructor(
    config: object,
    private readonly negotiation: Negotiation,
  ) {
    super(config);
    this.plaintext = negotiation === 'plaintext-first';
  }

  connect(port: number, host: string): void {
    const self = this as unknown as PgConnectionInternals & NegotiatingConnection;
    this.target = [port, host];
    self._connecting = true;
    self.stream.setNoDelay(true);
    self.stream.connect(port, host);
    self.stream.once('connect', () => {
      if (self._keepAlive) self.stream.setKeepAlive(true, self._keepAliveInitialDelayMillis);
      self.emit('connect');
    });
    const reportStreamError = (error: Error & { code?: string }) => {
      if (self._ending && (error.code === 'ECONNRESET' || error.code === 'EPIPE')) return;
      self.emit('error', error);
    };
    self.stream.on('error', reportStreamError);
    self.stream.on('close', () => self.emit('end'));
    if (this.plaintext) {
      self.attachListeners(self.stream);
      return;
    }
    self.stream.once('data', (buffer: Buffer) => {
      const answer = buffer.toString('latin1', 0, 1);
      self.tlsAnswer = answer;
      if (answer === 'S') {
        self.upgradeToSSL(host, reportStreamError);
        return;
      }
      if (answer === 'N' && this.negotiation === 'fallback') {
        // The server said no in one byte and nothing else (protocol-flow.html#PROTOCOL-FLOW-SSL):
        // the socket is ready for the plaintext startup message, which the client sends on this event.
        self.attachListeners(self.stream);
        self.emit('sslconnect');
        return;
      }
      self.stream.end();
      // allow: neither way in; the plaintext refusal is the one that says why.
      if (this.plaintextError !== undefined) {
        self.emit('errorMessage', this.plaintextError);
        return;
      }
      self.emit(
        'error',
        new Error(
          answer === 'N'
            ? 'The server does not support SSL connections'
            : 'There was an error establishing an SSL connection',
        ),
      );
    });
  }

  /** pg's client asks for TLS on 'connect' (its ssl is on); a plaintext attempt starts up instead. */
  requestSsl(): void {
    if (this.plaintext) {
      (this as unknown as PgConnectionInternals).emit('sslconnect');
      return;
    }
    (PgConnection.prototype as unknown as { requestSsl(): void }).requestSsl.call(this);
  }

  emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'readyForQuery') this.sessionUp = true;
    if (event === 'errorMessage' && this.plaintext && !this.sessionUp) {
      // allow: the plaintext startup was rejected; try once more over TLS on a new socket.
      this.plaintext = false;
      this.plaintextError = args[0];
      const self = this as unknown as PgConnectionInternals;
      const old = self.stream;
      old.removeAllListeners();
      old.on('error', () => {});
      old.destroy();
      self.stream = new Socket();
      this.connect(...this.target);
      return true;
    }
    return (PgConnection.prototype as unknown as { emit: (...a: unknown[]) => boolean }).emit.call(
      this,
      event,
      ...args,
    );
  }
}
