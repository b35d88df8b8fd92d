import { sqlState, TealError } from '@teal/errors';
import pg from 'pg';
import {
  authError,
  type ConnectionPlan,
  connectionPlan,
  isTlsError,
  type ServerName,
  tlsFailedError,
  tlsRefusedError,
} from './connection-options.ts';
import { NegotiatingConnection, pgEnv, resolvePassword, tlsOptions } from './tls-connection.ts';

// Every connection teal opens to blue or green: text in, text out (no global type parsers,
// so no value is parsed into a lossy JS type), under the session settings that make text
// lossless and stable. The walsender prints values under the same settings, so snapshot
// rows, stream rows and verify's reads are the same text (docs/architecture.md, "Values").
//
// default_transaction_read_only=off: a cutover fences blue with ALTER DATABASE ... SET
// default_transaction_read_only = on; startup options outrank it, so teal's own sessions
// (heartbeats, watermarks, drain, unfence, a reverse apply) still work on a fenced blue.
// application_name starts with "teal" so an operator can tell teal's sessions apart; the
// fence exempts only the control plane's own (services/control/src/fence.ts), the others
// are terminated and reconnect, writable through the startup option above.
export const VALUE_SESSION_OPTIONS =
  '-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=postgres -c extra_float_digits=3 -c bytea_output=hex';

/** teal's own sessions: the value settings, and writable through a fence. */
export const SESSION_OPTIONS = `${VALUE_SESSION_OPTIONS} -c default_transaction_read_only=off`;

export const RAW_TEXT_TYPES = {
  getTypeParser: () => (value: string) => value,
} as unknown as pg.CustomTypesConfig;

export interface SessionOptions {
  /** Shown in pg_stat_activity; starts with "teal". */
  applicationName: string;
  /** 'database': a logical walsender connection (replication commands over simple query). */
  replication?: 'database';
  connectionTimeoutMillis?: number;
  /** More startup settings (-c name=value; values without spaces), e.g. the reverse writer's token. */
  settings?: Readonly<Record<string, string>>;
}

/** The pg config of a teal session; `tealPlan` rides along to TealClient (pg ignores it). */
export type TealClientConfig = pg.ClientConfig & { replication?: string; tealPlan?: ConnectionPlan };

function sessionOptions(settings: Readonly<Record<string, string>> | undefined): string {
  if (!settings) return SESSION_OPTIONS;
  const more = Object.entries(settings).map(([k, v]) => {
    if (!/^[\w.]+$/.test(k) || /[\s\\]/.test(v))
      throw new TealError('TEAL_INTERNAL', `session setting ${k} cannot be a startup option`);
    return ` -c ${k}=${v}`;
  });
  return SESSION_OPTIONS + more.join('');
}

// TLS and the password follow libpq (connection-options.ts), so pg is given a URL without
// either and never reads PGSSLMODE, the TLS parameters or the passfile itself.
export function clientConfig(url: string, opts: SessionOptions): TealClientConfig {
  const env = pgEnv();
  const plan = connectionPlan(url, env);
  const config: TealClientConfig = {
    connectionString: plan.url,
    types: RAW_TEXT_TYPES,
    options: sessionOptions(opts.settings),
    application_name: opts.applicationName,
    // The real options are read at connect (TealClient); `true` makes pg send the SSLRequest.
    ssl: plan.tls.tls !== 'off',
    // pg calls it with the connection's parameters, and only when the server asks for a password.
    password: ((params: ServerName) => resolvePassword(plan, env, params)) as unknown as () => string,
    tealPlan: plan,
  };
  if (opts.connectionTimeoutMillis !== undefined)
    config.connectionTimeoutMillis = opts.connectionTimeoutMillis;
  if (opts.replication) config.replication = opts.replication;
  return config;
}

/**
 * A pg.Client that marks the errors of a connection it lost with `connectionLost: true`, so
 * that isRetriablePgError() (@teal/errors) knows them without reading their message:
 * node-postgres reports a dropped socket as a plain Error with no code.
 */
export class TealClient extends pg.Client {
  private lost = false;
  private readonly plan: ConnectionPlan | undefined;

