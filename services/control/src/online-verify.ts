import { formatLsn, type PgText, parseLsn } from '@teal/change-event';
import { parseTableName } from '@teal/config';
import { isUndefinedObject } from '@teal/errors';
import { quoteTable } from '@teal/postgres';
import { abortableDelay } from '@teal/runtime';
import type pg from 'pg';
import {
  type ChunkRow,
  captureTriggers,
  completePass,
  ensureCaptureTriggers,
  readDelta,
  saveChunk,
  startPass,
} from './online-verify-store.ts';
import { listTables, verifyReport, withVerifyClients } from './verify.ts';
import { type ChunkDiff, canonicalKey, diffChunk, summarizeChunk } from './verify-diff.ts';
import type { VerifyOptions, VerifyReport, VerifyTableReport } from './verify-report.ts';
import {
  addCompared,
  checkAbort,
  concludeTable,
  inOneSnapshotEach,
  openTable,
  planErrorReport,
  readBlueChunk,
  readGreenPage,
  readKeys,
  startTableReport,
  type VerifyClients,
  verifyTable,
} from './verify-table-run.ts';

// Online verify: the comparison of verify.ts, chunk by chunk while the pipeline runs, each
// chunk in snapshots of its own (blue first, then green, which has had the longer time to
// apply). What it found is kept in green (online-verify-store.ts), so that cutover's delta
// re-checks only what changed since.
//
// Why the delta is as strong as a full verify. Each table's pass starts by taking green's
// snapshot S (startPass) before it reads blue at all; the capture triggers record every key
// any green statement touches, with its xid. Take a key k whose chunk compared equal at
// (blue snapshot B, green snapshot G), B and G both after S. Anything that changes k later on
// blue reaches green through the consumer, whose write starts after B, so after S: recorded
// and not visible in S. Anything that changes k in green behind teal's back after S is
// recorded the same way. So at the fence, after a drain, a key that no transaction invisible
// to S touched is as it was compared; every other key is in teal.verify_changed, and the
// delta reads exactly those, on both sides, as verify does. Keys a chunk could not settle are
// re-checked too; a table without a complete pass, with a TRUNCATE since, with changed
// triggers or with dead letters is verified whole.
//
// A chunk that differs is re-checked after green has applied blue's WAL up to the position of
// its blue read (drain's waitApplied): only its differing keys, in new snapshots, all differing
// chunks of a table together (one wait per check). Equal ends
// it; the same difference twice in a row is stable, and reported with its keys; still moving
// after `maxChecks` it is 'unsettled' (changes in flight on those keys), and cutover re-checks
// its keys.

/** More differing keys than this in one chunk: not re-checked, and cutover verifies the table whole. */
const KEYS_PER_CHUNK = 1_000;

export interface OnlineVerifyDeps {
  /** Green has applied every change blue committed up to `lsn` (drain.ts waitApplied). */
  waitApplied(lsn: string, signal?: AbortSignal): Promise<void>;
  /** Green sessions for the state rows and triggers (outside the reading transactions). */
  state: pg.Client;
}

export interface OnlineOptions extends VerifyOptions {
  /** Blue rows read per second; 0 or absent: as fast as it goes. */
  rowsPerSecond?: number;
  /** Checks of a differing chunk before it is left unsettled (first read included); default 4. */
  maxChecks?: number;
  /**
   * When the table has a complete pass the capture triggers still vouch for: a round, which
   * re-checks only the keys changed since (and those it left open) and becomes the new pass.
   * Rounds shrink the delta cutover has to check to what changed since the last one.
   */
  rounds?: boolean;
  /** Called after each chunk is saved, and awaited (status, tests). */
  onChunk?: (table: string, chunk: ChunkRow) => void | Promise<void>;
}

/** A pace of `rowsPerSecond`: waits as long as the rows done so far are ahead of it. */
class Pace {
  private readonly started = Date.now();
  private rows = 0;
  constructor(private readonly rowsPerSecond: number) {}
  async after(rows: number, signal?: AbortSignal): Promise<void> {
    this.rows += rows;
    if (this.rowsPerSecond <= 0) return;
    const due = this.started + (this.rows / this.rowsPerSecond) * 1000;
    if (due > Date.now()) await abortableDelay(due - Date.now(), signal);
  }
}

const diffKeys = (d: ChunkDiff): PgText[][] => [
  ...d.missingInGreen.map((k) => [...k]),
  ...d.extraInGreen.map((k) => [...k]),
  ...d.different.map((x) => [...x.key]),
];

