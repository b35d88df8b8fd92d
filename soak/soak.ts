import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { drain } from '@teal/control';
import { KafkaClient } from '@teal/kafka';
import { VALUE_SESSION_OPTIONS } from '@teal/postgres';
import { abortableDelay, waitFor } from '@teal/runtime';
import pg from 'pg';
import {
  DEFAULT_FAULTS,
  type FaultKind,
  LIMITED_FAULTS,
  portOf,
  restartBroker,
  restartGreen,
  SCRATCH_ONLY_FAULTS,
  START_FAULTS,
  terminateSessions,
} from './faults.ts';
import { type ChildExit, localPortsTo, TealChild } from './processes.ts';
import { type ReverseReport, runReversePhase } from './reverse.ts';
import { createRng, type Rng } from './rng.ts';
import { type ScratchPostgres, startScratchPostgres } from './scratch-postgres.ts';
import {
  DEFAULT_SHAPES,
  emptyShapeStats,
  type ShapeKind,
  type ShapeStats,
  truncateFkPair,
} from './shapes.ts';
import {
  appliedTwice,
  chunkTableDdl,
  compareTable,
  createBlue,
  createGreen,
  dropBlue,
  dropGreen,
  keyColumns,
  replicatedTables,
  type SoakTables,
  soakTables,
  type TableComparison,
} from './tables.ts';
import {
  bigTransaction,
  emptyStats,
  KeySpace,
  runChunkWriter,
  runShapeWriter,
  runWriter,
  seed,
  seedChunkTable,
  seedShapes,
  textClient,
  truncateLedger,
  type WorkloadStats,
} from './workload.ts';

// One soak run: own tables on blue and green, teal's producer and consumer as child
// processes on an own slot, publication and topic prefix, a seeded write load and a seeded
// fault loop for `durationS`; then a drain to blue's LSN after the load stopped and an
// independent comparison of every table (count + md5 of every row's text, in SQL on both
// sides). The run is reproducible in what it does (seeded), not in its timing.

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface SoakOptions {
  durationS: number;
  seed: number;
  faults: FaultKind[];
  blueUrl: string;
  greenUrl: string;
  brokers: string[];
  /** Writer connections and transactions per second each (a schedule). */
  writers: number;
  rate: number;
  /** Rows per large transaction (>= 50k streams past blue's 64 MB logical_decoding_work_mem). */
  bigRows: number;
  /** Rows per table written before the producer starts (the initial snapshot). */
  seedRows: number;
  /** Pause between faults, ms: drawn in [min, max] after the previous fault recovered. */
  gapMs: [number, number];
  /** How often `broker` and `green` may be injected in one run (they hit everyone). */
  envFaultLimit: number;
  recoveryTimeoutMs: number;
  drainTimeoutMs: number;
  /** Keep tables, slot and topics at the end (they are kept anyway when a row differs). */
  keep: boolean;
  /** Checkout whose infra/local/env.mjs runs the local environment (broker and green faults). */
  envRoot: string;
  /** The issue-12 schema shapes written alongside items and ledger (`--shapes`). */
  shapes: ShapeKind[];
  /** Transactions per second of the shape writer. */
  shapeRate: number;
  /**
   * Run on blue and green clusters of the soak's own (soak/scratch-postgres.ts) instead of
   * blueUrl/greenUrl: the faults that stop or reconfigure a server (green, green-snapshot,
   * syncrep) then hurt nobody. Kafka stays the shared broker (own topic prefix).
   */
  scratch: boolean;
  /** Rows per snapshot chunk (small, so that a chunked snapshot lasts long enough to be hit). */
  chunkRows: number;
  /** The initial copy's path (teal's `snapshot.via`; the product's default, direct, unless asked). */
  snapshotVia: 'direct' | 'kafka';
  /** Rows per range of the direct copy (small, so that green can be stopped between two ranges). */
  rangeRows: number;
  /** Rows of each table the chunk-kill fault adds while streaming. */
  chunkTableRows: number;
  /** Rows of the table whose initial snapshot the green-snapshot fault interrupts. */
  bulkRows: number;
  /** After the forward run: cutover --with-rollback, teal reverse under faults, rollback (soak/reverse.ts). */
  reverse: boolean;
  log: (line: string) => void;
}

export function defaultOptions(): SoakOptions {
  return {
    durationS: 300,
    seed: 1,
    faults: [...DEFAULT_FAULTS],
    blueUrl: process.env.TEAL_BLUE_URL || 'postgres://postgres@127.0.0.1:5433/app',
    greenUrl: process.env.TEAL_GREEN_URL || 'postgres://postgres@127.0.0.1:5434/app',
    brokers: (process.env.TEAL_KAFKA_BROKERS || '127.0.0.1:9092').split(',').map((b) => b.trim()),
    writers: 2,
    rate: 25,
    bigRows: 60_000,
    seedRows: 1000,
    gapMs: [200, 1200],
    envFaultLimit: 1,
    recoveryTimeoutMs: 120_000,
    drainTimeoutMs: 600_000,
    keep: false,
    envRoot: process.env.TEAL_ENV_ROOT || ROOT,
    shapes: [...DEFAULT_SHAPES],
    shapeRate: 8,
    scratch: false,
    chunkRows: 200,
    snapshotVia: 'direct',
    rangeRows: 2000,
    chunkTableRows: 600,
    bulkRows: 150_000,
    reverse: false,
    log: (line) => console.log(line),
  };
}

