import {
  installReverseGuard,
  newReverseWriterToken,
  REVERSE_WRITER_SETTING,
  TealControl,
} from '@teal/control';
import { connectClient } from '@teal/postgres';
import pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { controlConfig, ownBlueDatabase, sessionOn } from './support/control-pipeline.ts';
import { blueUrl, uniqueName } from './support/env.ts';

// Issue 17: while `teal reverse` writes green's changes back into blue, blue stays fenced for
// applications. The fence's default_transaction_read_only stops a well-behaved application;
// the reverse guard (fence.ts) also stops one that logs in or begins READ WRITE, and lets
// through exactly the sessions carrying the reverse process's token. A database of its own:
// the fence acts on a whole database.

async function sqlState(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => undefined,
    (e: { code?: string }) => e.code ?? 'no code',
  );
}

async function writer(url: string, token: string): Promise<pg.Client> {
  const c = await connectClient(url, {
    applicationName: 'teal-reverse-consumer',
    settings: { [REVERSE_WRITER_SETTING]: token },
  });
  c.on('error', () => {});
  onTestFinished(() => c.end().catch(() => {}));
  return c;
}

describe('the fence while teal reverse writes to blue', () => {
  test("an application cannot write to fenced blue, read-write or not, while teal's reverse apply can; unfence lifts both", async () => {
    const name = uniqueName('rv_fence');
    const url = await ownBlueDatabase(blueUrl(), name);
    const setup = await sessionOn(url);
    await setup.query('CREATE TABLE t (id int PRIMARY KEY, v text)');
    await setup.query("INSERT INTO t VALUES (1, 'before')");

    const control = new TealControl(controlConfig(name, url, []));
    onTestFinished(() => control.close());
    expect((await control.fence()).fenced).toBe(true);
    const token = newReverseWriterToken();
    const admin = await writer(url, 'not-yet-a-token');
    await installReverseGuard(admin, ['public.t'], token);
    const reader = await sessionOn(url, 'reader');

    // An application as it reconnects after the fence: read-only by default.
    const app = await sessionOn(url, 'shop');
    expect(await sqlState(app.query("INSERT INTO t VALUES (2, 'app')"))).toBe('25006');
    // One that asks for writes anyway: at login, per transaction, and with triggers off.
    const sneaky = new pg.Client({ connectionString: url, options: '-c default_transaction_read_only=off' });
    await sneaky.connect();
    onTestFinished(() => sneaky.end().catch(() => {}));
    expect(await sqlState(sneaky.query("INSERT INTO t VALUES (2, 'app')"))).toBe('25006');
    expect(await sqlState(sneaky.query("UPDATE t SET v = 'app' WHERE id = 1"))).toBe('25006');
    expect(await sqlState(sneaky.query('DELETE FROM t'))).toBe('25006');
    expect(await sqlState(sneaky.query('TRUNCATE t'))).toBe('25006');
    await sneaky.query('SET session_replication_role = replica');
    expect(await sqlState(sneaky.query("INSERT INTO t VALUES (3, 'app')"))).toBe('25006');
    expect(await sqlState(app.query("BEGIN READ WRITE; INSERT INTO t VALUES (4, 'app')"))).toBe('25006');
    await app.query('ROLLBACK');
    // A session with a token, but not the reverse process's.
    const wrong = await writer(url, newReverseWriterToken());
    expect(await sqlState(wrong.query("INSERT INTO t VALUES (5, 'app')"))).toBe('25006');

    // teal's reverse apply, as the consumer writes (upsert under session_replication_role = replica).
    const reverse = await writer(url, token);
    await reverse.query('BEGIN');
    await reverse.query('SET LOCAL session_replication_role = replica');
    await reverse.query(
      "INSERT INTO t VALUES (1, 'from green'), (6, 'new in green') ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v",
    );
    await reverse.query('COMMIT');
    await reverse.query('DELETE FROM t WHERE id = 6');
    await reverse.query("INSERT INTO t VALUES (7, 'new in green')");
    const { rows } = await reader.query<{ id: number; v: string }>('SELECT id, v FROM t ORDER BY id');
    expect(rows).toEqual([
      { id: 1, v: 'from green' },
      { id: 7, v: 'new in green' },
    ]);

    // A new teal reverse re-keys the guard: the old token no longer writes.
    const next = newReverseWriterToken();
    await installReverseGuard(admin, ['public.t'], next);
    expect(await sqlState(reverse.query("INSERT INTO t VALUES (8, 'old token')"))).toBe('25006');
    await (await writer(url, next)).query("INSERT INTO t VALUES (8, 'new token')");

    // Rollback's last step: blue unfenced, guard gone, applications write again.
    expect((await control.unfence()).fenced).toBe(false);
    const guards = await reader.query("SELECT 1 FROM pg_trigger WHERE tgname = 'teal_reverse_guard'");
    expect(guards.rows).toHaveLength(0);
    const after = await sessionOn(url, 'shop');
    await after.query("INSERT INTO t VALUES (9, 'app after unfence')");
    const { rows: n } = await after.query<{ n: number }>('SELECT count(*)::int AS n FROM t');
    expect(n[0].n).toBe(4);
  });
});