const isEmpty = (d: ChunkDiff) => diffKeys(d).length === 0;

/** Diffs compare equal when they name the same keys the same way (order aside). */
function sameDiff(a: ChunkDiff, b: ChunkDiff): boolean {
  const norm = (d: ChunkDiff) =>
    JSON.stringify([
      d.missingInGreen.map((k) => canonicalKey(k)).sort(),
      d.extraInGreen.map((k) => canonicalKey(k)).sort(),
      d.different.map((x) => `${canonicalKey(x.key)}:${x.columns.join(',')}`).sort(),
    ]);
  return norm(a) === norm(b);
}

/** Rows compared as a chunk: nothing when count and checksum agree. */
function compare(
  expected: Parameters<typeof diffChunk>[0],
  actual: Parameters<typeof diffChunk>[1],
): ChunkDiff {
  const a = summarizeChunk(expected);
  const b = summarizeChunk(actual);
  if (a.count === b.count && a.checksum === b.checksum)
    return { missingInGreen: [], extraInGreen: [], different: [] };
  return diffChunk(expected, actual);
}

/** Runs `fn` with blue's snapshot taken first (and blue's WAL insert position in it), then green's. */
async function inSnapshots<T>(t: VerifyClients, fn: (blueLsn: string) => Promise<T>): Promise<T> {
  await t.blue.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    // The snapshot is taken by this first statement; every commit it sees was inserted before.
    const { rows } = await t.blue.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    await t.green.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      return await fn(rows[0].lsn);
    } finally {
      await t.green.query('COMMIT').catch(() => {});
    }
  } finally {
    await t.blue.query('COMMIT').catch(() => {});
  }
}