export interface FaultRecord {
  kind: FaultKind;
  /** Seconds since the load started. */
  atS: number;
  detail: string;
  /** From the fault to a change committed after it being visible in green; null = not within the timeout. */
  recoveryMs: number | null;
}

export interface SoakReport {
  ok: boolean;
  seed: number;
  durationS: number;
  names: { base: string; slot: string; publication: string; topicPrefix: string; workDir: string };
  faults: { injected: Record<string, number>; total: number; list: FaultRecord[] };
  recovery: { longestMs: number; longestKind: string | null; medianMs: number; failed: number };
  workload: WorkloadStats;
  shapes: { kinds: ShapeKind[]; stats: ShapeStats };
  scratch: boolean;
  stream: { streamTxns: number; streamBytes: number; spillTxns: number } | null;
  drain: { lsn: string; waitedMs: number } | { error: string };
  tables: TableComparison[];
  rowsCompared: number;
  rowsDiffering: number;
  appliedTwice: number;
  appliedTwiceExamples: string[];
  auditRecorded: number;
  deadLetters: number;
  unexpectedExits: ChildExit[];
  /** --reverse: the way back after the forward run. */
  reverse?: ReverseReport;
  problems: string[];
}

export async function runSoak(input: SoakOptions): Promise<SoakReport> {
  const log = input.log;
  const needScratch = input.faults.filter((f) => SCRATCH_ONLY_FAULTS.includes(f));
  if (input.reverse && !input.scratch)
    throw new Error(
      "--reverse needs --scratch: the reverse slot lives on green, and the shared green's wal_level is not logical",
    );
  if (needScratch.length > 0 && !input.scratch)
    throw new Error(
      `faults ${needScratch.join(', ')} stop or reconfigure a Postgres server: run them with --scratch (the soak's own blue and green), never on the shared ones`,
    );
  const id = `${Date.now().toString(36).slice(-5)}${randomBytes(2).toString('hex')}`;
  const base = `soak_${input.seed}_${id}`;
  // --scratch: the soak's own clusters, stopped and removed at the end (kept with --keep).
  let scratchBlue: ScratchPostgres | undefined;
  let scratchGreen: ScratchPostgres | undefined;
  if (input.scratch) {
    [scratchBlue, scratchGreen] = await Promise.all([
      startScratchPostgres({ max_wal_senders: '10', max_replication_slots: '10', max_connections: '200' }),
      startScratchPostgres({ max_connections: '200' }),
    ]);
  }
  // A soak that dies (an exception, Ctrl-C) must not leave its clusters running.
  const destroyScratch = () => {
    for (const cluster of [scratchBlue, scratchGreen])
      try {
        cluster?.destroy();
      } catch {
        // already gone
      }
  };
  process.once('exit', destroyScratch);
  const opts: SoakOptions =
    scratchBlue && scratchGreen ? { ...input, blueUrl: scratchBlue.url, greenUrl: scratchGreen.url } : input;
  const t = soakTables(base, opts.shapes);
  if (opts.faults.includes('green-snapshot')) t.bulk = `${base}_bulk`;
  const slot = `${base}_slot`;
  const publication = `${base}_pub`;
  const topicPrefix = base;
  const workDir = mkdtempSync(path.join(tmpdir(), `teal-${base}-`));
  const configPath = path.join(workDir, 'teal.config.ts');
  // Rewritten when the chunk-kill fault adds a table (the restarted producer reads it); a
  // rename, so a process starting meanwhile never reads half a file.
  const writeConfig = () => {
    writeFileSync(
      `${configPath}.tmp`,
      `export default ${JSON.stringify(
        {
          tables: replicatedTables(t),
          slot,
          publication,
          kafka: { topicPrefix, partitions: 4 },
          heartbeatMs: 1000,
          snapshot: { chunkRows: opts.chunkRows, via: opts.snapshotVia, rangeRows: opts.rangeRows },
        },
        null,
        2,
      )};\n`,
    );
    renameSync(`${configPath}.tmp`, configPath);
  };
  writeConfig();
  log(
    `soak ${base}: seed ${opts.seed}, ${opts.durationS} s, faults ${opts.faults.join(',') || 'none'}, snapshot ${opts.snapshotVia}, shapes ${opts.shapes.join(',') || 'none'}${opts.scratch ? ', scratch blue and green' : ''}`,
  );
  if (scratchBlue && scratchGreen) log(`  blue ${scratchBlue.url}, green ${scratchGreen.url}`);
  log(`  work dir ${workDir} (config, producer.log, consumer.log)`);

  const env = {
    ...process.env,
    TEAL_BLUE_URL: opts.blueUrl,
    TEAL_GREEN_URL: opts.greenUrl,
    TEAL_KAFKA_BROKERS: opts.brokers.join(','),
    TEAL_LOG_LEVEL: process.env.TEAL_LOG_LEVEL ?? 'info',
  };
  // One process per teal service, its log in the work dir; `restartDelayMs` undefined: never
  // restarted on its own. The producer is `teal producer` (the cli wires the green writer of the
  // direct initial copy into it; services/producer/src/main.ts alone copies through Kafka).
  const child = (name: string, args: string[], restartDelayMs: number | undefined = 1000) =>
    new TealChild(
      name,
      [...args, '--config', configPath],
      env,
      path.join(workDir, `${name}.log`),
      ROOT,
      restartDelayMs,
    );
  const producer = child('producer', ['services/cli/src/main.ts', 'producer', '--skip-check']);
  const consumer = child('consumer', ['services/consumer/src/main.ts']);
  // Same group as `consumer`; the rebalance fault starts and stops it.
  const joiner = child('consumer-2', ['services/consumer/src/main.ts'], undefined);
  const children = [producer, consumer];

  const blue = textClient(opts.blueUrl);
  await blue.connect();
  // Green connections survive a green restart: a pool drops the broken ones.
  const greenPool = new pg.Pool({
    connectionString: opts.greenUrl,
    types: { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig,
    options: VALUE_SESSION_OPTIONS,
    application_name: 'soak-check',
    max: 3,
  });
  greenPool.on('error', () => {});
  const kafka = new KafkaClient({ brokers: opts.brokers, clientId: `teal-${base}` });

  const stats = emptyStats();
  const shapeStats = emptyShapeStats();
  const faults: FaultRecord[] = [];
  const problems: string[] = [];
  let report: SoakReport | undefined;
  try {
    await createBlue(blue, t);
    {
      const g = await greenPool.connect();
      try {
        await createGreen(g, t);
      } finally {
        g.release();
      }
    }
    const keys = new KeySpace();
    await seed(opts.blueUrl, createRng(opts.seed, 'seed'), t, keys, opts.seedRows);
    await seedShapes(opts.blueUrl, createRng(opts.seed, 'shapes-seed'), t.shapes);
    if (t.bulk)
      await blue.query(
        `INSERT INTO ${t.bulk} SELECT g, nextval('${t.ver}'), md5(g::text) FROM generate_series(1, $1::int) g`,
        [opts.bulkRows],
      );

    const snapshotDone = async (tables: string[]) => {
      const { rows } = await greenPool
        .query<{ n: string }>(
          `SELECT count(*)::text AS n FROM teal.snapshot_progress WHERE schema = 'public' AND "table" = ANY($1) AND state = 'done'`,
          [tables],
        )
        .catch(() => ({ rows: [{ n: '-1' }] }));
      return Number(rows[0].n) === tables.length;
    };
    const initialTables = keyColumns(t).map(([name]) => name);
    producer.start();
    consumer.start();
    const snapshotStarted = Date.now();
    let greenSnapshotFault: ReturnType<typeof greenDuringSnapshot> | undefined;
    if (t.bulk && scratchGreen)
      greenSnapshotFault = greenDuringSnapshot(
        scratchGreen,
        opts.snapshotVia === 'direct'
          ? directCopyUnderWay(greenPool, t.bulk)
          : recordsInKafka(kafka, `${topicPrefix}.public.${t.bulk}`),
        opts,
        log,
      );
    await waitFor(() => snapshotDone(initialTables), {
      what: 'initial snapshot done',
      timeoutMs: 300_000,
      intervalMs: 250,
    });
    if (greenSnapshotFault) {
      const { afterCopy, ...f } = await greenSnapshotFault;
      f.recoveryMs = Date.now() - snapshotStarted - f.recoveryMs!;
      faults.push(f);
      if (afterCopy)
        problems.push(
          `green-snapshot stopped green after the bulk table's ${opts.snapshotVia} copy was done (raise --bulk-rows or lower --range-rows)`,
        );
      log(
        `  fault 1 during the initial snapshot: green-snapshot (${f.detail}); recovered in ${f.recoveryMs} ms`,
      );
    }
    log('  initial snapshot done; load and faults start');

    // ---- load + faults ----
    const loadStarted = Date.now();
    const stopLoad = new AbortController();
    const stopFaults = new AbortController();
    // Failures of the load are problems of the run, recorded as they happen (never unhandled).
    const loadProblem = (err: unknown) => {
      problems.push(`workload failed: ${(err as Error)?.message ?? err}`);
      log(`  workload failed: ${(err as Error)?.message ?? err}`);
    };
    const writers = Array.from({ length: opts.writers }, (_, i) =>
      runWriter({
        url: opts.blueUrl,
        rng: createRng(opts.seed, `writer${i}`),
        tables: t,
        keys,
        stats,
        signal: stopLoad.signal,
        rate: opts.rate,
      }).catch(loadProblem),
    );
    const schedule = runSchedule(opts, t, stats, shapeStats, stopLoad.signal, log).catch(loadProblem);
    const shapeWriter = runShapeWriter({
      url: opts.blueUrl,
      rng: createRng(opts.seed, 'shapes'),
      shapes: t.shapes,
      stats: shapeStats,
      signal: stopLoad.signal,
      rate: opts.shapeRate,
    }).catch(loadProblem);
    let probeId = 0;
    const probe = async (): Promise<void> => {
      const n = ++probeId;
      await blue.query(`INSERT INTO ${t.probe} VALUES ($1, now())`, [n]);
      await waitFor(
        async () =>
          (
            await greenPool
              .query(`SELECT 1 FROM ${t.probe} WHERE id = $1`, [n])
              .catch(() => ({ rowCount: 0 }))
          ).rowCount === 1,
        { what: `probe ${n} in green`, timeoutMs: opts.recoveryTimeoutMs, intervalMs: 50 },
      );
    };
    const faultLoop = runFaults(opts, {
      producer,
      consumer,
      joiner,
      blue,
      greenPool,
      scratchGreen,
      tables: t,
      writeConfig,
      stats,
      slot,
      faults,
      probe,
      started: loadStarted,
      signal: stopFaults.signal,
      log,
      problems,
    }).catch(loadProblem);
    await abortableDelay(opts.durationS * 1000);
    stopFaults.abort();
    await faultLoop;
    stopLoad.abort();
    await Promise.all([...writers, schedule, shapeWriter]);
    log(
      `  load stopped after ${((Date.now() - loadStarted) / 1000).toFixed(0)} s: ${stats.transactions} transactions, ${faults.length} faults`,
    );

    // ---- drain ----
    for (const c of children) if (!c.running) c.start();
    let drainResult: SoakReport['drain'];
    const admin = kafka.admin();
    const green = textClient(opts.greenUrl);
    await waitFor(
      () =>
        green.connect().then(
          () => true,
          () => false,
        ),
      { what: 'green', timeoutMs: 60_000 },
    );
    try {
      const result = await drain(
        // Its own tables only: green's snapshot_progress also holds other pipelines' rows.
        {
          blue,
          green,
          admin,
          slot,
          topicPrefix,
          pollMs: 250,
          tables: replicatedTables(t),
        },
        { timeoutMs: opts.drainTimeoutMs, fence: false },
      );
      drainResult = { lsn: result.lsn, waitedMs: result.waitedMs };
      log(`  drained to ${result.lsn} in ${result.waitedMs} ms`);
    } catch (err) {
      drainResult = { error: (err as Error).message };
      problems.push(`drain failed: ${(err as Error).message}`);
      // What the consumer's green sessions were doing when the drain gave up.
      const ports = consumer.pid === undefined ? [] : localPortsTo(consumer.pid, portOf(opts.greenUrl));
      const { rows } = await green.query<Record<string, string>>(
        `SELECT pid, state, wait_event_type, wait_event, now() - xact_start AS xact_age, left(query, 160) AS query,
                pg_blocking_pids(pid)::text AS blocked_by
           FROM pg_stat_activity WHERE client_port = ANY($1::int[])`,
        [ports],
      );
      for (const r of rows) problems.push(`consumer session at drain timeout: ${JSON.stringify(r)}`);
    }

    // ---- compare ----
    const tables: TableComparison[] = [];
    for (const [table, k] of keyColumns(t)) tables.push(await compareTable(blue, green, table, k));
    const twice = await appliedTwice(green, t);
    const dlq = await admin
      .logEndOffsets(`${topicPrefix}._dlq`)
      .then((ends) => ends.reduce((s, e) => s + Number(e.end), 0))
      .catch(() => 0);
    const streamRow = await blue.query<{ st: string; sb: string; sp: string }>(
      `SELECT stream_txns::text AS st, stream_bytes::text AS sb, spill_txns::text AS sp FROM pg_stat_replication_slots WHERE slot_name = $1`,
      [slot],
    );
    await admin.close();
    await green.end().catch(() => {});

    const recoveries = faults.map((f) => f.recoveryMs).filter((ms): ms is number => ms !== null);
    const longest = faults.reduce<FaultRecord | undefined>(
      (a, f) => (f.recoveryMs !== null && (a === undefined || f.recoveryMs > (a.recoveryMs ?? 0)) ? f : a),
      undefined,
    );
    const injected: Record<string, number> = {};
    for (const f of faults) injected[f.kind] = (injected[f.kind] ?? 0) + 1;
    const rowsDiffering = tables.reduce((s, c) => s + c.onlyInBlue + c.onlyInGreen + c.different, 0);
    const failedRecoveries = faults.filter((f) => f.recoveryMs === null).length;
    if (rowsDiffering > 0) problems.push(`${rowsDiffering} rows differ between blue and green`);
    if (twice.duplicates > 0) problems.push(`${twice.duplicates} changes applied twice in green`);
    if (failedRecoveries > 0) problems.push(`${failedRecoveries} faults without recovery within the timeout`);
    if (dlq > 0) problems.push(`${dlq} records in the dead-letter topic`);
    const sr = streamRow.rows[0];
    let reverse: ReverseReport | undefined;
    if (opts.reverse && rowsDiffering === 0) {
      await blue.end().catch(() => {});
      reverse = await runReversePhase({
        ...opts,
        base,
        configPath,
        workDir,
        env,
        root: ROOT,
        tables: t,
        keys,
        stopForward: async () => {
          await Promise.all(children.map((c) => c.stop()));
        },
      });
      problems.push(...reverse.problems);
    } else if (opts.reverse) problems.push('--reverse not run: the forward run ended with rows differing');
    report = {
      ok: problems.length === 0,
      seed: opts.seed,
      durationS: opts.durationS,
      names: { base, slot, publication, topicPrefix, workDir },
      faults: { injected, total: faults.length, list: faults },
      recovery: {
        longestMs: longest?.recoveryMs ?? 0,
        longestKind: longest?.kind ?? null,
        medianMs: median(recoveries),
        failed: failedRecoveries,
      },
      workload: stats,
      shapes: { kinds: opts.shapes, stats: shapeStats },
      scratch: opts.scratch,
      stream: sr ? { streamTxns: Number(sr.st), streamBytes: Number(sr.sb), spillTxns: Number(sr.sp) } : null,
      drain: drainResult,
      tables,
      rowsCompared: tables.reduce((s, c) => s + c.blue.rows, 0),
      rowsDiffering,
      appliedTwice: twice.duplicates,
      appliedTwiceExamples: twice.examples,
      auditRecorded: twice.recorded,
      deadLetters: dlq,
      unexpectedExits: [...children, joiner].flatMap((c) => c.unexpectedExits),
      ...(reverse ? { reverse } : {}),
      problems,
    };
    return report;
  } finally {
    await Promise.all([...children, joiner].map((c) => c.stop()));
    const keep = opts.keep || !report || report.rowsDiffering > 0;
    // A scratch green a fault left stopped must run for the cleanup.
    try {
      scratchGreen?.start();
    } catch (err) {
      log(`  the scratch green did not start for the cleanup: ${(err as Error).message}`);
    }
    await removeSoak(opts, base, keep).catch((err) => log(`  cleanup failed: ${(err as Error).message}`));
    await blue.end().catch(() => {});
    await greenPool.end().catch(() => {});
    await kafka.close().catch(() => {});
    process.removeListener('exit', destroyScratch);
    if (keep && scratchBlue && scratchGreen)
      log(
        `  kept the scratch clusters: blue ${scratchBlue.dataDir}, green ${scratchGreen.dataDir} (still running)`,
      );
    else destroyScratch();
  }
}

/** How far the bulk table's initial copy is, once it is under way and not yet done. */
interface CopyProbe {
  read(): Promise<{ rows: number; where: string; done: boolean } | undefined>;
  close(): Promise<void>;
}

/** Direct copy: a range of the bulk table committed in green, its direct copy still flagged. */
function directCopyUnderWay(green: pg.Pool, table: string): CopyProbe {
  const read = async () => {
    const { rows } = await green
      .query<{ rows_done: string; state: string; direct: boolean }>(
        `SELECT rows_done::text, state, direct FROM teal.snapshot_progress WHERE schema = 'public' AND "table" = $1`,
        [table],
      )
      .catch(() => ({ rows: [] }));
    const r = rows[0];
    if (!r || Number(r.rows_done) === 0) return undefined;
    return {
      rows: Number(r.rows_done),
      where: 'copied directly into green',
      done: r.state === 'done' || !r.direct,
    };
  };
  return { read, close: async () => {} };
}

/** Copy via Kafka: the bulk table's snapshot records reaching its topic. */
function recordsInKafka(kafka: KafkaClient, topic: string): CopyProbe {
  const admin = kafka.admin();
  return {
    read: async () => {
      const ends = await admin.logEndOffsets(topic).catch(() => []);
      const n = ends.reduce((s, e) => s + Number(e.end), 0);
      return n > 0 ? { rows: n, where: 'in Kafka', done: false } : undefined;
    },
    close: () => admin.close(),
  };
}

/**
 * green-snapshot: once the bulk table's initial copy is under way (ranges committed in green by
 * the direct copy, or snapshot records in Kafka), green is stopped (immediate: a crash) for a
 * seeded 5-15 s and started again. A direct copy must hand what it did not copy to the chunked
 * snapshot through Kafka, a copy via Kafka must go on into the topics meanwhile (issue 13 item 1).
 * A stop that came after the copy was done tested nothing of it: that is a problem of the run.
 * `recoveryMs` holds the stop's offset from the snapshot start until the caller turns it into
 * "stop until snapshot done".
 */
async function greenDuringSnapshot(
  green: ScratchPostgres,
  underWay: CopyProbe,
  opts: SoakOptions,
  log: (line: string) => void,
): Promise<FaultRecord & { afterCopy: boolean }> {
  const rng = createRng(opts.seed, 'green-snapshot');
  const started = Date.now();
  const seen = await waitFor(() => underWay.read(), {
    what: "the bulk table's initial copy under way",
    timeoutMs: 120_000,
    intervalMs: 10,
  }).finally(() => underWay.close());
  const stoppedAt = Date.now();
  green.stop('immediate');
  const downMs = rng.int(5000, 15000);
  const progress = `${seen.rows} of ${opts.bulkRows} bulk rows ${seen.where}`;
  log(`  green stopped during the initial snapshot (${progress}), for ${downMs} ms`);
  await abortableDelay(downMs);
  green.start();
  return {
    kind: 'green-snapshot',
    atS: 0,
    detail: `pg_ctl stop -m immediate of green ${stoppedAt - started} ms into the ${opts.snapshotVia} snapshot (${progress}), down ${downMs} ms`,
    recoveryMs: stoppedAt - started,
    afterCopy: seen.done,
  };
}

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Large transactions and TRUNCATEs at seeded moments of the load. */
async function runSchedule(
  opts: SoakOptions,
  t: SoakTables,
  stats: WorkloadStats,
  shapeStats: ShapeStats,
  signal: AbortSignal,
  log: (line: string) => void,
): Promise<void> {
  const rng = createRng(opts.seed, 'schedule');
  const events: Array<{ atMs: number; run: () => Promise<void> }> = [];
  const bigCount = Math.max(1, Math.round(opts.durationS / 150));
  for (let i = 0; i < bigCount; i++) {
    // Every second large transaction rolls back (a streamed abort).
    const commit = i % 2 === 0;
    events.push({
      atMs: opts.durationS * 1000 * (0.1 + (0.5 * (i + rng.next())) / bigCount),
      run: async () => {
        log(`  large transaction ${i + 1}: ${opts.bigRows} rows, ${commit ? 'commit' : 'rollback'}`);
        await bigTransaction(opts.blueUrl, t, 1000 + i, opts.bigRows, commit, stats);
      },
    });
  }
  const truncates = Math.max(1, Math.round(opts.durationS / 120));
  for (let i = 0; i < truncates; i++) {
    events.push({
      // The first one early, before the first large transaction, so that its rows stay to be compared.
      atMs: opts.durationS * 1000 * (0.04 + (0.9 * i + 0.04 * rng.next()) / truncates),
      run: () => truncateLedger(opts.blueUrl, t, stats),
    });
  }
  if (t.shapes.some((s) => s.kind === 'fk-truncate')) {
    // TRUNCATE parent, child (or CASCADE) once a minute, at least twice: each topic empties its
    // own table at its own position, and green's FK must not refuse it.
    const fkTruncates = Math.max(2, Math.round(opts.durationS / 60));
    for (let i = 0; i < fkTruncates; i++)
      events.push({
        atMs: opts.durationS * 1000 * ((i + 0.3 + 0.4 * rng.next()) / fkTruncates),
        run: async () => {
          const db = textClient(opts.blueUrl);
          await db.connect();
          try {
            await truncateFkPair(db, t.base, rng, shapeStats);
          } finally {
            await db.end().catch(() => {});
          }
        },
      });
  }
  events.sort((a, b) => a.atMs - b.atMs);
  const started = Date.now();
  for (const e of events) {
    await abortableDelay(Math.max(0, started + e.atMs - Date.now()), signal);
    if (signal.aborted) return;
    await e.run();
  }
}

interface FaultContext {
  producer: TealChild;
  consumer: TealChild;
  /** A second member of the consumer's group, started and stopped by the rebalance fault. */
  joiner: TealChild;
  blue: pg.Client;
  greenPool: pg.Pool;
  /** The soak's own green (--scratch): the green fault stops it instead of the shared one. */
  scratchGreen: ScratchPostgres | undefined;
  tables: SoakTables;
  /** Rewrites the config from `tables` (a chunk-kill table added). */
  writeConfig: () => void;
  stats: WorkloadStats;
  slot: string;
  faults: FaultRecord[];
  probe: () => Promise<void>;
  started: number;
  signal: AbortSignal;
  log: (line: string) => void;
  problems: string[];
}

async function runFaults(opts: SoakOptions, c: FaultContext): Promise<void> {
  if (opts.faults.length === 0) return;
  const rng = createRng(opts.seed, 'faults');
  const envFaults = new Map<FaultKind, number>();
  const greenUrlPort = portOf(opts.greenUrl);
  const blueUrlPort = portOf(opts.blueUrl);
  const inject = async (kind: FaultKind): Promise<string> => {
    const restartDelay = rng.int(0, 2000);
    switch (kind) {
      case 'producer':
      case 'consumer': {
        const child = kind === 'producer' ? c.producer : c.consumer;
        await child.kill('SIGKILL');
        await abortableDelay(restartDelay);
        child.start();
        return `SIGKILL, restart after ${restartDelay} ms`;
      }
      case 'rebalance': {
        // A second consumer joins the group (partitions move to it, batches in flight on the
        // first are revoked), applies for a while, then leaves (they move back): twice a
        // rebalance under load, with nothing killed.
        const logFrom = existsSync(c.joiner.logFile) ? statSync(c.joiner.logFile).size : 0;
        c.joiner.start();
        const stayMs = rng.int(1000, 5000);
        await waitFor(
          () => readFileSync(c.joiner.logFile, 'utf8').slice(logFrom).includes('consumer started'),
          { what: 'the second consumer to start', timeoutMs: 60_000 },
        );
        await abortableDelay(stayMs);
        // SIGTERM: it leaves the group cleanly (a crash of it is still recorded as unexpected).
        await c.joiner.kill('SIGTERM');
        return `a second consumer joined, stayed ${stayMs} ms, left`;
      }
      case 'terminate': {
        const where = rng.pick(['blue', 'green', 'both'] as const);
        const greenAdmin = where !== 'blue' ? textClient(opts.greenUrl) : undefined;
        let n = 0;
        if (where !== 'green') n += await terminateSessions(c.blue, blueUrlPort, [c.producer], c.slot);
        if (greenAdmin) {
          await greenAdmin.connect();
          try {
            n += await terminateSessions(greenAdmin, greenUrlPort, [c.producer, c.consumer]);
          } finally {
            await greenAdmin.end().catch(() => {});
          }
        }
        return `pg_terminate_backend on ${where}: ${n} sessions`;
      }
      case 'broker': {
        envFaults.set(kind, (envFaults.get(kind) ?? 0) + 1);
        await restartBroker(opts.envRoot, async (what, f) => {
          await waitFor(() => f(), { what, timeoutMs: 30_000 });
        });
        return 'kill -9 broker, env up';
      }
      case 'green': {
        envFaults.set(kind, (envFaults.get(kind) ?? 0) + 1);
        if (c.scratchGreen) {
          const downMs = rng.int(1000, 5000);
          c.scratchGreen.stop('immediate');
          await abortableDelay(downMs);
          c.scratchGreen.start();
          return `pg_ctl stop -m immediate of the scratch green, started ${downMs} ms later`;
        }
        await restartGreen(opts.envRoot);
        return 'pg_ctl stop -m immediate, env up';
      }
      case 'syncrep':
        return syncRepStall(c.blue, rng.int(1000, 5000));
      case 'chunk-kill':
        return chunkKill(opts, c, rng, ++chunkTables);
      case 'green-snapshot':
        throw new Error('green-snapshot is injected during the initial snapshot, not in the fault loop');
    }
  };
  let chunkTables = 0;
  const loopFaults = opts.faults.filter((k) => !START_FAULTS.includes(k));
  if (loopFaults.length === 0) return;
  for (;;) {
    await abortableDelay(rng.int(opts.gapMs[0], opts.gapMs[1]), c.signal);
    if (c.signal.aborted) return;
    let kind = rng.pick(loopFaults);
    if (LIMITED_FAULTS.includes(kind) && (envFaults.get(kind) ?? 0) >= opts.envFaultLimit) {
      const local = loopFaults.filter((k) => !LIMITED_FAULTS.includes(k));
      if (local.length === 0) continue;
      kind = rng.pick(local);
    }
    const at = Date.now();
    let detail = '';
    try {
      detail = await inject(kind);
    } catch (err) {
      // A fault that could not be injected is a problem of the run, not a crash of the soak.
      detail = `injection failed: ${(err as Error).message}`;
      c.problems.push(`${kind} fault ${detail}`);
    }
    let recoveryMs: number | null = null;
    try {
      await c.probe();
      recoveryMs = Date.now() - at;
    } catch {
      recoveryMs = null;
    }
    const record: FaultRecord = { kind, atS: Math.round((at - c.started) / 100) / 10, detail, recoveryMs };
    c.faults.push(record);
    c.log(
      `  fault ${c.faults.length} at ${record.atS}s: ${kind} (${detail}); ${recoveryMs === null ? 'NO RECOVERY' : `recovered in ${recoveryMs} ms`}`,
    );
  }
}

/**
 * syncrep: synchronous replication with a standby that does not answer for `holdMs` (blue's
 * synchronous_standby_names names one that never connects), then released. Every commit on
 * blue meanwhile is flushed and decoded but stays invisible until the release: the window in
 * which a chunk read or a key-change completion could miss it (issue 13). Scratch blue only.
 */
async function syncRepStall(blue: pg.Client, holdMs: number): Promise<string> {
  await blue.query(`ALTER SYSTEM SET synchronous_standby_names = 'soak_absent_standby'`);
  await blue.query('SELECT pg_reload_conf()');
  try {
    await abortableDelay(holdMs);
  } finally {
    await blue.query('ALTER SYSTEM RESET synchronous_standby_names');
    await blue.query('SELECT pg_reload_conf()');
  }
  return `synchronous_standby_names named an absent standby for ${holdMs} ms, then reset`;
}

/**
 * chunk-kill: a table is added while streaming (config rewritten, producer SIGKILLed and
 * restarted: it snapshots the table by chunks), TOAST-unchanged updates hit it all along, and
 * once its chunked snapshot is under way the producer is SIGKILLed again. The writer stops
 * once the table's snapshot is done; recovered when a probe went through after that.
 */
async function chunkKill(opts: SoakOptions, c: FaultContext, rng: Rng, n: number): Promise<string> {
  const table = `${c.tables.base}_chunk${n}`;
  const ddl = chunkTableDdl(table);
  await c.blue.query(ddl);
  await c.greenPool.query(ddl);
  await seedChunkTable(c.blue, table, c.tables.ver, opts.chunkTableRows);
  const stopWriter = new AbortController();
  const writer = runChunkWriter(
    opts.blueUrl,
    createRng(opts.seed, `chunk${n}`),
    table,
    c.tables.ver,
    opts.chunkTableRows,
    c.stats,
    stopWriter.signal,
  ).catch((err) => c.problems.push(`chunk writer of ${table} failed: ${(err as Error).message}`));
  try {
    c.tables.chunks.push(table);
    c.writeConfig();
    await c.producer.kill('SIGKILL');
    c.producer.start();
    const progress = async () => {
      const { rows } = await c.greenPool
        .query<{ state: string; done: string }>(
          `SELECT state, rows_done::text AS done FROM teal.snapshot_progress WHERE schema = 'public' AND "table" = $1`,
          [table],
        )
        .catch(() => ({ rows: [] as Array<{ state: string; done: string }> }));
      return rows[0];
    };
    const midway = await waitFor(
      async () => {
        const p = await progress();
        return p && (p.state === 'done' || Number(p.done) > 0) ? p : undefined;
      },
      { what: `the chunked snapshot of ${table} under way`, timeoutMs: 120_000, intervalMs: 25 },
    );
    const restartDelay = rng.int(0, 2000);
    await c.producer.kill('SIGKILL');
    await abortableDelay(restartDelay);
    c.producer.start();
    await waitFor(async () => (await progress())?.state === 'done', {
      what: `the chunked snapshot of ${table} done`,
      timeoutMs: opts.recoveryTimeoutMs,
      intervalMs: 100,
    });
    return `added ${table} (${opts.chunkTableRows} rows, TOAST-unchanged updates running), SIGKILL at ${midway.state === 'done' ? 'the end of' : `${midway.done} rows into`} its chunked snapshot, restart after ${restartDelay} ms`;
  } finally {
    stopWriter.abort();
    await writer;
  }
}

/**
 * Removes what a soak run created: its slot and publication always (a leftover slot makes
 * blue keep WAL for ever), its tables, topics and teal state rows unless `keep`.
 */
export async function removeSoak(
  o: { blueUrl: string; greenUrl: string; brokers: string[]; log: (line: string) => void },
  base: string,
  keep = false,
): Promise<void> {
  const t = soakTables(base);
  const slot = `${base}_slot`;
  const blue = textClient(o.blueUrl);
  await blue.connect();
  try {
    await waitFor(
      async () =>
        (await blue.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [slot]))
          .rowCount === 0,
      { what: 'slot released', timeoutMs: 30_000 },
    ).catch(() => {});
    await blue.query(
      'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    await blue.query(`DROP PUBLICATION IF EXISTS ${base}_pub`);
    if (keep) {
      o.log(`  kept tables ${t.items}, ${t.ledger}, ${t.probe} (blue, green) and topics ${base}.*`);
      return;
    }
    await dropBlue(blue, t);
  } finally {
    await blue.end().catch(() => {});
  }
  const green = textClient(o.greenUrl);
  await green.connect();
  try {
    await dropGreen(green, t);
    await green.query('DELETE FROM teal.applied_position WHERE starts_with(topic, $1)', [`${base}.`]);
    await green.query('DELETE FROM teal.applied_truncate WHERE starts_with(topic, $1)', [`${base}.`]);
    await green.query('DELETE FROM teal.control WHERE key = $1', [`slot:${slot}`]);
    await green.query('DELETE FROM teal.snapshot_progress WHERE starts_with("table", $1)', [`${base}_`]);
  } finally {
    await green.end().catch(() => {});
  }
  const kafka = new KafkaClient({ brokers: o.brokers, clientId: `teal-${base}-cleanup` });
  const admin = kafka.admin();
  try {
    const topics = await admin.listTopics(`${base}.`);
    if (topics.length > 0) await admin.deleteTopics(topics);
  } finally {
    await admin.close();
    await kafka.close();
  }
}
