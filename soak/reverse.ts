import path from 'node:path';
import { loadConfig } from '@teal/config';
import { TealControl } from '@teal/control';
import { KafkaClient } from '@teal/kafka';
import { abortableDelay, rootLogger, waitFor } from '@teal/runtime';
import { portOf, terminateSessions } from './faults.ts';
import { type ChildExit, TealChild } from './processes.ts';
import { createRng } from './rng.ts';
import { freePort } from './scratch-postgres.ts';
import { compareTable, keyColumns, type SoakTables, type TableComparison } from './tables.ts';
import { emptyStats, type KeySpace, runWriter, textClient, type WorkloadStats } from './workload.ts';

// `npm run soak -- --scratch --reverse`: after the forward run has drained and compared equal,
// the way back of issue 17 under faults. teal cutover --with-rollback (fence blue, drain,
// sequences, verify, the reverse slot on green); the forward processes stop; `teal reverse`
// runs as a child while writers load green and a seeded fault loop SIGKILLs it and
// terminates its sessions on green and blue; then POST /rollback (fence green, drain,
// sequences back, verify blue, unfence blue) and an independent SQL comparison of every
// table, blue against green: 0 rows may differ.

export const REVERSE_FAULTS = ['reverse-kill', 'reverse-terminate'] as const;
type ReverseFault = (typeof REVERSE_FAULTS)[number];

export interface ReversePhaseInput {
  blueUrl: string;
  greenUrl: string;
  brokers: string[];
  seed: number;
  durationS: number;
  writers: number;
  rate: number;
  gapMs: [number, number];
  recoveryTimeoutMs: number;
  drainTimeoutMs: number;
  base: string;
  configPath: string;
  workDir: string;
  env: NodeJS.ProcessEnv;
  root: string;
  tables: SoakTables;
  keys: KeySpace;
  /** Stops the forward producer and consumer (after the cutover, as an operator stops teal run). */
  stopForward: () => Promise<void>;
  log: (line: string) => void;
}

export interface ReverseReport {
  cutover: { safeToSwitch: boolean; steps: Array<{ name: string; ok: boolean; ms?: number }> };
  faults: Array<{ kind: ReverseFault; atS: number; detail: string; recoveryMs: number | null }>;
  workload: WorkloadStats;
  rollback:
    | { safeToSwitch: boolean; steps: Array<{ name: string; ok: boolean; ms?: number }> }
    | { error: string };
  tables: TableComparison[];
  rowsCompared: number;
  rowsDiffering: number;
  unexpectedExits: ChildExit[];
  problems: string[];
}

type Steps = Array<{ name: string; ok: boolean; ms?: number }>;
const stepsOf = (steps: Steps) => steps.map((s) => ({ name: s.name, ok: s.ok, ms: s.ms }));