  constructor(config: TealClientConfig) {
    super(config);
    // pg lets the URL's (empty) password outrank the config's: the resolver is set here.
    if (typeof config.password === 'function')
      Object.defineProperty(this, 'password', { value: config.password, writable: true, configurable: true });
    // libpq never uses TLS on a unix socket, whatever sslmode says.
    const plan = config.tealPlan;
    this.plan = plan && this.host?.startsWith('/') ? { ...plan, tls: { ...plan.tls, tls: 'off' } } : plan;
    if (this.plan?.tls.tls === 'off') (this as unknown as { ssl: boolean }).ssl = false;
    else if (this.plan) {
      const self = this as unknown as { connection: unknown };
      self.connection = new NegotiatingConnection(
        {
          ssl: true,
          keepAlive: config.keepAlive ?? false,
          keepAliveInitialDelayMillis: config.keepAliveInitialDelayMillis ?? 0,
        },
        this.plan.tls.tls,
      );
    }
    // An idle client whose server goes away emits 'error'; without a listener Node crashes.
    // pg emits 'error' only for the connection (a query's own error rejects that query), so
    // any one means the client is gone, also a FATAL with a SQLSTATE (57P01 when blue ends the
    // session): the next query then fails with a code-less "not queryable" error, which must
    // read as a lost connection (test/regression-terminated-session-error-not-retriable).
    this.on('error', () => {
      this.lost = true;
    });
    this.on('end', () => {
      this.lost = true;
    });
  }

  // Every teal session connects here (pools call connect(callback)): the TLS files are read
  // now, and a refused TLS, an untrusted certificate or a refused login becomes one TealError
  // that names the server and the fix, never retriable (the same attempt fails the same way).
  // biome-ignore lint/suspicious/noExplicitAny: pg's connect() has a promise and a callback form.
  override connect(callback?: any): any {
    const connected = (async () => {
      const plan = this.plan;
      if (plan && plan.tls.tls !== 'off') {
        (this.connection as unknown as { ssl: unknown }).ssl = tlsOptions(plan.tls, this.server());
      }
      await super.connect();
      return this;
    })().catch((err: unknown) => {
      // pg leaves the socket open when the failure was ours (no password found, a client
      // key that cannot be read); the server would hold it until authentication_timeout.
      (this.connection as unknown as { stream?: { destroy?: () => void } }).stream?.destroy?.();
      throw this.explainConnectError(err);
    });
    if (!callback) return connected;
    connected.then(
      () => callback(null, this),
      (err: unknown) => callback(err),
    );
    return undefined;
  }

  private server(): ServerName {
    const user = this.user ?? '';
    return { host: this.host, port: this.port, user, database: this.database ?? user };
  }

  private explainConnectError(err: unknown): unknown {
    if (err instanceof TealError || !this.plan) return err;
    const state = sqlState(err);
    if (state === '28P01' || state === '28000') return authError(this.server(), state, err);
    const answer = (this.connection as unknown as { tlsAnswer?: string }).tlsAnswer;
    if (answer !== undefined && answer !== 'S' && this.plan.tls.tls === 'required')
      return tlsRefusedError(this.server(), this.plan.tls.sslmode);
    if (isTlsError(err)) return tlsFailedError(this.server(), this.plan.tls, err);
    return err;
  }

  // biome-ignore lint/suspicious/noExplicitAny: pg's query() has a dozen overloads; this forwards all of them.
  override query(...args: any[]): any {
    // biome-ignore lint/suspicious/noExplicitAny: see above.
    const result = (super.query as any)(...args);
    if (result && typeof result.then === 'function') {
      return result.catch((err: unknown) => {
        throw this.mark(err);
      });
    }
    return result;
  }

  private mark(err: unknown): unknown {
    return this.lost && (err as { code?: unknown } | null)?.code === undefined
      ? markConnectionLost(err)
      : err;
  }
}

/** Marks an error as the loss of its connection (see isRetriablePgError in @teal/errors). */
export function markConnectionLost(err: unknown): unknown {
  if (err instanceof Error) (err as Error & { connectionLost?: boolean }).connectionLost = true;
  return err;
}

/** A connected client; the caller ends it. */
export async function connectClient(url: string, opts: SessionOptions): Promise<pg.Client> {
  const client = new TealClient(clientConfig(url, opts));
  await client.connect();
  return client;
}

/** Runs `fn` with a fresh connected client and always closes it. */
export async function withClient<T>(
  url: string,
  opts: SessionOptions,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await connectClient(url, opts);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

export interface PoolOptions extends SessionOptions {
  max: number;
  /** Told of a connection that failed while idle or between queries (the next query fails and is retried). */
  onConnectionError?: (err: Error) => void;
}

export function createPool(url: string, opts: PoolOptions): pg.Pool {
  // pg.Pool constructs `Client` with the pool's options; its typing says no arguments.
  const Client = TealClient as unknown as new () => pg.ClientBase;
  const pool = new pg.Pool({ ...clientConfig(url, opts), max: opts.max, Client });
  const onError = opts.onConnectionError ?? (() => {});
  pool.on('error', onError);
  pool.on('connect', (client) => client.on('error', onError));
  return pool;
}
