import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CliIo, main } from '@teal/cli';
import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import { describe, expect, onTestFinished, test } from 'vitest';
import { type CheckDatabases, checkDatabases } from './support/check-databases.ts';
import { kafkaBrokers } from './support/env.ts';
import { spawnTeal } from './support/teal-child.ts';

// Logs are readable lines for a person at a terminal and JSON for everything else, and
// --log-format / TEAL_LOG_FORMAT override that both ways. `teal run`'s producer thread
// writes the main thread's choice (its own stdout is never a TTY). The terminal is a real
// pseudo-TTY: util-linux `script` runs teal on one.

const BIN = join(import.meta.dirname, '..', 'bin', 'teal.mjs');
const PRETTY = /^\[\d\d:\d\d:\d\d\.\d{3}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL): /;
const ESC = String.fromCharCode(27);
const ANSI = new RegExp(`${ESC}\\[[0-9;?]*[A-Za-z]`, 'g');

interface Run {
  output(): string;
  stop(): Promise<void>;
}

function pipelineEnv(db: CheckDatabases): Record<string, string> {
  return {
    TEAL_LOG_LEVEL: 'info',
    TEAL_BLUE_URL: db.blueUrl,
    TEAL_GREEN_URL: db.greenUrl,
    TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
    TEAL_SLOT: db.name,
    TEAL_PUBLICATION: db.name,
    TEAL_TOPIC_PREFIX: db.name,
    TEAL_API_PORT: '0',
    // Node's own process warnings (stderr) are not teal's log: test/e2e-demo.test.ts looks at those.
    NODE_NO_WARNINGS: '1',
  };
}

/** A fresh working directory (no teal.config.ts: every table of blue) and, at the end, no topics left. */
function workDir(db: CheckDatabases): string {
  const dir = mkdtempSync(join(tmpdir(), `teal-${db.name}-`));
  onTestFinished(async () => {
    rmSync(dir, { recursive: true, force: true });
    const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: db.name });
    const admin = kafka.admin();
    await admin.deleteTopics(await admin.listTopics(`${db.name}.`)).catch(() => {});
    await admin.close();
    await kafka.close();
  });
  return dir;
}

/** `teal <args>` on a pseudo-TTY; SIGTERM goes to teal itself (script's child, which prints its pid first). */
function onTerminal(args: string[], env: Record<string, string>, cwd: string): Run {
  const command = `echo "teal pid $$"; exec ${process.execPath} ${BIN} ${args.join(' ')}`;
  const proc: ChildProcess = spawn('script', ['-qfec', command, '/dev/null'], {
    cwd,
    env: { ...process.env, VITEST: '', NO_COLOR: '', ...env },
    // stdin stays open: script ends the session when its input ends.
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const chunks: Buffer[] = [];
  proc.stdout!.on('data', (c: Buffer) => chunks.push(c));
  proc.stderr!.on('data', (c: Buffer) => chunks.push(c));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const output = () => Buffer.concat(chunks).toString('utf8').replace(/\r/g, '');
  const stop = async () => {
    const pid = Number(/teal pid (\d+)/.exec(output())?.[1]);
    if (proc.exitCode === null && proc.signalCode === null && pid > 0) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {}
      await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000).unref())]);
    }
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  onTestFinished(stop);
  return { output, stop };
}

function onPipe(args: string[], env: Record<string, string>, cwd: string): Run {
  const child = spawnTeal(args, { cwd, env });
  return { output: child.output, stop: child.stop };
}

async function runUntil(run: Run, pattern: RegExp, what: string): Promise<string[]> {
  await waitFor(() => pattern.test(run.output().replace(ANSI, '')), { what, timeoutMs: 60_000 }).catch(
    (err: Error) => {
      throw new Error(`${err.message}; output so far:\n${run.output()}`);
    },
  );
  await run.stop();
  return run.output().split('\n');
}

/** The log lines among the output: teal's own stderr lines ("teal: ...") and the pid echo aside. */
function logLines(lines: string[]): string[] {
  return lines
    .map((l) => l.replace(ANSI, '').trim())
    .filter((l) => l !== '' && !l.startsWith('teal: ') && !l.startsWith('teal pid '));
}