export async function runReversePhase(o: ReversePhaseInput): Promise<ReverseReport> {
  const { log, tables: t } = o;
  const problems: string[] = [];
  const forward = await loadConfig({ configPath: o.configPath, env: o.env });
  // The soak prints its own lines; the control plane's info lines would interleave as JSON.
  const control = new TealControl(forward, {
    logger: rootLogger().child({ component: 'soak-reverse' }, { level: 'warn' }),
  });
  log('  reverse: cutover --with-rollback');
  let cut: Awaited<ReturnType<TealControl['cutover']>>;
  try {
    cut = await control.cutover({
      fence: true,
      verify: true,
      withRollback: true,
      timeoutMs: o.drainTimeoutMs,
      unfenceOnFailure: true,
    });
  } finally {
    await control.close().catch(() => {});
  }
  const cutover = { safeToSwitch: cut.safeToSwitch, steps: stepsOf(cut.steps) };
  log(
    `  cutover: safe to switch ${cut.safeToSwitch}, ${cut.steps.map((s) => `${s.name} ${s.ok ? 'ok' : 'FAILED'}`).join(', ')}`,
  );
  await o.stopForward();
  const empty = {
    faults: [],
    workload: emptyStats(),
    rollback: { error: 'not run: the cutover was not safe' },
    tables: [],
    rowsCompared: 0,
    rowsDiffering: 0,
    unexpectedExits: [],
  };
  if (!cut.safeToSwitch || !cut.rollback) {
    problems.push(`cutover --with-rollback not safe: ${JSON.stringify(cut.steps.filter((s) => !s.ok))}`);
    return { cutover, ...empty, problems };
  }

  // The application's writes on green take their versions from a sequence of green's, past blue's.
  const blue = textClient(o.blueUrl);
  const green = textClient(o.greenUrl);
  await blue.connect();
  await green.connect();
  const reverseSlot = cut.rollback.slot;
  const port = await freePort();
  const reverse = new TealChild(
    'reverse',
    ['services/cli/src/main.ts', 'reverse', '--config', o.configPath],
    { ...o.env, TEAL_API_PORT: String(port) },
    path.join(o.workDir, 'reverse.log'),
    o.root,
  );
  const api = `http://127.0.0.1:${port}`;
  const stats = emptyStats();
  const faults: ReverseReport['faults'] = [];
  try {
    const { rows } = await blue.query<{ v: string }>(`SELECT last_value::text AS v FROM ${t.ver}`);
    await green.query(`CREATE SEQUENCE IF NOT EXISTS ${t.ver}`);
    await green.query(`SELECT setval('${t.ver}', $1::bigint + 1000000)`, [rows[0].v]);

    reverse.start();
    const streaming = () =>
      waitFor(
        async () => {
          const res = await fetch(`${api}/status`).catch(() => undefined);
          const s = res?.ok ? ((await res.json()) as { producer?: { state?: string } }) : undefined;
          return s?.producer?.state === 'streaming' || undefined;
        },
        { what: 'teal reverse streaming', timeoutMs: o.recoveryTimeoutMs, intervalMs: 250 },
      );
    await streaming();
    log(
      `  teal reverse streaming (slot ${reverseSlot} on green, API ${api}); load on green and faults start`,
    );

    const stopLoad = new AbortController();
    const writers = Array.from({ length: o.writers }, (_, i) =>
      runWriter({
        url: o.greenUrl,
        rng: createRng(o.seed, `reverse-writer${i}`),
        tables: t,
        keys: o.keys,
        stats,
        signal: stopLoad.signal,
        rate: o.rate,
      }).catch((err) => problems.push(`green workload failed: ${(err as Error)?.message ?? err}`)),
    );
    // A change on green after the fault, visible in blue: the way back recovered.
    let probeId = 1_000_000;
    const probe = async (): Promise<void> => {
      const n = ++probeId;
      await green.query(`INSERT INTO ${t.probe} VALUES ($1, now())`, [n]);
      await waitFor(
        async () =>
          (await blue.query(`SELECT 1 FROM ${t.probe} WHERE id = $1`, [n]).catch(() => ({ rowCount: 0 })))
            .rowCount === 1,
        { what: `probe ${n} in blue`, timeoutMs: o.recoveryTimeoutMs, intervalMs: 50 },
      );
    };
    const rng = createRng(o.seed, 'reverse-faults');
    const started = Date.now();
    const until = started + o.durationS * 1000;
    while (Date.now() < until) {
      await abortableDelay(rng.int(o.gapMs[0], o.gapMs[1]));
      const kind = rng.pick([...REVERSE_FAULTS]);
      const atS = (Date.now() - started) / 1000;
      let detail: string;
      if (kind === 'reverse-kill') {
        await reverse.kill('SIGKILL');
        const delay = rng.int(200, 2000);
        await abortableDelay(delay);
        reverse.start();
        detail = `SIGKILL teal reverse, restart after ${delay} ms`;
      } else {
        // Its walsender and sessions on green (the source), its apply sessions on blue (the target).
        const g = await terminateSessions(green, portOf(o.greenUrl), [reverse], reverseSlot);
        const b = await terminateSessions(blue, portOf(o.blueUrl), [reverse]);
        detail = `pg_terminate_backend: ${g} sessions on green, ${b} on blue`;
      }
      const t0 = Date.now();
      const recoveryMs = await probe().then(
        () => Date.now() - t0,
        () => null,
      );
      faults.push({ kind, atS, detail, recoveryMs });
      log(
        `  reverse fault ${faults.length} at ${atS.toFixed(0)} s: ${kind} (${detail}); recovered in ${recoveryMs ?? 'NO'} ms`,
      );
    }
    stopLoad.abort();
    await Promise.all(writers);
    log(`  green load stopped: ${stats.transactions} transactions, ${faults.length} faults`);

    if (!reverse.running) reverse.start();
    await streaming();
    let rollback: ReverseReport['rollback'];
    const res = await fetch(`${api}/rollback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ timeoutMs: o.drainTimeoutMs }),
    }).catch((err: Error) => err);
    if (res instanceof Error) rollback = { error: res.message };
    else {
      const body = (await res.json()) as {
        safeToSwitch?: boolean;
        steps?: Steps;
        error?: { message: string };
      };
      rollback = body.steps
        ? { safeToSwitch: body.safeToSwitch === true, steps: stepsOf(body.steps) }
        : { error: body.error?.message ?? `HTTP ${res.status}` };
    }
    if ('error' in rollback) problems.push(`rollback failed: ${rollback.error}`);
    else {
      log(
        `  rollback: safe to switch back ${rollback.safeToSwitch}, ${rollback.steps.map((s) => `${s.name} ${s.ok ? 'ok' : 'FAILED'}`).join(', ')}`,
      );
      if (!rollback.safeToSwitch)
        problems.push(`rollback not safe: ${JSON.stringify(rollback.steps.filter((s) => !s.ok))}`);
    }
    await reverse.stop();

    // Fresh sessions: the rollback's fence of green ended the ones before it.
    const blueAfter = textClient(o.blueUrl);
    const greenAfter = textClient(o.greenUrl);
    await blueAfter.connect();
    await greenAfter.connect();
    const compared: TableComparison[] = [];
    try {
      for (const [table, k] of keyColumns(t))
        compared.push(await compareTable(blueAfter, greenAfter, table, k));
    } finally {
      await blueAfter.end().catch(() => {});
      await greenAfter.end().catch(() => {});
    }
    const rowsDiffering = compared.reduce((s, c) => s + c.onlyInBlue + c.onlyInGreen + c.different, 0);
    if (rowsDiffering > 0)
      problems.push(`after rollback ${rowsDiffering} rows differ between blue and green`);
    const failed = faults.filter((f) => f.recoveryMs === null).length;
    if (failed > 0) problems.push(`${failed} reverse faults without recovery within the timeout`);
    if (reverse.unexpectedExits.length > 0)
      problems.push(`teal reverse exited on its own ${reverse.unexpectedExits.length} time(s)`);
    return {
      cutover,
      faults,
      workload: stats,
      rollback,
      tables: compared,
      rowsCompared: compared.reduce((s, c) => s + c.green.rows, 0),
      rowsDiffering,
      unexpectedExits: reverse.unexpectedExits,
      problems,
    };
  } finally {
    await reverse.stop();
    await blue.end().catch(() => {});
    await green.end().catch(() => {});
    await removeReverse(o, reverseSlot).catch((err) =>
      log(`  reverse cleanup failed: ${(err as Error).message}`),
    );
  }
}

/** The reverse slot and publication on green and the reverse topics. */
async function removeReverse(o: ReversePhaseInput, slot: string): Promise<void> {
  const green = textClient(o.greenUrl);
  await green.connect();
  try {
    await green.query(
      'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active',
      [slot],
    );
    await green.query(`DROP PUBLICATION IF EXISTS ${o.base}_pub_reverse`);
  } finally {
    await green.end().catch(() => {});
  }
  const kafka = new KafkaClient({ brokers: o.brokers, clientId: `teal-${o.base}-reverse-cleanup` });
  const admin = kafka.admin();
  try {
    const topics = await admin.listTopics(`${o.base}_reverse.`);
    if (topics.length > 0) await admin.deleteTopics(topics);
  } finally {
    await admin.close();
    await kafka.close();
  }
}
