import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { caseAt, crashRecord, type FuzzStats } from './engine.ts';
import { TARGET_NAMES, targetByName } from './targets-index.ts';

// npm run fuzz [-- --inputs N --seed S --target a,b --from I --slow-ms 100 --hang-ms 10000]
// Seeded mutation fuzzing of teal's decoders (see fuzz/README.md). Exits non-zero, with the
// inputs saved under fuzz/crashes/, when any input throws anything but a TEAL_* TealError,
// runs past the per-input bound, hangs, or allocates past the limit.

const { values } = parseArgs({
  options: {
    inputs: { type: 'string', default: '1000000' },
    seed: { type: 'string', default: '1' },
    target: { type: 'string', default: TARGET_NAMES.join(',') },
    from: { type: 'string', default: '0' },
    'slow-ms': { type: 'string', default: '100' },
    'hang-ms': { type: 'string', default: '10000' },
    'alloc-limit-mb': { type: 'string', default: '64' },
    'heap-mb': { type: 'string', default: '1024' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(
    'usage: npm run fuzz -- [--inputs N=1000000 per target] [--seed S=1] [--target pgoutput,copydata,assembler,avro]\n' +
      '                     [--from I=0] [--slow-ms 100] [--hang-ms 10000] [--alloc-limit-mb 64] [--heap-mb 1024]',
  );
  process.exit(0);
}
const num = (k: keyof typeof values) => {
  const n = Number(values[k]);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new Error(`--${k} must be a non-negative integer, got ${values[k]}`);
  return n;
};
const inputs = num('inputs');
const seed = num('seed');
const from = num('from');
const slowMs = num('slow-ms');
const hangMs = num('hang-ms');
const allocLimit = num('alloc-limit-mb') * 1024 * 1024;
const heapMb = num('heap-mb');
const targets = String(values.target).split(',').filter(Boolean);
for (const t of targets) targetByName(t, seed); // fail fast on a typo

const crashDir = join(import.meta.dirname, 'crashes');
let peakRss = process.memoryUsage.rss();
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
}, 200);

function save(name: string, index: number, record: string): string {
  mkdirSync(crashDir, { recursive: true });
  const file = join(crashDir, `${name}-seed${seed}-${index}.json`);
  writeFileSync(file, record);
  return file;
}

type WorkerResult = Omit<FuzzStats, 'failures'> & {
  failures: { index: number; reason: string; record: string }[];
};

function runTarget(
  name: string,
): Promise<{ stats?: WorkerResult; crash?: { index: number; reason: string } }> {
  // [index being run, 1 once the first input started]
  const progress = new SharedArrayBuffer(8);
  const current = new Int32Array(progress);
  Atomics.store(current, 0, from);
  const worker = new Worker(new URL('./worker-boot.mjs', import.meta.url), {
    workerData: { target: name, seed, from, inputs, slowMs, allocLimit, progress },
    resourceLimits: { maxOldGenerationSizeMb: heapMb },
  });
  return new Promise((resolve) => {
    let last = -1;
    let since = Date.now();
    let done = false;
    const finish = (r: { stats?: WorkerResult; crash?: { index: number; reason: string } }) => {
      if (done) return;
      done = true;
      clearInterval(watchdog);
      resolve(r);
    };
    const watchdog = setInterval(() => {
      const i = Atomics.load(current, 0);
      if (i !== last) {
        last = i;
        since = Date.now();
      } else if (Date.now() - since > hangMs) {
        void worker.terminate();
        finish({ crash: { index: i, reason: `hang: input ${i} ran for more than ${hangMs} ms` } });
      }
    }, 250);
    worker.on('message', (stats: WorkerResult) => finish({ stats }));
    worker.on('error', (err) => {
      if (Atomics.load(current, 1) === 0) {
        console.error(`fuzz: worker for ${name} failed before its first input:`, err);
        process.exit(2);
      }
      const i = Atomics.load(current, 0);
      finish({ crash: { index: i, reason: `worker died on input ${i}: ${err.name}: ${err.message}` } });
    });
    worker.on('exit', (code) => {
      if (!done) finish({ crash: { index: Atomics.load(current, 0), reason: `worker exited with ${code}` } });
    });
  });
}

let bad = 0;
const startedAll = Date.now();
console.log(
  `fuzz: seed ${seed}, ${inputs} inputs per target from index ${from}, targets ${targets.join(', ')}`,
);
for (const name of targets) {
  const { stats, crash } = await runTarget(name);
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  if (crash) {
    bad++;
    const input = caseAt(targetByName(name, seed), seed, crash.index);
    const file = save(
      name,
      crash.index,
      crashRecord(name, seed, { index: crash.index, reason: crash.reason, input }),
    );
    console.log(`${name}: CRASH ${crash.reason}\n  saved ${file}`);
    continue;
  }
  const s = stats!;
  const rejected = Object.entries(s.rejected)
    .sort((a, b) => b[1] - a[1])
    .map(([code, n]) => `${code} ${n}`)
    .join(', ');
  console.log(
    `${name}: ${s.inputs} inputs in ${(s.elapsedMs / 1000).toFixed(1)} s (${Math.round(s.inputs / (s.elapsedMs / 1000))}/s); ` +
      `${s.accepted} decoded, rejected: ${rejected || 'none'}; crashes ${s.failures.length}; ` +
      `slowest input #${s.slowest.index} ${s.slowest.ms.toFixed(2)} ms; over ${slowMs} ms: ${s.slow.length}`,
  );
  for (const f of s.failures) {
    bad++;
    console.log(`  CRASH #${f.index}: ${f.reason}\n  saved ${save(name, f.index, f.record)}`);
  }
  for (const slow of s.slow.slice(0, 20)) {
    bad++;
    const input = caseAt(targetByName(name, seed), seed, slow.index);
    const reason = `slow: ${slow.ms.toFixed(1)} ms (bound ${slowMs} ms)`;
    console.log(
      `  SLOW #${slow.index}: ${reason}\n  saved ${save(name, slow.index, crashRecord(name, seed, { index: slow.index, reason, input }))}`,
    );
  }
}
clearInterval(sampler);
const maxRssKb = process.resourceUsage().maxRSS;
console.log(
  `fuzz: done in ${((Date.now() - startedAll) / 1000).toFixed(1)} s; peak RSS ${(Math.max(peakRss, maxRssKb * 1024) / 1048576).toFixed(0)} MB; ` +
    `${bad === 0 ? 'no crashes' : `${bad} problem(s), inputs in ${crashDir}`}`,
);
process.exit(bad === 0 ? 0 : 1);
