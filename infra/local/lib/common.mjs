// What every part of the local environment shares: where its state lives, the `[env]`
// output, running commands, pid files and ports. Node builtins only, like env.mjs.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const STATE = path.join(ROOT, '.teal');
export const LOG_DIR = path.join(STATE, 'logs');
export const RUN_DIR = path.join(STATE, 'run');
export const IS_ROOT = process.getuid?.() === 0;

export function log(msg) {
  process.stdout.write(`[env] ${msg}\n`);
}

export function logError(msg) {
  process.stderr.write(`[env] error: ${msg}\n`);
}

export function fail(msg) {
  logError(msg);
  process.exit(1);
}

export function secs(startMs) {
  return `${((Date.now() - startMs) / 1000).toFixed(1)} s`;
}

export const delay = (ms) => new Promise((r) => setTimeout(r, ms));

export function which(cmd) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const full = path.join(dir, cmd);
    try {
      fs.accessSync(full, fs.constants.X_OK);
      return full;
    } catch {}
  }
  return undefined;
}

/** Runs a command to completion, resolving with its exit code and output (never rejects on exit code). */
export function run(cmd, args, { cwd = ROOT, env = process.env } = {}) {
  return new Promise((resolve, reject) => {
    // No stdin: writing to a child that already exited would be an EPIPE.
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, out }));
  });
}

export async function runOk(cmd, args, opts) {
  const { code, out } = await run(cmd, args, opts);
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${out.trim()}`);
  return out;
}

export function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

export function readPid(file) {
  try {
    const pid = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function tcpAnswers(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export function tail(file, lines = 30) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Polls `ready` until it is true; `check` may throw to give up early (a process that died). */
export async function waitFor(ready, { deadlineMs, everyMs, check, timeoutMessage }) {
  const deadline = Date.now() + deadlineMs;
  while (!(await ready())) {
    check?.();
    if (Date.now() > deadline) throw new Error(timeoutMessage);
    await delay(everyMs);
  }
}
