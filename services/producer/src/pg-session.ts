import pg from 'pg';

// Every connection teal opens to blue or green returns Postgres text untouched (no global
// type parsers) and runs under the session settings that make text lossless and stable:
// the walsender uses the same ones, so snapshot rows and stream rows read alike.
// default_transaction_read_only=off: a cutover fences blue with ALTER DATABASE ... SET
// default_transaction_read_only = on; teal's own sessions (heartbeats, watermarks) must
// still write their messages while fenced, and startup options take precedence.
export const SESSION_OPTIONS =
  '-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=postgres -c extra_float_digits=3 -c bytea_output=hex -c default_transaction_read_only=off';

export const RAW_TEXT_TYPES = {
  getTypeParser: () => (value: string) => value,
} as unknown as pg.CustomTypesConfig;

export interface SessionOptions {
  applicationName?: string;
  /** 'database': a logical walsender connection (replication commands over simple query). */
  replication?: 'database';
}

export function openClientConfig(url: string, opts: SessionOptions = {}): pg.ClientConfig {
  const config: pg.ClientConfig & { replication?: string } = {
    connectionString: url,
    types: RAW_TEXT_TYPES,
    options: SESSION_OPTIONS,
    application_name: opts.applicationName ?? 'teal-producer',
  };
  if (opts.replication) config.replication = opts.replication;
  return config;
}

/** A connected client; the caller ends it. */
export async function connectClient(url: string, opts: SessionOptions = {}): Promise<pg.Client> {
  const client = new pg.Client(openClientConfig(url, opts));
  // An idle client whose server goes away emits 'error'; without a listener Node crashes.
  client.on('error', () => {});
  await client.connect();
  return client;
}

export function createPool(url: string, max = 4, applicationName = 'teal-producer'): pg.Pool {
  const pool = new pg.Pool({ ...openClientConfig(url, { applicationName }), max });
  pool.on('error', () => {});
  // A checked-out client whose session the server ends emits 'error'; the next query fails instead.
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  return pool;
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function quoteTable(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}

export function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}