async function onlineTable(
  clients: VerifyClients,
  deps: OnlineVerifyDeps,
  opts: OnlineOptions,
  blueName: string,
  pace: Pace,
): Promise<VerifyTableReport> {
  const t = await openTable(clients, opts, blueName);
  if ('error' in t) return planErrorReport(blueName, t);
  const pipeline = opts.config.kafka.topicPrefix;
  const { report, collector } = startTableReport(t);
  report.checked = 'online';
  const unsettled: PgText[][] = [];
  const triggers = await ensureCaptureTriggers(deps.state, t.plan);
  const previous = opts.rounds ? await readDelta(deps.state, pipeline, blueName, { keys: false }) : null;
  const round =
    previous !== null &&
    !previous.whole &&
    JSON.stringify(previous.pass.triggers) === JSON.stringify(triggers);
  const pass = await startPass(deps.state, pipeline, blueName, t.plan.greenName, triggers);
  const chunkRows = opts.chunkRows ?? 10_000;
  const maxChecks = opts.maxChecks ?? 4;
  let chunkNo = 0;
  let minLsn: bigint | null = null;

  // Differing chunks wait together: one wait for green to reach the newest of their blue
  // positions, then one read of all their keys, per check (a wait per chunk would cost the
  // producer's confirm interval each time).
  const pending: { row: ChunkRow; diff: ChunkDiff }[] = [];
  const noteLsn = (lsn: string) => {
    const value = parseLsn(lsn);
    if (minLsn === null || value < minLsn) minLsn = value;
  };
  /** The row of a chunk at its first read; a differing one is re-checked by resolvePending(). */
  const settle = (first: ChunkDiff, firstLsn: string, rows: number): ChunkRow => {
    const keys = diffKeys(first);
    const row: ChunkRow = {
      chunk: chunkNo++,
      rows,
      state: keys.length === 0 ? 'equal' : 'unsettled',
      keys: keys.length > KEYS_PER_CHUNK ? null : keys,
      blueLsn: firstLsn,
      checks: 1,
    };
    if (keys.length > 0) pending.push({ row, diff: first });
    else noteLsn(firstLsn);
    return row;
  };
  const resolvePending = async () => {
    let open = pending.filter((p) => p.row.keys !== null);
    while (open.length > 0) {
      checkAbort(opts.signal);
      const newest = open.map((p) => p.row.blueLsn).reduce((x, y) => (parseLsn(x) >= parseLsn(y) ? x : y));
      await deps.waitApplied(newest, opts.signal);
      const owner = new Map<string, number>();
      open.forEach((p, i) => {
        for (const k of diffKeys(p.diff)) owner.set(canonicalKey(k), i);
      });
      const next: ChunkDiff[] = open.map(() => ({ missingInGreen: [], extraInGreen: [], different: [] }));
      const lsn = await inSnapshots(clients, async (blueLsn) => {
        const keys = [...owner.keys()].map((k) => JSON.parse(k) as PgText[]);
        for (let i = 0; i < keys.length; i += chunkRows) {
          const r = await readKeys(t, keys.slice(i, i + chunkRows));
          const d = compare(r.rows, r.actual);
          const to = (k: readonly PgText[]) => next[owner.get(canonicalKey(k)) ?? 0];
          for (const k of d.missingInGreen) to(k).missingInGreen.push(k);
          for (const k of d.extraInGreen) to(k).extraInGreen.push(k);
          for (const x of d.different) to(x.key).different.push(x);
        }
        return blueLsn;
      });
      const still: typeof open = [];
      open.forEach((p, i) => {
        const d = next[i];
        p.row.checks++;
        p.row.blueLsn = lsn;
        if (isEmpty(d)) p.row.state = 'equal';
        else if (sameDiff(p.diff, d)) p.row.state = 'differs';
        else if (p.row.checks < maxChecks) still.push(p);
        p.diff = d;
        p.row.keys = diffKeys(d);
      });
      for (const p of open) await saveChunk(deps.state, pipeline, blueName, pass, p.row, false);
      open = still;
    }
    for (const p of pending) {
      noteLsn(p.row.blueLsn);
      if (p.row.state === 'differs') {
        report.mismatchedChunks++;
        collector.add(p.diff);
      } else if (p.row.state === 'unsettled') {
        report.mismatchedChunks++;
        unsettled.push(...diffKeys(p.diff));
      }
    }
  };
  const save = async (row: ChunkRow) => {
    await saveChunk(deps.state, pipeline, blueName, pass, row);
    await opts.onChunk?.(blueName, row);
  };

  if (round) {
    // Read after this pass's snapshot: every key changed since the previous one's is in it.
    const keys = (await readDelta(deps.state, pipeline, blueName))?.keys ?? [];
    report.deltaKeys = keys.length;
    report.reason = `a round: the keys changed since pass ${previous?.pass.pass}`;
    for (let i = 0; i < keys.length; i += chunkRows) {
      checkAbort(opts.signal);
      const batch = keys.slice(i, i + chunkRows);
      const read = () =>
        inSnapshots(clients, async (lsn) => {
          const r = await readKeys(t, batch);
          return { r, lsn, diff: compare(r.rows, r.actual) };
        });
      const first = await read();
      for (const failure of first.r.expected.failures) collector.failure(failure.key, failure.error);
      report.blueRows += first.r.rows.length;
      report.greenRows += first.r.actual.length;
      report.chunks++;
      const row = settle(first.diff, first.lsn, batch.length);
      await save(row);
      await pace.after(batch.length, opts.signal);
    }
  } else {
    // Blue in its key order, chunk by chunk.
    let after: PgText[] | null = null;
    for (;;) {
      checkAbort(opts.signal);
      const from = after;
      const read = () =>
        inSnapshots(clients, async (lsn) => {
          const chunk = await readBlueChunk(t, from, chunkRows);
          return { chunk, lsn, diff: chunk ? compare(chunk.rows, chunk.actual) : null };
        });
      const first = await read();
      if (!first.chunk || !first.diff) break;
      const chunk = first.chunk;
      const firstDiff = first.diff;
      for (const failure of chunk.expected.failures) collector.failure(failure.key, failure.error);
      report.filteredRows += chunk.expected.filtered;
      report.blueRows += chunk.blueRows;
      report.chunks++;
      const row = settle(firstDiff, first.lsn, chunk.blueRows);
      await save(row);
      opts.onProgress?.({ table: blueName, rowsDone: report.blueRows, rowsTotalEstimate: 0 });
      await pace.after(chunk.blueRows, opts.signal);
      after = chunk.lastKey;
      if (!chunk.full) break;
    }

    // Green's keys in green's order: rows only green has (each page its own snapshots).
    let greenAfter: PgText[] | null = null;
    for (;;) {
      checkAbort(opts.signal);
      const from = greenAfter;
      const read = () =>
        inSnapshots(clients, async (lsn) => {
          const page = await readGreenPage(t, from, chunkRows);
          return {
            page,
            lsn,
            diff: { missingInGreen: [], extraInGreen: page?.extra ?? [], different: [] } as ChunkDiff,
          };
        });
      const first = await read();
      if (!first.page) break;
      const page = first.page;
      report.greenRows += page.keys.length;
      report.chunks++;
      const row = settle(first.diff, first.lsn, page.keys.length);
      await save(row);
      await pace.after(page.keys.length, opts.signal);
      greenAfter = page.keys[page.keys.length - 1];
      if (page.keys.length < chunkRows) break;
    }
  }

  await resolvePending();
  await completePass(deps.state, pipeline, blueName, pass);
  concludeTable(report, collector, opts);
  report.unsettled = unsettled.map((k) => collector.key(k));
  report.asOfLsn = minLsn === null ? null : formatLsn(minLsn);
  if (unsettled.length > 0) report.ok = false;
  return report;
}

