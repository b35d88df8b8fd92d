import { parseFaults, SCRATCH_FAULTS } from './faults.ts';
import { parseShapes, SHAPE_KINDS } from './shapes.ts';
import { defaultOptions, runSoak, type SoakReport } from './soak.ts';

// `npm run soak -- [--duration S] [--seed N] [--faults LIST] [--shapes LIST] [--scratch]
//   [--rate TX/S] [--writers N] [--big-rows N] [--reverse] [--keep] [--json FILE]`
// Exit 0 when blue == green after the drain and nothing was applied twice; 1 otherwise.

const HELP = `usage: tsx soak/run.ts [options]
  --duration S     seconds of load and faults (default 300)
  --seed N         seeds workload and fault schedule (default 1)
  --faults LIST    comma list of producer, consumer, terminate, rebalance, chunk-kill,
                   green-snapshot, syncrep, broker, green
                   (default producer,consumer,terminate,rebalance,chunk-kill; with --scratch
                   also green-snapshot,syncrep,green. green-snapshot and syncrep need --scratch;
                   broker restarts the shared Kafka and green without --scratch the shared
                   green Postgres, at most --env-fault-limit times each)
  --scratch        run on a blue and a green Postgres of the soak's own (free ports, removed
                   at the end); Kafka stays the shared broker
  --shapes LIST    issue-12 shapes written alongside: ${SHAPE_KINDS.join(', ')}, all or none
                   (default all: every shape's fix is on main)
  --shape-rate N   transactions per second over the shapes (default 8)
  --chunk-rows N   rows per snapshot chunk (default 200)
  --snapshot-via direct|kafka  the initial copy's path (default direct, teal's default)
  --range-rows N   rows per range of the direct copy (default 2000)
  --bulk-rows N    rows of the table green-snapshot stops green in the initial snapshot of (default 150000)
  --chunk-table-rows N  rows of each table chunk-kill adds (default 600)
  --env-fault-limit N   (default 1)
  --rate N         transactions per second per writer (default 25)
  --writers N      writer connections (default 2)
  --big-rows N     rows per large transaction (default 60000)
  --gap MIN,MAX    ms between faults, after the previous one recovered (default 200,1200)
  --drain-timeout S    give up the final drain after S seconds (default 600)
  --reverse        then the way back (needs --scratch): cutover --with-rollback, teal reverse
                   for --duration S with writers on green and its faults (SIGKILL, sessions
                   terminated on green and blue), rollback, blue compared with green
  --keep           keep tables and topics at the end
  --json FILE      also write the report as JSON`;

const opts = defaultOptions();
let jsonFile: string | undefined;
let faultsGiven = false;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const arg = argv[i];
  const value = () => {
    const v = argv[++i];
    if (v === undefined) throw new Error(`${arg} needs a value`);
    return v;
  };
  const num = () => {
    const v = Number(value());
    if (!Number.isFinite(v) || v < 0) throw new Error(`${arg} needs a non-negative number`);
    return v;
  };
  switch (arg) {
    case '--duration':
      opts.durationS = num();
      break;
    case '--seed':
      opts.seed = Math.floor(num());
      break;
    case '--faults':
      opts.faults = parseFaults(value());
      faultsGiven = true;
      break;
    case '--scratch':
      opts.scratch = true;
      break;
    case '--shapes':
      opts.shapes = parseShapes(value());
      break;
    case '--shape-rate':
      opts.shapeRate = num();
      break;
    case '--bulk-rows':
      opts.bulkRows = Math.max(1, Math.floor(num()));
      break;
    case '--chunk-table-rows':
      opts.chunkTableRows = Math.max(1, Math.floor(num()));
      break;
    case '--chunk-rows':
      opts.chunkRows = Math.max(1, Math.floor(num()));
      break;
    case '--snapshot-via': {
      const via = value();
      if (via !== 'direct' && via !== 'kafka') throw new Error(`--snapshot-via: direct or kafka, not ${via}`);
      opts.snapshotVia = via;
      break;
    }
    case '--range-rows':
      opts.rangeRows = Math.max(1, Math.floor(num()));
      break;
    case '--env-fault-limit':
      opts.envFaultLimit = num();
      break;
    case '--rate':
      opts.rate = num();
      break;
    case '--writers':
      opts.writers = Math.floor(num());
      break;
    case '--big-rows':
      opts.bigRows = Math.floor(num());
      break;
    case '--gap': {
      const [a, b] = value().split(',').map(Number);
      opts.gapMs = [a, b ?? a];
      break;
    }
    case '--drain-timeout':
      opts.drainTimeoutMs = num() * 1000;
      break;
    case '--keep':
      opts.keep = true;
      break;
    case '--reverse':
      opts.reverse = true;
      break;
    case '--json':
      jsonFile = value();
      break;
    case '--help':
    case '-h':
      console.log(HELP);
      process.exit(0);
      break;
    default:
      console.error(`unknown option ${arg}\n${HELP}`);
      process.exit(2);
  }
}

