import { VALUE_SESSION_OPTIONS } from '@teal/postgres';
import { abortableDelay } from '@teal/runtime';
import pg from 'pg';
import type { Rng } from './rng.ts';
import type { Shape, ShapeStats } from './shapes.ts';
import type { SoakTables } from './tables.ts';

// The write load on blue, drawn from a seeded RNG: inserts, updates that leave the TOASTed
// body alone (most) or replace it, primary-key changes, deletes, multi-statement and
// rolled-back transactions, an occasional TRUNCATE of the ledger, and large transactions
// (>= 50k rows of ~1.6 kB each, beyond blue's logical_decoding_work_mem of 64 MB, so the
// walsender streams them in progress with protocol v2) that commit or abort.

export interface WorkloadStats {
  transactions: number;
  rolledBack: number;
  inserts: number;
  updates: number;
  toastUnchangedUpdates: number;
  keyChanges: number;
  deletes: number;
  truncates: number;
  bigTransactions: Array<{ rows: number; committed: boolean; ms: number }>;
  errors: number;
}

export function emptyStats(): WorkloadStats {
  return {
    transactions: 0,
    rolledBack: 0,
    inserts: 0,
    updates: 0,
    toastUnchangedUpdates: 0,
    keyChanges: 0,
    deletes: 0,
    truncates: 0,
    bigTransactions: [],
    errors: 0,
  };
}