/** One online pass over the selected tables; the pass is kept in green for cutover's delta. */
export async function verifyOnline(deps: OnlineVerifyDeps, opts: OnlineOptions): Promise<VerifyReport> {
  const pace = new Pace(opts.rowsPerSecond ?? 0);
  return withVerifyClients(opts, async (clients) => {
    const started = Date.now();
    const tables: VerifyTableReport[] = [];
    for (const name of await listTables(clients.blue, opts)) {
      checkAbort(opts.signal);
      tables.push(await onlineTable(clients, deps, opts, name, pace));
    }
    return verifyReport(started, tables, 'online');
  });
}

export interface DeltaOptions extends VerifyOptions {
  /** Tables with dead letters since (green lacks changes no trigger saw): checked whole. 'all' when not counted per table. */
  deadLetterTables?: readonly string[] | 'all';
}

/**
 * Cutover's verify after fence and drain: per table, the keys changed since its last complete
 * online pass (and those a chunk left unsettled or different), read on both sides; a table the
 * online passes cannot vouch for is verified whole, and says why.
 */
export async function verifyDelta(state: pg.Client, opts: DeltaOptions): Promise<VerifyReport> {
  return withVerifyClients(opts, async (clients) => {
    const started = Date.now();
    const tables: VerifyTableReport[] = [];
    for (const name of await listTables(clients.blue, opts)) {
      checkAbort(opts.signal);
      const why = await wholeReason(state, clients, opts, name);
      if (typeof why === 'string') {
        const report = await verifyTable(clients, opts, name);
        report.checked = 'full';
        report.reason = why;
        tables.push(report);
        continue;
      }
      tables.push(await deltaTable(clients, opts, name, why.keys));
    }
    return verifyReport(started, tables, 'delta');
  });
}

/** Why a table must be verified whole at cutover, or the keys its delta re-checks. */
async function wholeReason(
  state: pg.Client,
  clients: VerifyClients,
  opts: DeltaOptions,
  blueName: string,
): Promise<string | { keys: PgText[][] }> {
  const delta = await readDelta(state, opts.config.kafka.topicPrefix, blueName).catch((err: unknown) => {
    if (isUndefinedObject(err)) return null;
    throw err;
  });
  if (!delta) return 'no complete online pass';
  if (delta.whole) return delta.whole;
  const dead = opts.deadLetterTables ?? [];
  if (dead === 'all' || dead.includes(blueName)) return 'dead letters: changes no green write recorded';
  const now = await captureTriggers(clients.green, quoteGreen(delta.pass.greenTable)).catch(() => null);
  if (!now || JSON.stringify(now) !== JSON.stringify(delta.pass.triggers))
    return 'the change-capture triggers on green changed since the online pass';
  return { keys: delta.keys };
}

function quoteGreen(name: string): string {
  const parsed = parseTableName(name);
  return parsed ? quoteTable(parsed.schema, parsed.table) : name;
}

async function deltaTable(
  clients: VerifyClients,
  opts: DeltaOptions,
  blueName: string,
  keys: PgText[][],
): Promise<VerifyTableReport> {
  // One snapshot per side, as a full verify; blue is fenced and drained, so they agree.
  return inOneSnapshotEach(clients, async () => {
    const t = await openTable(clients, opts, blueName);
    if ('error' in t) return planErrorReport(blueName, t);
    const { report, collector } = startTableReport(t);
    report.checked = 'delta';
    report.deltaKeys = keys.length;
    const batch = opts.chunkRows ?? 10_000;
    for (let i = 0; i < keys.length; i += batch) {
      checkAbort(opts.signal);
      const { expected, rows, actual } = await readKeys(t, keys.slice(i, i + batch));
      for (const failure of expected.failures) collector.failure(failure.key, failure.error);
      report.blueRows += rows.length;
      report.greenRows += actual.length;
      addCompared(report, collector, rows, actual);
    }
    concludeTable(report, collector, opts);
    return report;
  });
}
