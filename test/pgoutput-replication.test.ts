import net from 'node:net';
import { formatLsn, type Lsn, parseLsn } from '@teal/change-event';
import { type AssemblerOutput, MemorySpillStore, TransactionAssembler } from '@teal/pgoutput';
import { ReplicationClient, type ReplicationClientOptions } from '@teal/postgres';
import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { blueUrl, pgClient, uniqueName } from './support/env.ts';

// ReplicationClient + TransactionAssembler against the real blue (PostgreSQL 15, pgoutput
// proto_version 3, streaming on). Each test has its own table, publication and slot.

async function fixture(admin: pg.Client, ddl: (table: string) => string) {
  const table = uniqueName('pgo_t');
  const pub = uniqueName('pgo_pub');
  const slot = uniqueName('pgo_slot');
  await admin.query(ddl(table));
  await admin.query(`CREATE PUBLICATION ${pub} FOR TABLE ${table}`);
  const created = await admin.query(`SELECT lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')`, [
    slot,
  ]);
  onTestFinished(async () => {
    // The walsender leaves a moment after the client closes; a slot is dropped once inactive.
    await waitFor(
      async () =>
        (await admin.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [slot]))
          .rowCount === 0,
      { what: `slot ${slot} inactive`, timeoutMs: 20_000 },
    );
    await admin.query('SELECT pg_drop_replication_slot($1)', [slot]);
    await admin.query(`DROP PUBLICATION IF EXISTS ${pub}`);
    await admin.query(`DROP TABLE IF EXISTS ${table}`);
  });
  return { table, pub, slot, startLsn: parseLsn(created.rows[0].lsn as string) };
}

function client(slot: string, pub: string, extra: Partial<ReplicationClientOptions> = {}) {
  const c = new ReplicationClient({
    connectionString: blueUrl(),
    slot,
    publication: pub,
    protoVersion: 3,
    streaming: true,
    statusIntervalMs: 200,
    ...extra,
  });
  onTestFinished(() => c.close());
  return c;
}

/** What `p` rejected with (a handler attached at once); fails the test if it resolved. */
async function settle(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected the stream to fail');
    },
    (err: unknown) => err,
  );
}

/** Streams until the non-transactional end marker arrives; returns every assembler output. */
async function collectUntilEnd(
  c: ReplicationClient,
  asm: TransactionAssembler,
  end: string,
): Promise<AssemblerOutput[]> {
  const out: AssemblerOutput[] = [];
  for await (const m of c.messages()) {
    for await (const o of asm.push(m.payload)) {
      if (o.kind === 'message' && o.message.prefix === end) return out;
      out.push(o);
    }
  }
  throw new Error('replication ended before the end marker');
}

async function slotActive(admin: pg.Client, slot: string): Promise<boolean> {
  // Text mode (as all teal clients): booleans arrive as 't' / 'f'.
  const r = await admin.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  return r.rows[0]?.active === 't';
}

async function confirmedFlush(admin: pg.Client, slot: string): Promise<Lsn> {
  const r = await admin.query('SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1', [
    slot,
  ]);
  return parseLsn(r.rows[0].confirmed_flush_lsn as string);
}

const changes = (out: AssemblerOutput[]) => out.flatMap((o) => (o.kind === 'change' ? [o.event] : []));
const commits = (out: AssemblerOutput[]) =>
  out.flatMap((o) => (o.kind === 'commit' ? [o] : [])) as Extract<AssemblerOutput, { kind: 'commit' }>[];

