import { performance } from 'node:perf_hooks';
import { hashName, Rng } from './rng.ts';
import { type FuzzCase, type FuzzTarget, unacceptable } from './targets.ts';

export interface Failure {
  readonly index: number;
  readonly reason: string;
  readonly stack?: string;
  readonly input: FuzzCase;
}

export interface FuzzStats {
  readonly target: string;
  readonly inputs: number;
  /** Inputs that decoded to a value. */
  readonly accepted: number;
  /** Inputs rejected with a TEAL_* TealError, by code. */
  readonly rejected: Record<string, number>;
  readonly failures: Failure[];
  readonly slowest: { index: number; ms: number };
  /** Inputs over the per-input bound, confirmed by re-runs (ms = the fastest re-run). */
  readonly slow: { index: number; ms: number }[];
  readonly elapsedMs: number;
}

export interface FuzzRunOptions {
  readonly seed: number;
  readonly inputs: number;
  readonly firstIndex?: number;
  /** Per-input time bound; slower inputs are listed as failures. */
  readonly slowMs?: number;
  /** Called before each input; the runner's watchdog reads it. */
  readonly onInput?: (index: number) => void;
  readonly maxFailures?: number;
}

/** Input `index` of `target` under `seed`: the same bytes on every machine and every run. */
export function caseAt(target: FuzzTarget, seed: number, index: number): FuzzCase {
  return target.generate(new Rng(seed, hashName(target.name), index));
}

export async function fuzz(target: FuzzTarget, opts: FuzzRunOptions): Promise<FuzzStats> {
  const slowMs = opts.slowMs ?? 100;
  const maxFailures = opts.maxFailures ?? 20;
  const first = opts.firstIndex ?? 0;
  const rejected: Record<string, number> = {};
  const failures: Failure[] = [];
  const slow: { index: number; ms: number }[] = [];
  let accepted = 0;
  let slowest = { index: -1, ms: 0 };
  const started = performance.now();
  for (let index = first; index < first + opts.inputs; index++) {
    opts.onInput?.(index);
    const input = caseAt(target, opts.seed, index);
    const t0 = performance.now();
    try {
      const pending = target.run(input);
      if (pending) await pending;
      accepted++;
    } catch (err) {
      const reason = unacceptable(err);
      if (reason === undefined) {
        const code = (err as { code: string }).code;
        rejected[code] = (rejected[code] ?? 0) + 1;
      } else if (failures.length < maxFailures) {
        failures.push({ index, reason, stack: (err as Error)?.stack, input });
      }
    }
    const ms = performance.now() - t0;
    if (ms > slowest.ms) slowest = { index, ms };
    if (ms > slowMs) slow.push({ index, ms });
  }
  // A pause of the whole process (GC, another process on a shared core) can push any input
  // past the bound: an input counts as slow only if it is slow again on each of 3 re-runs.
  const confirmedSlow: { index: number; ms: number }[] = [];
  for (const s of slow) {
    let fastest = s.ms;
    for (let attempt = 0; attempt < 3 && fastest > slowMs; attempt++) {
      const input = caseAt(target, opts.seed, s.index);
      const t0 = performance.now();
      try {
        await target.run(input);
      } catch {
        // classified above
      }
      fastest = Math.min(fastest, performance.now() - t0);
    }
    if (fastest > slowMs) confirmedSlow.push({ index: s.index, ms: fastest });
  }
  return {
    target: target.name,
    inputs: opts.inputs,
    accepted,
    rejected,
    failures,
    slowest,
    slow: confirmedSlow,
    elapsedMs: performance.now() - started,
  };
}

/** A crash file: JSON with the reproduction coordinates and the bytes in hex. */
export function crashRecord(target: string, seed: number, f: Failure): string {
  return `${JSON.stringify(
    {
      target,
      seed,
      index: f.index,
      reason: f.reason,
      params: f.input.params,
      data: f.input.data.map((b) => b.toString('hex')),
      reproduce: `npm run fuzz -- --target ${target} --seed ${seed} --from ${f.index} --inputs 1`,
      stack: f.stack,
    },
    null,
    2,
  )}\n`;
}
