import pg from 'pg';

// The control plane's connections to blue and green. Text in, text out (no global type
// parsers), the session settings every teal connection uses, and an application_name
// starting with "teal" so that a fence never terminates teal's own sessions.
//
// default_transaction_read_only=off in the startup packet outranks the database-level
// setting a fence installs (ALTER DATABASE ... SET), so drain's heartbeat and unfence
// still work on a fenced blue.
const SESSION_OPTIONS =
  '-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=postgres -c extra_float_digits=3 -c bytea_output=hex' +
  ' -c default_transaction_read_only=off';

const RAW_TEXT_TYPES = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

export function clientConfig(url: string, applicationName = 'teal-control'): pg.ClientConfig {
  return {
    connectionString: url,
    types: RAW_TEXT_TYPES,
    options: SESSION_OPTIONS,
    application_name: applicationName,
    connectionTimeoutMillis: 5_000,
  };
}

/** Runs `fn` with a fresh connected client and always closes it. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(clientConfig(url));
  // An idle client whose server goes away emits 'error'; without a listener Node crashes.
  client.on('error', () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** True for "relation does not exist" / "schema does not exist" (green not initialised yet). */
export function isUndefinedObject(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '42P01' || code === '3F000';
}
