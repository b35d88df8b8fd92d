import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';

// teal's producer and consumer run as child processes of the soak so that a fault is a real
// SIGKILL of a real process. A child that exits on its own (not killed by the soak) is
// recorded and restarted, as a supervisor (systemd Restart=always, Kubernetes) would.

export interface ChildExit {
  name: string;
  code: number | null;
  signal: string | null;
  at: number;
  logTail: string;
}

const live = new Set<ChildProcess>();
// A soak that dies (Ctrl-C, an exception) must not leave teal processes holding its slot.
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export class TealChild {
  private child: ChildProcess | undefined;
  private exitWaiters: Array<() => void> = [];
  private expectingExit = false;
  private stopped = false;
  readonly unexpectedExits: ChildExit[] = [];
  starts = 0;

  constructor(
    readonly name: string,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
    readonly logFile: string,
    private readonly cwd: string,
    /** Restart after an exit the soak did not cause; undefined = never (tests that expect an exit). */
    private readonly restartDelayMs: number | undefined = 1000,
  ) {}

  /** Resolves with the next exit of the running process. */
  exited(): Promise<ChildExit | undefined> {
    if (!this.running) return Promise.resolve(this.unexpectedExits.at(-1));
    return new Promise((resolve) => this.exitWaiters.push(() => resolve(this.unexpectedExits.at(-1))));
  }

  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  get running(): boolean {
    return this.pid !== undefined;
  }

  start(): void {
    if (this.running) return;
    const fd = openSync(this.logFile, 'a');
    const child = spawn(process.execPath, ['--import', 'tsx', ...this.args], {
      cwd: this.cwd,
      env: this.env,
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    this.starts++;
    this.child = child;
    this.expectingExit = false;
    live.add(child);
    let ended = false;
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      if (ended) return;
      ended = true;
      live.delete(child);
      const wake = this.exitWaiters.splice(0);
      const unexpected = !this.expectingExit && !this.stopped && this.child === child;
      if (unexpected)
        this.unexpectedExits.push({
          name: this.name,
          code,
          signal,
          at: Date.now(),
          logTail: tail(this.logFile),
        });
      for (const w of wake) w();
      if (!unexpected || this.restartDelayMs === undefined) return;
      // Restart after a pause, unless the soak stopped it meanwhile.
      setTimeout(() => {
        if (!this.stopped && this.child === child) this.start();
      }, this.restartDelayMs).unref();
    };
    child.once('exit', onExit);
    // A spawn that fails (its cwd gone, node missing) emits 'error' and no 'exit': an exit
    // of its own, recorded and restarted, never an unhandled crash of the soak.
    child.once('error', () => {
      if (child.pid === undefined) onExit(null, null);
    });
  }

  /** Sends `signal` and resolves once the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || this.pid === undefined) return;
    this.expectingExit = true;
    const gone = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    child.kill(signal);
    await gone;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; no restart afterwards. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopped = true;
    const child = this.child;
    if (!child || this.pid === undefined) return;
    this.expectingExit = true;
    const gone = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await gone;
    clearTimeout(timer);
  }
}

export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Local TCP ports of `pid`'s connections to `remotePort` (from /proc), so that the soak can
 * find its own children's sessions in pg_stat_activity (client_port) and terminate exactly
 * those, never another engineer's.
 */
export function localPortsTo(pid: number, remotePort: number): number[] {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]);
      } catch {
        // fd closed meanwhile
      }
    }
  } catch {
    return [];
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9])) continue;
      const local = Number.parseInt(f[1].split(':').pop()!, 16);
      const remote = Number.parseInt(f[2].split(':').pop()!, 16);
      if (remote === remotePort) ports.push(local);
    }
  }
  return ports;
}
