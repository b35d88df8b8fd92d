import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { expect, onTestFinished } from 'vitest';
import { startScratchPostgres } from '../../soak/scratch-postgres.ts';
import { connect } from './check-databases.ts';
import { blueUrl, freePort, kafkaBrokers, uniqueName, withDatabase } from './env.ts';
import { spawnTeal, type TealChild } from './teal-child.ts';

// The way back of issue 17 as an operator runs it, for rollback-e2e and rollback-kill: blue
// and green databases of their own; a forward migration with a table rename, a column
// rename, a dropped column (legacy_code, blue only) and a derived one (email_domain, green
// only); `teal run`, `teal cutover --with-rollback`, `teal reverse`, `teal rollback` as child
// processes of bin/teal.mjs; and a digest computed in SQL on each side, not by teal's verify.
// Green is a scratch cluster: the way back needs a logical slot on green, and the shared
// green runs with wal_level = replica.

export const BLUE_DDL = `CREATE TABLE users (
  id bigserial PRIMARY KEY, name text NOT NULL, email text NOT NULL,
  legacy_code text NOT NULL DEFAULT 'legacy-default')`;
export const GREEN_DDL = `CREATE TABLE members (
  id bigserial PRIMARY KEY, full_name text NOT NULL, email text NOT NULL, email_domain text)`;

const CONFIG = `export default {
  tables: ['public.users'],
  transforms: {
    'public.users': {
      renameTo: 'public.members',
      renameColumns: { name: 'full_name' },
      dropColumns: ['legacy_code'],
      derive: { email_domain: (row) => row.email?.split('@')[1] ?? null },
    },
  },
  heartbeatMs: 500,
};
`;

export interface RollbackSetup {
  name: string;
  dir: string;
  env: Record<string, string>;
  apiUrl: string;
  /** A new session (a fence terminates the ones before it), closed when the test ends. */
  connect(side: 'blue' | 'green'): Promise<pg.Client>;
}

export async function rollbackSetup(prefix: string, children: TealChild[]): Promise<RollbackSetup> {
  const name = uniqueName(prefix);
  const dir = mkdtempSync(join(tmpdir(), `teal-${name}-`));
  writeFileSync(join(dir, 'teal.config.ts'), CONFIG);
  const scratch = await startScratchPostgres();
  const blueAdmin = await connect(blueUrl());
  const greenAdmin = await connect(scratch.url);
  await blueAdmin.query(`CREATE DATABASE ${name}`);
  await greenAdmin.query(`CREATE DATABASE ${name}`);
  const urls = { blue: withDatabase(blueUrl(), name), green: withDatabase(scratch.url, name) };
  const port = await freePort();
  const sessions: pg.Client[] = [];
  const s: RollbackSetup = {
    name,
    dir,
    connect: async (side) => {
      const c = await connect(urls[side]);
      sessions.push(c);
      return c;
    },
    apiUrl: `http://127.0.0.1:${port}`,
    env: {
      TEAL_LOG_LEVEL: 'info',
      TEAL_BLUE_URL: urls.blue,
      TEAL_GREEN_URL: urls.green,
      TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
      TEAL_SLOT: name,
      TEAL_PUBLICATION: name,
      TEAL_TOPIC_PREFIX: name,
      TEAL_API_PORT: String(port),
    },
  };
  onTestFinished(async () => {
    for (const child of children) await child.stop();
    for (const c of sessions) await c.end().catch(() => {});
    // Slots first (a database with a slot cannot be dropped): the forward one on blue, the reverse one on green.
    for (const admin of [blueAdmin, greenAdmin]) {
      await waitFor(
        async () => {
          const { rows } = await admin.query(
            `SELECT slot_name, active, pg_drop_replication_slot(slot_name) IS NULL AS dropped
               FROM pg_replication_slots WHERE database = $1 AND NOT active`,
            [name],
          );
          const left = await admin.query('SELECT 1 FROM pg_replication_slots WHERE database = $1', [name]);
          return rows && left.rows.length === 0;
        },
        { what: `slots of ${name} dropped`, timeoutMs: 30_000 },
      ).catch(() => {});
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    }
    const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: name });
    const admin = kafka.admin();
    await admin.deleteTopics(await admin.listTopics(`${name}`)).catch(() => {});
    await admin.close();
    await kafka.close();
    rmSync(dir, { recursive: true, force: true });
    scratch.destroy();
  });
  await (await s.connect('blue')).query(BLUE_DDL);
  await (await s.connect('green')).query(GREEN_DDL);
  return s;
}

export function teal(s: RollbackSetup, args: string[], children: TealChild[]): TealChild {
  const child = spawnTeal(args, { cwd: s.dir, env: s.env, dropEnv: ['TEAL_', 'PG'] });
  children.push(child);
  return child;
}

/** Runs a CLI command to its end; its exit code and output. */
export async function tealCommand(
  s: RollbackSetup,
  args: string[],
  children: TealChild[],
  timeoutMs = 180_000,
): Promise<{ code: number | null; output: string }> {
  const child = teal(s, args, children);
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    child.exited.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`teal ${args.join(' ')}: no exit in ${timeoutMs} ms:\n${child.output()}`)),
        timeoutMs,
      );
    }),
  ]);
  return { code, output: child.output() };
}

/** GET /status of the running process (undefined while it does not answer). */
export async function status(s: RollbackSetup): Promise<Record<string, unknown> | undefined> {
  const res = await fetch(`${s.apiUrl}/status`).catch(() => undefined);
  return res?.ok ? ((await res.json()) as Record<string, unknown>) : undefined;
}

