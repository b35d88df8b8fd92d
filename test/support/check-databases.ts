import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CliIo, main } from '@teal/cli';
import pg from 'pg';
import { onTestFinished } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers, uniqueName, withDatabase } from './env.ts';

// A blue and a green database of their own for one test of `teal check` (or of teal run's
// preflight), with the DDL each side needs, and the CLI run in this process against them
// with a teal.config.ts written as TypeScript text (so it may hold derive functions).

export async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  return client;
}

export interface CheckDatabases {
  readonly name: string;
  readonly blueUrl: string;
  readonly greenUrl: string;
  readonly blue: pg.Client;
  readonly green: pg.Client;
  /** Runs `teal <args>` with `config` (the object literal's TypeScript text) in its own directory. */
  teal(
    args: string[],
    config?: string,
    env?: Record<string, string>,
    stop?: Promise<string>,
  ): Promise<{ code: number; out: string; err: string }>;
}

/** Databases named `<prefix>_<unique>` on blue and green, dropped when the test finishes. */
export async function checkDatabases(
  prefix: string,
  blueDdl: string,
  greenDdl: string,
): Promise<CheckDatabases> {
  const name = uniqueName(prefix);
  const blueAdmin = await connect(blueUrl());
  const greenAdmin = await connect(greenUrl());
  await blueAdmin.query(`CREATE DATABASE ${name}`);
  await greenAdmin.query(`CREATE DATABASE ${name}`);
  const dir = mkdtempSync(join(tmpdir(), `teal-${name}-`));
  const s = {
    name,
    blueUrl: withDatabase(blueUrl(), name),
    greenUrl: withDatabase(greenUrl(), name),
    blue: await connect(withDatabase(blueUrl(), name)),
    green: await connect(withDatabase(greenUrl(), name)),
  };
  onTestFinished(async () => {
    await s.blue.end().catch(() => {});
    await s.green.end().catch(() => {});
    await blueAdmin.query(
      'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active',
      [name],
    );
    await blueAdmin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await greenAdmin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await blueAdmin.end();
    await greenAdmin.end();
    rmSync(dir, { recursive: true, force: true });
  });
  if (blueDdl) await s.blue.query(blueDdl);
  if (greenDdl) await s.green.query(greenDdl);
  return {
    ...s,
    async teal(args, config = '{}', env = {}, stop = new Promise(() => {})) {
      writeFileSync(join(dir, 'teal.config.ts'), `export default ${config};\n`);
      let out = '';
      let err = '';
      const io: CliIo = {
        stdout: { write: (t: string) => (out += t) },
        stderr: { write: (t: string) => (err += t) },
        env: {
          TEAL_BLUE_URL: s.blueUrl,
          TEAL_GREEN_URL: s.greenUrl,
          TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
          TEAL_SLOT: name,
          TEAL_PUBLICATION: name,
          TEAL_TOPIC_PREFIX: name,
          TEAL_API_PORT: '0',
          ...env,
        },
        cwd: dir,
        stopSignal: () => stop,
      };
      return { code: await main(args, io), out, err };
    },
  };
}
