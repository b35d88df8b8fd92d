import type { Readable } from 'node:stream';
import { formatLsn, type Lsn, type PgText, type TableSchema } from '@teal/change-event';
import { connectClient, quoteIdent, quoteLiteral, quoteTable, writeSnapshotProgress } from '@teal/postgres';
import { keysetAfter, keysetOrder, type SqlPart } from '@teal/postgres/keyset';
import type { Logger, TealMetrics } from '@teal/runtime';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { TableProgress } from './initial-snapshot.ts';
import { estimateRows, type KeyShape, keyShape } from './snapshot-reader.ts';

// The direct initial copy (snapshot.via 'direct', docs/architecture.md "Direct initial copy"):
// `parallel` blue sessions import the slot's exported snapshot (held open by the slot's
// creating connection) and each table is cut into ranges: by key when the key is unique and
// NOT NULL (bounds found as the copy goes, `rangeRows` apart in key order), by ctid pages for
// other plain tables (a TID range scan, PostgreSQL 14+), else one range. Each range is
// `COPY (SELECT ...) TO STDOUT` on blue piped into green by the injected target (the
// consumer's green writer: COPY FROM, transforms) in one green transaction that also writes
// the table's teal.snapshot_progress row: the last key of the ranges done in key order, and
// 'done' with the last range. A table the target refuses, or whose range fails, is left
// unfinished: the producer then snapshots it by chunk through Kafka while streaming
// (chunk-snapshot.ts), after the last recorded key, as it does for every table when the
// exported snapshot died with a crash. Rows of ranges done after that key are read again
// then, and applied as upserts (no duplicate).

type Queryable = Pick<pg.ClientBase, 'query'>;

/** The green side, injected (services/cli wires the consumer's writer). */
export interface DirectCopyTarget {
  prepare(table: TableSchema): Promise<DirectCopyTable | { refused: string }>;
  close(): Promise<void>;
}

export interface DirectCopyTable {
  readonly mode: string;
  write(source: Readable, record: (db: Queryable, rows: number) => Promise<void>): Promise<number>;
}

export interface DirectCopyOptions {
  blueUrl: string;
  snapshotName: string;
  consistentPoint: Lsn;
  tables: readonly TableSchema[];
  parallel: number;
  rangeRows: number;
  target: DirectCopyTarget;
  progress: Map<string, TableProgress>;
  log: Logger;
  metrics?: TealMetrics;
  signal: AbortSignal;
  /** Resolves when the pipeline is not paused (checked before each range). */
  whilePaused(): Promise<void>;
  /** Test hook: runs after each range is committed in green. */
  afterRange?(table: string, rows: number): Promise<void>;
}

type Bounds =
  | { kind: 'key'; lo: PgText[] | null; hi: PgText[] | null }
  | { kind: 'pages'; from: number; to: number | null }
  | { kind: 'all' };

interface Range {
  readonly job: TableJob;
  readonly index: number;
  readonly bounds: Bounds;
}

class Mutex {
  private tail: Promise<void> = Promise.resolve();

  acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((resolve) => {
      release = resolve;
    });
    const ready = this.tail.then(() => release);
    this.tail = this.tail.then(() => next);
    return ready;
  }
}

interface TableJob {
  readonly table: TableSchema;
  readonly name: string;
  readonly entry: TableProgress;
  readonly dest: DirectCopyTable;
  readonly select: string;
  readonly shape: KeyShape;
  readonly kind: Bounds['kind'];
  /** Key: the next range's lower bound; pages: its first page. */
  nextKey: PgText[] | null;
  nextPage: number;
  pagesPerRange: number;
  pages: number;
  /** Every range of the table has been handed out. */
  planned: boolean;
  failed: boolean;
  readonly ranges: Range[];
  readonly done: Set<number>;
  rowsDone: number;
  /** Serializes the progress write and commit of this table's ranges. */
  readonly commit: Mutex;
}