/** Waits until the process's pipeline streams (its producer says so in /status). */
export async function streaming(
  s: RollbackSetup,
  child: TealChild,
  what: string,
): Promise<Record<string, unknown>> {
  let last: Record<string, unknown> | undefined;
  await waitFor(
    async () => {
      if (child.proc.exitCode !== null) throw new Error(`${what} exited early:\n${child.output()}`);
      last = await status(s);
      return (last?.producer as { state?: string } | undefined)?.state === 'streaming' || undefined;
    },
    { what: `${what} streaming`, timeoutMs: 120_000 },
  );
  return last!;
}

/** `teal reverse` started and streaming; its first /status, and a session on green for the application's writes. */
export async function reverseStreaming(s: RollbackSetup, children: TealChild[]) {
  const reverse = teal(s, ['reverse'], children);
  const status = await streaming(s, reverse, 'teal reverse');
  return { reverse, status, green: await s.connect('green') };
}

/** The forward migration up to a cutover with rollback: teal run, a snapshot, writes on blue, the cutover, teal run stopped. */
export async function forwardAndCutover(
  s: RollbackSetup,
  children: TealChild[],
): Promise<{ report: Record<string, unknown>; legacy: Map<string, string> }> {
  const blue = await s.connect('blue');
  await blue.query(
    `INSERT INTO users (name, email, legacy_code)
       SELECT 'user ' || i, 'u' || i || '@' || (ARRAY['example.com','mail.test','acme.io'])[1 + i % 3], 'L' || i
         FROM generate_series(1, 300) i`,
  );
  const run = teal(s, ['run'], children);
  await streaming(s, run, 'teal run');
  // A few changes on blue while streaming, so that the cutover drains some.
  await blue.query("UPDATE users SET email = 'moved' || id || '@moved.example' WHERE id % 10 = 0");
  await blue.query('DELETE FROM users WHERE id % 25 = 0');
  const legacy = await legacyCodes(blue);
  const cut = await tealCommand(s, ['cutover', '--with-rollback', '--json'], children);
  expect(cut.code, cut.output).toBe(0);
  const report = JSON.parse(cut.output.slice(cut.output.indexOf('{'))) as Record<string, unknown>;
  expect(report.safeToSwitch, cut.output).toBe(true);
  expect(report.rollback, cut.output).toBeTruthy();
  await run.stop();
  expect(run.proc.exitCode, run.output()).toBe(0);
  return { report, legacy };
}

/** The application on green after the switch: inserts (green's sequence), updates, deletes, in small transactions. */
export async function greenWorkload(green: pg.Client, round: number): Promise<void> {
  await green.query(
    `INSERT INTO members (full_name, email, email_domain)
       SELECT 'green ${round}-' || i, 'g${round}-' || i || '@green.example', 'green.example'
         FROM generate_series(1, 40) i`,
  );
  await green.query(
    `UPDATE members SET full_name = full_name || ' (renamed ${round})', email = 'r${round}-' || id || '@upd.example'
      WHERE id % 7 = ${round % 7}`,
  );
  // A few rows per round, so that rows from before the cutover outlive a long workload.
  await green.query(
    `DELETE FROM members WHERE id IN (SELECT id FROM members WHERE id % 11 = ${round % 11} ORDER BY id LIMIT 3)`,
  );
}

export interface Digest {
  rows: number;
  md5: string;
}

/** Rows as id|name|email text, digested in SQL: green's `members` (full_name) read as blue's `users` (name). */
export async function digestOf(db: pg.Client, side: 'blue' | 'green'): Promise<Digest> {
  const [table, name] = side === 'blue' ? ['users', 'name'] : ['members', 'full_name'];
  const { rows } = await db.query<{ rows: string; md5: string }>(
    `SELECT count(*)::text AS rows,
            coalesce(md5(string_agg(format('%s|%s|%s', id, ${name}, email), E'\\n' ORDER BY id)), '') AS md5
       FROM ${table}`,
  );
  return { rows: Number(rows[0].rows), md5: rows[0].md5 };
}

/** blue's legacy_code by id: what the migration dropped, which the rollback must leave as it was. */
export async function legacyCodes(blue: pg.Client): Promise<Map<string, string>> {
  const { rows } = await blue.query<{ id: string; legacy_code: string }>(
    'SELECT id::text AS id, legacy_code FROM users',
  );
  return new Map(rows.map((r) => [r.id, r.legacy_code]));
}

/**
 * After the rollback: blue holds every row green has, mapped back (the digests agree), the
 * dropped column keeps its value on rows that existed before the cutover and has blue's
 * default on rows green inserted, blue's sequence is past every id, and blue takes writes again.
 */
export async function expectBlueHasGreensRows(s: RollbackSetup, before: Map<string, string>): Promise<void> {
  const greenSession = await s.connect('green');
  const blueSession = await s.connect('blue');
  const green = await digestOf(greenSession, 'green');
  const blue = await digestOf(blueSession, 'blue');
  expect(green.rows).toBeGreaterThan(0);
  expect(blue).toEqual(green);
  const after = await legacyCodes(blueSession);
  let kept = 0;
  let defaulted = 0;
  for (const [id, code] of after) {
    const was = before.get(id);
    if (was !== undefined) {
      expect(code, `users ${id}: legacy_code`).toBe(was);
      kept++;
    } else {
      expect(code, `users ${id} (inserted on green): legacy_code`).toBe('legacy-default');
      defaulted++;
    }
  }
  expect(kept).toBeGreaterThan(0);
  expect(defaulted).toBeGreaterThan(0);
  const seq = await blueSession.query<{ ok: boolean }>(
    'SELECT (SELECT last_value FROM users_id_seq) >= (SELECT max(id) FROM users) AS ok',
  );
  expect(seq.rows[0].ok).toBe(true);
  // Unfenced: a new application session writes to blue again.
  await blueSession.query("INSERT INTO users (name, email) VALUES ('after rollback', 'a@b.example')");
}