export function textClient(url: string): pg.Client {
  const client = new pg.Client({
    connectionString: url,
    types: { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig,
    options: VALUE_SESSION_OPTIONS,
    application_name: 'soak-workload',
  });
  client.on('error', () => {});
  return client;
}

/** Ids are handed out by one counter shared by every writer: keys never collide. */
export class KeySpace {
  private nextItem = 1;
  private nextEntry = 1;
  item(): number {
    return this.nextItem++;
  }
  entry(): number {
    return this.nextEntry++;
  }
  get maxItem(): number {
    return this.nextItem;
  }
  get maxEntry(): number {
    return this.nextEntry;
  }
}

const ACCOUNTS = 50;

function itemValues(rng: Rng, t: SoakTables, id: number): [string, unknown[]] {
  const big = `${rng.int(1, 9)}${rng.hex(12).replace(/[a-f]/g, '7')}${rng.int(100000, 999999)}`;
  const amount = rng.chance(0.02) ? 'NaN' : `${big}.${String(rng.int(0, 999999999)).padStart(9, '0')}`;
  const doc = `{"big": ${big}${rng.int(10, 99)}, "f": ${rng.next()}, "s": "${rng.hex(8)}", "nested": {"a": [1, null, ${rng.int(0, 1000)}]}}`;
  const at = `2024-0${rng.int(1, 9)}-1${rng.int(0, 9)} 0${rng.int(0, 9)}:${rng.int(10, 59)}:${rng.int(10, 59)}.${String(rng.int(0, 999999)).padStart(6, '0')}+00`;
  const tags = `{${rng.hex(4)},NULL,"${rng.hex(3)} x"}`;
  // 2.5-8 kB of hex: stored out of line (STORAGE EXTERNAL), so it is a TOAST value.
  const body = rng.hex(rng.int(2500, 8000));
  return [
    `INSERT INTO ${t.items} (id, ver, n, body, amount, doc, at, tags) VALUES ($1, nextval('${t.ver}'), 0, $2, $3, $4, $5, $6)`,
    [id, body, amount, doc, at, tags],
  ];
}

function ledgerValues(rng: Rng, t: SoakTables, entry: number): [string, unknown[]] {
  return [
    `INSERT INTO ${t.ledger} (account, entry, ver, amount, memo, flags, at) VALUES ($1, $2, nextval('${t.ver}'), $3, $4, $5, $6)`,
    [
      rng.int(1, ACCOUNTS),
      entry,
      `${rng.int(-99999999, 99999999)}.${String(rng.int(0, 999999)).padStart(6, '0')}`,
      rng.chance(0.1) ? null : `memo ${rng.hex(rng.int(4, 60))}`,
      rng.chance(0.1) ? null : `{${rng.int(0, 9)},NULL,${rng.int(0, 9)}}`,
      rng.chance(0.01) ? 'infinity' : `2025-01-01 00:00:00.${String(rng.int(0, 999999)).padStart(6, '0')}+00`,
    ],
  ];
}

/** One small statement of a random kind; returns what it counted. */
async function statement(db: pg.ClientBase, rng: Rng, t: SoakTables, keys: KeySpace, stats: WorkloadStats) {
  const r = rng.next();
  const someItem = rng.int(1, keys.maxItem);
  const someEntry = rng.int(1, keys.maxEntry);
  if (r < 0.22) {
    const [sql, values] = itemValues(rng, t, keys.item());
    await db.query(sql, values);
    stats.inserts++;
  } else if (r < 0.4) {
    const n = rng.int(1, 5);
    for (let i = 0; i < n; i++) {
      const [sql, values] = ledgerValues(rng, t, keys.entry());
      await db.query(sql, values);
    }
    stats.inserts += n;
  } else if (r < 0.62) {
    // Leaves body (TOAST) untouched: pgoutput sends it as unchanged.
    const res = await db.query(
      `UPDATE ${t.items} SET n = n + 1, ver = nextval('${t.ver}'), amount = amount + 1, doc = jsonb_set(doc, '{s}', to_jsonb($2::text))
        WHERE id = (SELECT id FROM ${t.items} WHERE id >= $1 ORDER BY id LIMIT 1)`,
      [someItem, rng.hex(6)],
    );
    stats.updates += res.rowCount ?? 0;
    stats.toastUnchangedUpdates += res.rowCount ?? 0;
  } else if (r < 0.67) {
    const res = await db.query(
      `UPDATE ${t.items} SET body = $2, n = n + 1, ver = nextval('${t.ver}')
        WHERE id = (SELECT id FROM ${t.items} WHERE id >= $1 ORDER BY id LIMIT 1)`,
      [someItem, rng.hex(rng.int(2500, 6000))],
    );
    stats.updates += res.rowCount ?? 0;
  } else if (r < 0.78) {
    const res = await db.query(
      `UPDATE ${t.ledger} SET amount = amount * -1, ver = nextval('${t.ver}'), memo = coalesce(memo, '') || 'u'
        WHERE (account, entry) IN (SELECT account, entry FROM ${t.ledger} WHERE entry >= $1 ORDER BY entry LIMIT $2)`,
      [someEntry, rng.int(1, 10)],
    );
    stats.updates += res.rowCount ?? 0;
  } else if (r < 0.83) {
    // Primary-key change (a delete of the old key and an insert of the new one), body unchanged.
    const res = await db.query(
      `UPDATE ${t.items} SET id = $2, ver = nextval('${t.ver}')
        WHERE id = (SELECT id FROM ${t.items} WHERE id >= $1 ORDER BY id LIMIT 1)`,
      [someItem, keys.item()],
    );
    stats.keyChanges += res.rowCount ?? 0;
  } else if (r < 0.86) {
    const res = await db.query(
      `UPDATE ${t.ledger} SET entry = $2, account = account % ${ACCOUNTS} + 1, ver = nextval('${t.ver}')
        WHERE (account, entry) = (SELECT account, entry FROM ${t.ledger} WHERE entry >= $1 ORDER BY entry LIMIT 1)`,
      [someEntry, keys.entry()],
    );
    stats.keyChanges += res.rowCount ?? 0;
  } else if (r < 0.93) {
    const res = await db.query(
      `DELETE FROM ${t.items} WHERE id = (SELECT id FROM ${t.items} WHERE id >= $1 ORDER BY id LIMIT 1)`,
      [someItem],
    );
    stats.deletes += res.rowCount ?? 0;
  } else {
    const res = await db.query(
      `DELETE FROM ${t.ledger} WHERE (account, entry) IN (SELECT account, entry FROM ${t.ledger} WHERE entry >= $1 ORDER BY entry LIMIT $2)`,
      [someEntry, rng.int(1, 5)],
    );
    stats.deletes += res.rowCount ?? 0;
  }
}

export interface WriterOptions {
  url: string;
  rng: Rng;
  tables: SoakTables;
  keys: KeySpace;
  stats: WorkloadStats;
  signal: AbortSignal;
  /** Target transactions per second of this writer (a schedule, not a synchronization). */
  rate: number;
}

/** One writer connection; small transactions of 1-4 statements until the signal. */
export async function runWriter(o: WriterOptions): Promise<void> {
  const db = textClient(o.url);
  await db.connect();
  try {
    while (!o.signal.aborted) {
      const started = Date.now();
      const rollback = o.rng.chance(0.06);
      const n = o.rng.int(1, 4);
      try {
        await db.query('BEGIN');
        for (let i = 0; i < n; i++) await statement(db, o.rng, o.tables, o.keys, o.stats);
        await db.query(rollback ? 'ROLLBACK' : 'COMMIT');
        o.stats.transactions++;
        if (rollback) o.stats.rolledBack++;
      } catch (err) {
        // 40P01 between two writers touching the same rows: the transaction is gone, retry with the next.
        o.stats.errors++;
        await db.query('ROLLBACK').catch(() => {});
        if (!['40P01', '40001', '23505'].includes((err as { code?: string }).code ?? '')) throw err;
      }
      const wait = 1000 / o.rate - (Date.now() - started);
      if (wait > 0) await abortableDelay(o.rng.int(0, Math.round(2 * wait)), o.signal);
    }
  } finally {
    await db.end().catch(() => {});
  }
}

export async function truncateLedger(url: string, t: SoakTables, stats: WorkloadStats): Promise<void> {
  const db = textClient(url);
  await db.connect();
  try {
    await db.query(`TRUNCATE ${t.ledger}`);
    stats.truncates++;
  } finally {
    await db.end().catch(() => {});
  }
}

/**
 * One transaction of `rows` ledger inserts (~1.6 kB each) plus updates of a tenth of them,
 * committed or rolled back. Its account is above the writers' range, so keys never collide.
 */
export async function bigTransaction(
  url: string,
  t: SoakTables,
  account: number,
  rows: number,
  commit: boolean,
  stats: WorkloadStats,
): Promise<void> {
  const db = textClient(url);
  await db.connect();
  const started = Date.now();
  try {
    await db.query('BEGIN');
    await db.query(
      `INSERT INTO ${t.ledger} (account, entry, ver, amount, memo, flags, at)
       SELECT $1::int, g, nextval('${t.ver}'), (g * 1.000001)::numeric(20, 6), repeat(md5(g::text || $1::text), 50),
              ARRAY[g, NULL, g + 1], '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 microsecond'
         FROM generate_series(1, $2::int) g`,
      [account, rows],
    );
    await db.query(
      `UPDATE ${t.ledger} SET amount = -amount, ver = nextval('${t.ver}') WHERE account = $1 AND entry % 10 = 0`,
      [account],
    );
    await db.query(commit ? 'COMMIT' : 'ROLLBACK');
    stats.bigTransactions.push({ rows, committed: commit, ms: Date.now() - started });
  } finally {
    await db.end().catch(() => {});
  }
}

export async function seed(url: string, rng: Rng, t: SoakTables, keys: KeySpace, rows: number) {
  const db = textClient(url);
  await db.connect();
  try {
    await db.query('BEGIN');
    for (let i = 0; i < rows; i++) {
      const [sql, values] = itemValues(rng, t, keys.item());
      await db.query(sql, values);
      const [lsql, lvalues] = ledgerValues(rng, t, keys.entry());
      await db.query(lsql, lvalues);
    }
    await db.query('COMMIT');
  } finally {
    await db.end().catch(() => {});
  }
}

export interface ShapeWriterOptions {
  url: string;
  rng: Rng;
  shapes: Shape[];
  stats: ShapeStats;
  signal: AbortSignal;
  /** Transactions per second over all shapes (a schedule, not a synchronization). */
  rate: number;
}

/** One connection writing the issue-12 shapes: each transaction is one shape's step. */
export async function runShapeWriter(o: ShapeWriterOptions): Promise<void> {
  if (o.shapes.length === 0) return;
  const db = textClient(o.url);
  await db.connect();
  try {
    while (!o.signal.aborted) {
      const started = Date.now();
      const shape = o.rng.pick(o.shapes);
      try {
        await db.query('BEGIN');
        await shape.step(db, o.rng, o.stats);
        await db.query('COMMIT');
        o.stats.transactions[shape.kind] = (o.stats.transactions[shape.kind] ?? 0) + 1;
      } catch (err) {
        await db.query('ROLLBACK').catch(() => {});
        // A TRUNCATE of the FK pair may take a row this step picked: the next step goes on.
        if (!['40P01', '40001', '23505', '23503'].includes((err as { code?: string }).code ?? '')) throw err;
      }
      const wait = 1000 / o.rate - (Date.now() - started);
      if (wait > 0) await abortableDelay(o.rng.int(0, Math.round(2 * wait)), o.signal);
    }
  } finally {
    await db.end().catch(() => {});
  }
}

export async function seedShapes(url: string, rng: Rng, shapes: Shape[]): Promise<void> {
  const db = textClient(url);
  await db.connect();
  try {
    for (const s of shapes) {
      await db.query('BEGIN');
      await s.seed(db, rng);
      await db.query('COMMIT');
    }
  } finally {
    await db.end().catch(() => {});
  }
}

const bodySql = (n32: number) =>
  `(SELECT string_agg(md5(random()::text || g::text || x::text), '') FROM generate_series(1, ${n32}) x)`;

/** A table added while streaming (chunk-kill): `rows` rows with ~3 kB TOASTed bodies. */
export async function seedChunkTable(db: pg.ClientBase, table: string, ver: string, rows: number) {
  await db.query(
    `INSERT INTO ${table} SELECT g, nextval('${ver}'), 0, ${bodySql(100)} FROM generate_series(1, $1::int) g`,
    [rows],
  );
}

/**
 * Writes into a table while its chunked snapshot runs: mostly updates that leave the TOASTed
 * body unchanged (the case a chunk window must not drop), some body rewrites, deletes and inserts.
 */
export async function runChunkWriter(
  url: string,
  rng: Rng,
  table: string,
  ver: string,
  rows: number,
  stats: WorkloadStats,
  signal: AbortSignal,
): Promise<void> {
  const db = textClient(url);
  await db.connect();
  let next = rows + 1;
  try {
    while (!signal.aborted) {
      const r = rng.next();
      const id = rng.int(1, next);
      if (r < 0.75) {
        const res = await db.query(`UPDATE ${table} SET n = n + 1, ver = nextval('${ver}') WHERE id = $1`, [
          id,
        ]);
        stats.toastUnchangedUpdates += res.rowCount ?? 0;
        stats.updates += res.rowCount ?? 0;
      } else if (r < 0.85) {
        const res = await db.query(
          `UPDATE ${table} SET body = ${bodySql(90).replace('g::text', '$2::text')}, ver = nextval('${ver}') WHERE id = $1`,
          [id, rng.hex(8)],
        );
        stats.updates += res.rowCount ?? 0;
      } else if (r < 0.92) {
        const res = await db.query(`DELETE FROM ${table} WHERE id = $1`, [id]);
        stats.deletes += res.rowCount ?? 0;
      } else {
        await db.query(
          `INSERT INTO ${table} VALUES ($1, nextval('${ver}'), 0, ${bodySql(100).replace('g::text', '$2::text')})`,
          [next++, rng.hex(8)],
        );
        stats.inserts++;
      }
      await abortableDelay(rng.int(5, 40), signal);
    }
  } finally {
    await db.end().catch(() => {});
  }
}