describe('log format', () => {
  // On a pipe, teal run's JSON from both threads is what run-threads.test.ts and log-secrets.test.ts parse.
  test('teal run on a terminal: pretty lines in colour, from both threads', async () => {
    const db = await checkDatabases(
      'log_format_run',
      'CREATE TABLE items (id int PRIMARY KEY)',
      'CREATE TABLE items (id int PRIMARY KEY)',
    );
    const dir = workDir(db);
    // The producer thread logs "producer starting" with component "producer"; the main thread "stopping".
    const tty = await runUntil(
      onTerminal(['run'], pipelineEnv(db), dir),
      /\[producer\] producer starting[\s\S]*control API on/,
      'teal run on a terminal to start',
    );
    const ttyText = tty.join('\n');
    expect(ttyText).toContain(`${ESC}[32mINFO${ESC}[39m`);
    const pretty = logLines(tty);
    expect(pretty.length).toBeGreaterThan(3);
    for (const line of pretty) expect(line).toMatch(PRETTY);
    expect(pretty.some((l) => /INFO: \[producer\] producer starting \{"blue":"postgres:/.test(l))).toBe(true);
    expect(pretty.some((l) => /INFO: \[producer-thread\] producer thread started/.test(l))).toBe(true);
    expect(pretty.some((l) => /INFO: stopping \{"signal":"SIGTERM"\}/.test(l))).toBe(true);
  }, 120_000);

  test('teal api without a terminal logs JSON; --log-format and TEAL_LOG_FORMAT override it both ways', async () => {
    // The flag over the variable over the terminal is unit-tested (logger.test.ts); here each
    // way once, the three children side by side (one pair of databases, a port each).
    const db = await checkDatabases('log_format_override', '', '');
    const dir = mkdtempSync(join(tmpdir(), `teal-${db.name}-`));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const cases: Array<{ run: typeof onPipe; args: string[]; env: Record<string, string>; expect: string }> =
      [
        { run: onPipe, args: ['api'], env: {}, expect: 'json' },
        {
          run: onTerminal,
          args: ['api', '--log-format', 'json'],
          env: { TEAL_LOG_FORMAT: 'pretty' },
          expect: 'json',
        },
        { run: onPipe, args: ['api'], env: { TEAL_LOG_FORMAT: 'pretty' }, expect: 'pretty' },
      ];
    const outputs = await Promise.all(
      cases.map((c) =>
        runUntil(
          c.run(c.args, { ...pipelineEnv(db), ...c.env }, dir),
          /control API listening/,
          'teal api to listen',
        ),
      ),
    );
    cases.forEach((c, i) => {
      const raw = outputs[i]!;
      const lines = logLines(raw);
      expect(lines.length, raw.join('\n')).toBeGreaterThan(1);
      for (const line of lines) {
        if (c.expect === 'json') expect(JSON.parse(line)).toHaveProperty('msg');
        else expect(line).toMatch(PRETTY);
      }
      // Colour only on a terminal.
      if (c.run === onPipe) expect(raw.join('\n')).not.toContain(`${ESC}[`);
    });
  }, 90_000);

  test('an unknown format is a usage error naming the flag or the variable', async () => {
    const run = async (args: string[], env: Record<string, string> = {}) => {
      let err = '';
      const io: CliIo = {
        stdout: { write: () => true },
        stderr: { write: (t: string) => (err += t) },
        env,
        cwd: tmpdir(),
        stopSignal: () => new Promise(() => {}),
      };
      return { code: await main(args, io), err };
    };
    expect(await run(['status', '--log-format', 'xml'])).toEqual({
      code: 2,
      err: 'teal status: --log-format must be one of json, pretty, got "xml"\n',
    });
    expect(await run(['verify'], { TEAL_LOG_FORMAT: 'yaml' })).toEqual({
      code: 2,
      err: 'teal verify: TEAL_LOG_FORMAT must be one of json, pretty, got "yaml"\n',
    });
  });
});