if (opts.scratch && !faultsGiven) opts.faults = [...SCRATCH_FAULTS];

for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    console.error(
      `\n${signal}: children killed; remove the run's slot and data with tsx soak/cleanup.ts <base>`,
    );
    process.exit(130);
  });
const report = await runSoak(opts);
printSummary(report);
if (jsonFile) {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
}
process.exit(report.ok ? 0 : 1);

function printSummary(r: SoakReport): void {
  const kinds = Object.entries(r.faults.injected)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  console.log(`\nSOAK ${r.ok ? 'PASSED' : 'FAILED'} (seed ${r.seed}, ${r.durationS} s)`);
  console.log(`  faults injected: ${r.faults.total} (${kinds || 'none'})`);
  console.log(
    `  recovery: longest ${r.recovery.longestMs} ms (${r.recovery.longestKind ?? '-'}), median ${r.recovery.medianMs} ms, not recovered ${r.recovery.failed}`,
  );
  const w = r.workload;
  console.log(
    `  workload: ${w.transactions} transactions (${w.rolledBack} rolled back), ${w.inserts} inserts, ${w.updates} updates (${w.toastUnchangedUpdates} TOAST unchanged), ${w.keyChanges} key changes, ${w.deletes} deletes, ${w.truncates} truncates`,
  );
  const sh = r.shapes.stats;
  if (r.shapes.kinds.length > 0)
    console.log(
      `  shapes: ${Object.entries(sh.transactions)
        .map(([k, n]) => `${k} ${n} tx`)
        .join(
          ', ',
        )}; unique moves ${sh.uniqueMoves}, partition moves ${sh.partitionMoves}, FK-pair truncates ${sh.fkTruncates}, several-MB row writes ${sh.bigRowWrites}`,
    );
  for (const b of w.bigTransactions)
    console.log(
      `  large transaction: ${b.rows} rows, ${b.committed ? 'committed' : 'rolled back'}, ${b.ms} ms`,
    );
  if (r.stream)
    console.log(
      `  slot stats: ${r.stream.streamTxns} streamed transactions (${r.stream.streamBytes} bytes), ${r.stream.spillTxns} spilled`,
    );
  console.log(`  drain: ${'lsn' in r.drain ? `${r.drain.lsn} in ${r.drain.waitedMs} ms` : r.drain.error}`);
  for (const c of r.tables)
    console.log(
      `  ${c.table}: blue ${c.blue.rows} rows ${c.blue.md5}, green ${c.green.rows} rows ${c.green.md5}` +
        (c.examples.length ? ` — ${c.examples.join('; ')}` : ''),
    );
  console.log(`  rows compared: ${r.rowsCompared}, differing: ${r.rowsDiffering}`);
  console.log(
    `  applied twice: ${r.appliedTwice} (of ${r.auditRecorded} row writes recorded in green)${r.appliedTwiceExamples.length ? `: ${r.appliedTwiceExamples.join('; ')}` : ''}`,
  );
  console.log(`  dead letters: ${r.deadLetters}`);
  for (const e of r.unexpectedExits)
    console.log(
      `  ${e.name} exited by itself (code ${e.code}, signal ${e.signal}):\n    ${e.logTail.split('\n').slice(-3).join('\n    ')}`,
    );
  const rv = r.reverse;
  if (rv) {
    const rk: Record<string, number> = {};
    for (const f of rv.faults) rk[f.kind] = (rk[f.kind] ?? 0) + 1;
    const rec = rv.faults.map((f) => f.recoveryMs).filter((ms): ms is number => ms !== null);
    console.log(`  reverse: cutover --with-rollback safe ${rv.cutover.safeToSwitch}`);
    console.log(
      `  reverse faults: ${rv.faults.length} (${
        Object.entries(rk)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ') || 'none'
      }), longest recovery ${Math.max(0, ...rec)} ms`,
    );
    const w2 = rv.workload;
    console.log(
      `  green workload: ${w2.transactions} transactions, ${w2.inserts} inserts, ${w2.updates} updates, ${w2.keyChanges} key changes, ${w2.deletes} deletes`,
    );
    console.log(
      `  rollback: ${'error' in rv.rollback ? rv.rollback.error : `safe to switch back ${rv.rollback.safeToSwitch} (${rv.rollback.steps.map((s) => `${s.name} ${s.ok ? 'ok' : 'FAILED'}`).join(', ')})`}`,
    );
    for (const c of rv.tables)
      console.log(
        `  after rollback ${c.table}: blue ${c.blue.rows} rows ${c.blue.md5}, green ${c.green.rows} rows ${c.green.md5}`,
      );
    console.log(`  after rollback rows compared: ${rv.rowsCompared}, differing: ${rv.rowsDiffering}`);
  }
  for (const p of r.problems) console.log(`  PROBLEM: ${p}`);
}
