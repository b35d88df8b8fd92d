import { parentPort, workerData } from 'node:worker_threads';
import { guardAllocations } from './alloc-guard.ts';
import { crashRecord, fuzz } from './engine.ts';
import { targetByName } from './targets-index.ts';

// Runs one target's inputs; the main thread watches `progress` (the index being run) to
// catch a hang, which no in-thread timer could interrupt.
const {
  target: name,
  seed,
  from,
  inputs,
  slowMs,
  allocLimit,
  progress,
} = workerData as {
  target: string;
  seed: number;
  from: number;
  inputs: number;
  slowMs: number;
  allocLimit: number;
  progress: SharedArrayBuffer;
};
guardAllocations(allocLimit);
const current = new Int32Array(progress);
const target = targetByName(name, seed);
const stats = await fuzz(target, {
  seed,
  inputs,
  firstIndex: from,
  slowMs,
  onInput: (i) => {
    Atomics.store(current, 0, i);
    Atomics.store(current, 1, 1);
  },
});
parentPort!.postMessage({
  ...stats,
  failures: stats.failures.map((f) => ({
    index: f.index,
    reason: f.reason,
    record: crashRecord(name, seed, f),
  })),
});