describe('ReplicationClient + TransactionAssembler on real blue', () => {
  it('delivers insert, update with unchanged TOAST, key change, delete, message and truncate; confirms only what is acknowledged', async () => {
    const admin = await pgClient(blueUrl());
    const { table, pub, slot, startLsn } = await fixture(
      admin,
      (t) => `CREATE TABLE ${t} (id int PRIMARY KEY, note text, big text);
              ALTER TABLE ${t} ALTER COLUMN big SET STORAGE EXTERNAL`,
    );
    const big = (
      await admin.query(`SELECT string_agg(md5(random()::text), '') AS s FROM generate_series(1, 100)`)
    ).rows[0].s as string;
    await admin.query(`INSERT INTO ${table} VALUES (1, 'a', $1), (2, 'b', 'small')`, [big]);
    await admin.query(`UPDATE ${table} SET note = 'a2' WHERE id = 1`);
    await admin.query(`UPDATE ${table} SET id = 3 WHERE id = 2`);
    await admin.query(`DELETE FROM ${table} WHERE id = 3`);
    await admin.query(`BEGIN; INSERT INTO ${table} VALUES (4, 'ts', NULL);
      SELECT pg_logical_emit_message(true, 'teal.test.tx', 'hello'); COMMIT`);
    await admin.query(`TRUNCATE ${table}`);
    await admin.query(`SELECT pg_logical_emit_message(false, 'teal.test.end.${slot}', 'x')`);

    const c = client(slot, pub);
    const asm = new TransactionAssembler({ protoVersion: 3, spill: new MemorySpillStore() });
    await c.start(startLsn);
    const out = await collectUntilEnd(c, asm, `teal.test.end.${slot}`);

    const evs = changes(out);
    expect(evs.map((e) => [e.op, e.key.id ?? null])).toEqual([
      ['c', '1'],
      ['c', '2'],
      ['u', '1'],
      ['d', '2'],
      ['c', '3'],
      ['d', '3'],
      ['c', '4'],
      ['t', null],
    ]);
    expect(evs[0]!.after).toEqual({ id: '1', note: 'a', big });
    // The update left the 3200-byte TOASTed value alone: it is "unchanged", not NULL.
    expect(evs[2]!.unchanged).toEqual(['big']);
    expect(evs[2]!.after).toEqual({ id: '1', note: 'a2' });
    // Key change: delete + insert in one transaction, positions (commit LSN, 1) and (commit LSN, 2).
    expect(evs[3]!.position.lsn).toBe(evs[4]!.position.lsn);
    expect([evs[3]!.position.seq, evs[4]!.position.seq]).toEqual([1, 2]);
    expect(evs[4]!.after).toEqual({ id: '3', note: 'b', big: 'small' });
    // Messages are database-wide: other tests' messages may be interleaved.
    const msg = out.find((o) => o.kind === 'message' && o.message.prefix === 'teal.test.tx');
    expect(msg).toMatchObject({
      message: { transactional: true, prefix: 'teal.test.tx', position: { seq: 2 } },
    });
    expect(msg?.kind === 'message' && msg.message.content.toString()).toBe('hello');
    expect(evs[7]!.table).toBe(table);

    const txns = commits(out);
    expect(txns).toHaveLength(6);
    for (const t of txns) expect(t.endLsn).toBeGreaterThan(t.commitLsn);
    // Acknowledge the second transaction only: the slot confirms exactly that, although
    // everything up to the end marker has been received.
    const acked = txns[1]!.endLsn;
    c.acknowledge(acked);
    await waitFor(async () => (await confirmedFlush(admin, slot)) === acked, {
      what: `confirmed ${formatLsn(acked)}`,
    });
    expect(c.receivedLsn).toBeGreaterThan(acked);
    await c.close();
    expect(await confirmedFlush(admin, slot)).toBe(acked);

    // A restart from the acknowledged LSN replays what followed it, from the key change on.
    await waitFor(async () => !(await slotActive(admin, slot)), { what: 'slot released' });
    await admin.query(`SELECT pg_logical_emit_message(false, 'teal.test.end.${slot}', 'x')`);
    const again = client(slot, pub);
    await again.start(acked);
    const replay = await collectUntilEnd(
      again,
      new TransactionAssembler({ protoVersion: 3, spill: new MemorySpillStore() }),
      `teal.test.end.${slot}`,
    );
    expect(changes(replay).map((e) => [e.op, e.key.id ?? null])).toEqual([
      ['d', '2'],
      ['c', '3'],
      ['d', '3'],
      ['c', '4'],
      ['t', null],
    ]);
  });

  it('streams a large transaction, applies it at commit, and drops an aborted one', async () => {
    const admin = await pgClient(blueUrl());
    const { table, pub, slot, startLsn } = await fixture(
      admin,
      (t) => `CREATE TABLE ${t} (id int PRIMARY KEY, pad text)`,
    );
    const c = client(slot, pub, { settings: { logical_decoding_work_mem: '64kB' } });
    const asm = new TransactionAssembler({ protoVersion: 3, spill: new MemorySpillStore() });
    await c.start(startLsn);
    const streamStarts: number[] = [];
    c.on('xlog', (m: { payload: Buffer }) => {
      if (m.payload[0] === 0x53) streamStarts.push(m.payload.readUInt32BE(1));
    });

    const rows = 3000;
    await admin.query(`BEGIN;
      INSERT INTO ${table} SELECT g, repeat('x', 100) FROM generate_series(1, ${rows}) g;
      SAVEPOINT s1; INSERT INTO ${table} VALUES (-1, 'rolled back'); ROLLBACK TO SAVEPOINT s1;
      INSERT INTO ${table} VALUES (-2, 'kept');
      COMMIT`);
    await admin.query(
      `BEGIN; INSERT INTO ${table} SELECT g, repeat('y', 100) FROM generate_series(${rows + 1}, ${2 * rows}) g; ROLLBACK`,
    );
    await admin.query(`SELECT pg_logical_emit_message(false, 'teal.test.end.${slot}', 'x')`);
    const out = await collectUntilEnd(c, asm, `teal.test.end.${slot}`);

    // Both big transactions went through Stream Start/Stop blocks (64kB decoding memory).
    expect(new Set(streamStarts).size).toBe(2);
    const begin = out.find((o) => o.kind === 'begin');
    expect(begin).toMatchObject({ streamed: true });
    const evs = changes(out);
    expect(evs).toHaveLength(rows + 1);
    expect(evs.map((e) => e.position.seq)).toEqual(Array.from({ length: rows + 1 }, (_, i) => i + 1));
    expect(new Set(evs.map((e) => e.position.lsn))).toEqual(
      new Set([begin?.kind === 'begin' ? begin.commitLsn : -1n]),
    );
    expect(evs.at(-1)!.key).toEqual({ id: '-2' });
    expect(evs.some((e) => e.key.id === '-1' || Number(e.key.id) > rows)).toBe(false);
    expect(commits(out)).toHaveLength(1);
    expect(asm.openStreams.size).toBe(0);
  });

  it('names the slot in typed errors: missing, and in use (retriable)', async () => {
    const admin = await pgClient(blueUrl());
    const { pub, slot, startLsn } = await fixture(admin, (t) => `CREATE TABLE ${t} (id int PRIMARY KEY)`);
    const missing = uniqueName('pgo_nope');
    await expect(client(missing, pub).start(0n)).rejects.toMatchObject({
      code: 'TEAL_SLOT_MISSING',
      message: expect.stringContaining(missing),
    });
    const first = client(slot, pub);
    await first.start(startLsn);
    await expect(client(slot, pub).start(startLsn)).rejects.toMatchObject({
      code: 'TEAL_SLOT_IN_USE',
      retriable: true,
      message: expect.stringContaining(slot),
    });
  });

  it('turns a lost walsender connection into a retriable error from messages()', async () => {
    const admin = await pgClient(blueUrl());
    const { pub, slot, startLsn } = await fixture(admin, (t) => `CREATE TABLE ${t} (id int PRIMARY KEY)`);
    const c = client(slot, pub);
    const errors: unknown[] = [];
    c.on('error', (err) => errors.push(err));
    await c.start(startLsn);
    // Handled from the start: the walsender's end can reach this client before the answer
    // to pg_terminate_backend reaches the admin session (an unhandled rejection otherwise).
    const consumed = settle(
      (async () => {
        for await (const _ of c.messages());
      })(),
    );
    await admin.query(
      'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    expect(await consumed).toMatchObject({ retriable: true, message: expect.stringContaining(slot) });
    expect(errors).toHaveLength(1);
  });

  // Regression: a socket that closed under the walsender (network, or blue stopped) came out
  // as TEAL_REPLICATION_FAILED, not retriable, so the producer stopped for good instead of
  // starting a new session; "write EPIPE" was even read as SQLSTATE EPIPE.
  it('turns a socket cut under the walsender into a retriable error, not a permanent one', async () => {
    const admin = await pgClient(blueUrl());
    const { pub, slot, startLsn } = await fixture(admin, (t) => `CREATE TABLE ${t} (id int PRIMARY KEY)`);
    const target = new URL(blueUrl());
    const sockets = new Set<net.Socket>();
    const proxy = net.createServer((inbound) => {
      const outbound = net.connect(Number(target.port), target.hostname);
      sockets.add(inbound).add(outbound);
      inbound.pipe(outbound).pipe(inbound);
      inbound.on('error', () => outbound.destroy());
      outbound.on('error', () => inbound.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
    const via = new URL(blueUrl());
    via.port = String((proxy.address() as net.AddressInfo).port);
    const c = client(slot, pub, { connectionString: via.toString() });
    await c.start(startLsn);
    const consumed = settle(
      (async () => {
        for await (const _ of c.messages());
      })(),
    );
    for (const s of sockets) s.destroy();
    expect(await consumed).toMatchObject({
      code: 'TEAL_REPLICATION_CONNECTION_LOST',
      retriable: true,
    });
  });
});
