import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';

// `node bin/teal.mjs <args>` as a child process, its stdout and stderr kept together, stopped
// (SIGTERM, then SIGKILL after `stopWaitMs`) when the test ends if it still runs.

const ROOT = join(import.meta.dirname, '..', '..');

export interface TealChild {
  readonly proc: ChildProcess;
  output(): string;
  readonly exited: Promise<number | null>;
  /** SIGCONT (it may be stopped) then SIGTERM; SIGKILL if it has not exited after `stopWaitMs`. */
  stop(): Promise<void>;
}

export interface TealChildOptions {
  readonly cwd: string;
  /** Set on top of this process's environment (after `dropEnv`); VITEST is emptied so teal logs as in production. */
  readonly env: Record<string, string>;
  /** Prefixes of this process's variables the child must not inherit (e.g. PG, TEAL_). */
  readonly dropEnv?: readonly string[];
  readonly stopWaitMs?: number;
}

export function spawnTeal(args: readonly string[], options: TealChildOptions): TealChild {
  const drop = options.dropEnv ?? [];
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k, v]) => v !== undefined && !drop.some((p) => k.startsWith(p))),
  );
  const proc = spawn(process.execPath, [join(ROOT, 'bin', 'teal.mjs'), ...args], {
    cwd: options.cwd,
    env: { ...base, VITEST: '', NO_COLOR: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: Buffer[] = [];
  proc.stdout!.on('data', (c: Buffer) => chunks.push(c));
  proc.stderr!.on('data', (c: Buffer) => chunks.push(c));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGCONT');
    proc.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, options.stopWaitMs ?? 20_000).unref())]);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  onTestFinished(stop);
  return { proc, output: () => Buffer.concat(chunks).toString('utf8'), exited, stop };
}