/** Copies `tables` straight into green; returns the names left unfinished (copied later by chunk). */
export async function runDirectCopy(opts: DirectCopyOptions): Promise<string[]> {
  const { log } = opts;
  const lsnText = formatLsn(opts.consistentPoint);
  const pending = [...opts.tables];
  const jobs: TableJob[] = [];
  const planner = new Mutex();
  let current: TableJob | undefined;

  // A stop cuts the COPYs in flight: their green transactions roll back, nothing is recorded.
  const sessions = new Set<pg.Client>();
  const cut = () => {
    for (const c of sessions) void c.end().catch(() => {});
  };
  opts.signal.addEventListener('abort', cut, { once: true });
  const open = async (): Promise<pg.Client> => {
    const client = await connectClient(opts.blueUrl, { applicationName: 'teal-producer-snapshot' });
    sessions.add(client);
    client.once('end', () => sessions.delete(client));
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(opts.snapshotName)}`);
      return client;
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
  };
  const first = await open();
  const version = Number(
    (await first.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0].v,
  );

  const startJob = async (db: pg.Client, table: TableSchema): Promise<TableJob | undefined> => {
    const name = `${table.schema}.${table.table}`;
    const entry = opts.progress.get(name) ?? { table: name, state: 'pending', rowsDone: 0, rowsEstimated: 0 };
    opts.progress.set(name, entry);
    const dest = await opts.target.prepare(table);
    if ('refused' in dest) {
      log.info(
        { table: name, reason: dest.refused },
        'not copied directly; snapshotted through Kafka instead',
      );
      return undefined;
    }
    entry.rowsEstimated = await estimateRows(db, table.schema, table.table);
    entry.state = 'running';
    const shape = await keyShape(db, table);
    const rel = quoteTable(table.schema, table.table);
    const select = `SELECT ${table.columns.map((c) => quoteIdent(c.name)).join(', ')} FROM ${rel}`;
    const size = await db.query<{ kind: string; pages: string; per_page: string }>(
      `SELECT c.relkind::text AS kind, (pg_relation_size(c.oid) / current_setting('block_size')::int)::int8::text AS pages,
              CASE WHEN c.relpages > 0 AND c.reltuples > 0 THEN (c.reltuples / c.relpages)::float8 ELSE 0 END::text AS per_page
         FROM pg_class c WHERE c.oid = $1::regclass`,
      [rel],
    );
    const usableKey = shape.unique && shape.columns.every((c) => !c.nullable) && shape.columns.length > 0;
    const plainTable = size.rows[0]?.kind === 'r' && version >= 140000;
    const kind: Bounds['kind'] = usableKey ? 'key' : plainTable ? 'pages' : 'all';
    const perPage = Number(size.rows[0]?.per_page ?? 0) || 50;
    const job: TableJob = {
      table,
      name,
      entry,
      dest,
      select,
      shape,
      kind,
      nextKey: null,
      nextPage: 0,
      pagesPerRange: Math.max(1, Math.ceil(opts.rangeRows / perPage)),
      pages: Number(size.rows[0]?.pages ?? 0),
      planned: false,
      failed: false,
      ranges: [],
      done: new Set(),
      rowsDone: 0,
      commit: new Mutex(),
    };
    log.info({ table: name, ranges: kind, mode: dest.mode }, 'copying directly to green');
    jobs.push(job);
    return job;
  };

  // The next range of the current table (its upper key bound read in `db`'s snapshot), or of the next table.
  const nextRange = async (db: pg.Client): Promise<Range | undefined> => {
    const release = await planner.acquire();
    try {
      for (;;) {
        if (opts.signal.aborted) return undefined;
        if (!current || current.planned || current.failed) {
          const table = pending.shift();
          if (!table) return undefined;
          current = await startJob(db, table);
          continue;
        }
        const job = current;
        const index = job.ranges.length;
        let bounds: Bounds;
        if (job.kind === 'key') {
          const hi = await upperKey(db, job, opts.rangeRows);
          bounds = { kind: 'key', lo: job.nextKey, hi };
          job.nextKey = hi;
          job.planned = hi === null;
        } else if (job.kind === 'pages') {
          const from = job.nextPage;
          const to = from + job.pagesPerRange >= job.pages ? null : from + job.pagesPerRange;
          bounds = { kind: 'pages', from, to };
          job.nextPage = to ?? from;
          job.planned = to === null;
        } else {
          bounds = { kind: 'all' };
          job.planned = true;
        }
        const range: Range = { job, index, bounds };
        job.ranges.push(range);
        return range;
      }
    } finally {
      release();
    }
  };

  const copyRange = async (db: pg.Client, range: Range): Promise<void> => {
    const { job } = range;
    const source = db.query(copyTo(`COPY (${job.select}${rangeWhere(job, range.bounds)}) TO STDOUT`));
    let release: (() => void) | undefined;
    try {
      const rows = await job.dest.write(source, async (green, written) => {
        release = await job.commit.acquire();
        const done = new Set(job.done).add(range.index);
        const all = job.planned && done.size === job.ranges.length;
        await writeSnapshotProgress(green, {
          schema: job.table.schema,
          table: job.table.table,
          state: all ? 'done' : 'running',
          lastKey: all ? null : doneKey(job, done),
          rowsDone: job.rowsDone + written,
          rowsEstimated: job.entry.rowsEstimated,
          snapshotLsn: lsnText,
          direct: !all,
        });
      });
      // Committed: the range is done for good.
      job.done.add(range.index);
      job.rowsDone += rows;
      job.entry.rowsDone = job.rowsDone;
      if (job.planned && job.done.size === job.ranges.length) job.entry.state = 'done';
      opts.metrics?.snapshotRows.inc({ table: job.name }, rows);
      await opts.afterRange?.(job.name, rows);
    } catch (err) {
      source.destroy();
      throw err;
    } finally {
      release?.();
    }
  };

  const worker = async (session: pg.Client | undefined): Promise<void> => {
    let db = session;
    try {
      while (!opts.signal.aborted) {
        await opts.whilePaused();
        db ??= await open();
        const range = await nextRange(db);
        if (!range) return;
        try {
          await copyRange(db, range);
        } catch (err) {
          if (opts.signal.aborted) return;
          range.job.failed = true;
          log.warn(
            { err, table: range.job.name },
            'direct copy of a range failed; the table is finished through Kafka while streaming',
          );
          // A session whose COPY was cut off is not reused; the next one imports the snapshot again.
          await db.end().catch(() => {});
          db = undefined;
        }
      }
    } finally {
      if (db) {
        await db.query('COMMIT').catch(() => {});
        await db.end().catch(() => {});
      }
    }
  };

  const workers = [worker(first)];
  for (let i = 1; i < Math.max(1, opts.parallel); i++) workers.push(worker(undefined));
  const results = await Promise.allSettled(workers);
  opts.signal.removeEventListener('abort', cut);
  for (const r of results)
    if (r.status === 'rejected' && !opts.signal.aborted)
      log.warn({ err: r.reason }, 'a direct copy session stopped; what it did not copy goes through Kafka');
  const done = new Set(jobs.filter((j) => j.entry.state === 'done').map((j) => j.name));
  for (const j of jobs) if (j.entry.state !== 'done') j.entry.state = 'pending';
  return opts.tables.map((t) => `${t.schema}.${t.table}`).filter((n) => !done.has(n));
}

/**
 * Marks every table as copied directly (teal.snapshot_progress `direct`), so the consumer holds
 * their stream back: written before the stream starts, so no change of them is applied first.
 */
export async function holdTables(
  green: Queryable,
  tables: readonly TableSchema[],
  consistentPoint: Lsn,
): Promise<void> {
  for (const t of tables)
    await writeSnapshotProgress(green, {
      schema: t.schema,
      table: t.table,
      state: 'running',
      lastKey: null,
      rowsDone: 0,
      rowsEstimated: 0,
      snapshotLsn: formatLsn(consistentPoint),
      direct: true,
    });
}

/** The key `rangeRows` rows after the job's next lower bound; null when fewer are left (the last range). */
async function upperKey(db: Queryable, job: TableJob, rangeRows: number): Promise<PgText[] | null> {
  const cols = job.shape.columns;
  const order = keysetOrder(cols);
  const where = job.nextKey === null ? '' : ` WHERE ${inline(keysetAfter(cols, job.nextKey, 1))}`;
  const rel = quoteTable(job.table.schema, job.table.table);
  const { rows } = await db.query<Record<string, string>>(
    `SELECT ${order} FROM ${rel}${where} ORDER BY ${order} OFFSET ${Math.max(0, Math.floor(rangeRows) - 1)} LIMIT 1`,
  );
  if (rows.length === 0) return null;
  // A bound at the very last row leaves an empty last range: harmless.
  return cols.map((c) => rows[0][c.name] ?? null);
}

function rangeWhere(job: TableJob, b: Bounds): string {
  const cols = job.shape.columns;
  if (b.kind === 'key') {
    const parts: string[] = [];
    if (b.lo) parts.push(inline(keysetAfter(cols, b.lo, 1)));
    if (b.hi) parts.push(`NOT (${inline(keysetAfter(cols, b.hi, 1))})`);
    return parts.length === 0 ? '' : ` WHERE ${parts.join(' AND ')}`;
  }
  if (b.kind === 'pages') {
    const from = `ctid >= '(${b.from},0)'::tid`;
    return b.to === null ? ` WHERE ${from}` : ` WHERE ${from} AND ctid < '(${b.to},0)'::tid`;
  }
  return '';
}

/** The upper bound of the ranges done without a gap from the start, in key order; null when none. */
function doneKey(job: TableJob, done: ReadonlySet<number>): PgText[] | null {
  if (job.kind !== 'key') return null;
  let last: PgText[] | null = null;
  for (let i = 0; i < job.ranges.length && done.has(i); i++) {
    const b = job.ranges[i].bounds;
    if (b.kind !== 'key' || b.hi === null) break;
    last = b.hi;
  }
  return last;
}

/**
 * COPY takes no parameters: keyset's `$n` become literals (outside quoted identifiers). An
 * untyped literal takes the key column's type, as the parameter did.
 */
export function inline(part: SqlPart): string {
  let out = '';
  let quoted = false;
  const { sql } = part;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i];
    if (c === '"') quoted = !quoted;
    if (!quoted && c === '$' && /[0-9]/.test(sql[i + 1] ?? '')) {
      let j = i + 1;
      while (j < sql.length && /[0-9]/.test(sql[j])) j++;
      out += quoteLiteral(part.values[Number(sql.slice(i + 1, j)) - 1]);
      i = j - 1;
      continue;
    }
    out += c;
  }
  return out;
}
