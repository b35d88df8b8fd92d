import { type AddressInfo, createServer } from 'node:net';
import { VALUE_SESSION_OPTIONS } from '@teal/postgres';
import pg from 'pg';
import { inject, onTestFinished } from 'vitest';
import './provided-context.ts';

/** Blue (the source) as provided by test/global-setup.ts. */
export function blueUrl(): string {
  return inject('blueUrl');
}

/** Green (the target) as provided by test/global-setup.ts. */
export function greenUrl(): string {
  return inject('greenUrl');
}

/** Comma-separated `host:port` list of the Kafka brokers. */
export function kafkaBrokers(): string[] {
  return inject('kafkaBrokers')
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
}

export { uniqueName, uniqueNameMadeAt } from './unique-name.ts';

/**
 * A connected client that returns every value as Postgres text (as all of teal does),
 * closed when the current test finishes. Call it inside a test.
 */
export async function pgClient(url: string): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    types: { getTypeParser: () => (value: string) => value },
    // The session settings teal's own connections use (docs/architecture.md, "Values").
    options: VALUE_SESSION_OPTIONS,
  });
  await client.connect();
  onTestFinished(async () => {
    await client.end().catch(() => {});
  });
  return client;
}

/** A TCP port free on loopback right now (for an API a test starts). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `url` with another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
