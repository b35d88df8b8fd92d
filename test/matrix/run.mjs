#!/usr/bin/env node
// npm run test:matrix: test/engine-versions.test.ts over every pair blue x green of
// PostgreSQL 13..18 (upgrades, equal majors and rollback targets), one vitest run with one
// scratch cluster per major, then a table: a row per blue, a column per green, each cell the
// pair's result and time. Bounded: each test has its own timeout, the whole run
// TEAL_MATRIX_TIMEOUT_S (default 2400 s).
//
//   npm run test:matrix                     every pair
//   npm run test:matrix -- 13,15,18         the pairs among these majors
//   npm run test:matrix -- --markdown FILE  also write the table (Markdown) to FILE
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const markdownAt = args.indexOf('--markdown');
const markdownFile = markdownAt >= 0 ? args.splice(markdownAt, 2)[1] : undefined;
const majors = (args[0] ?? '13,14,15,16,17,18').split(',').map(Number);
const pairs = majors.flatMap((b) => majors.map((g) => [b, g]));
const timeoutS = Number(process.env.TEAL_MATRIX_TIMEOUT_S ?? 2400);

const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'teal-matrix-')), 'report.json');
const started = Date.now();
const child = spawn(
  process.execPath,
  [
    path.join(ROOT, 'node_modules/vitest/vitest.mjs'),
    'run',
    'test/engine-versions.test.ts',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${report}`,
  ],
  {
    cwd: ROOT,
    stdio: 'inherit',
    env: { ...process.env, TEAL_ENGINE_PAIRS: pairs.map((p) => p.join(':')).join(',') },
  },
);
const timer = setTimeout(() => {
  process.stderr.write(`[matrix] over ${timeoutS} s: stopping the run\n`);
  child.kill('SIGTERM');
}, timeoutS * 1000);
const code = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));
clearTimeout(timer);

/** "PostgreSQL 13 -> 18" -> { pass, failed: [test names], ms } */
const cells = new Map();
let tests = [];
try {
  tests = JSON.parse(fs.readFileSync(report, 'utf8')).testResults.flatMap((f) => f.assertionResults);
} catch {
  process.stderr.write(`[matrix] no report at ${report} (vitest exit ${code})\n`);
}
for (const t of tests) {
  const pair = /^PostgreSQL (\d+) -> (\d+)$/.exec(t.ancestorTitles[0] ?? '');
  if (!pair) continue;
  const key = `${pair[1]}:${pair[2]}`;
  const cell = cells.get(key) ?? { passed: 0, failed: [], ms: 0 };
  if (t.status === 'passed') cell.passed++;
  else cell.failed.push(t.title.split(/[,:]/)[0]);
  cell.ms += t.duration ?? 0;
  cells.set(key, cell);
}

const text = (b, g) => {
  const cell = cells.get(`${b}:${g}`);
  if (!cell) return 'not run';
  const time = `${(cell.ms / 1000).toFixed(0)} s`;
  return cell.failed.length === 0 ? `ok ${time}` : `FAIL (${cell.failed.join('; ')}) ${time}`;
};
const header = ['blue \\ green', ...majors.map(String)];
const rows = majors.map((b) => [String(b), ...majors.map((g) => text(b, g))]);
const width = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (r) => `| ${r.map((c, i) => c.padEnd(width[i])).join(' | ')} |`;
const table = [line(header), `|${width.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join(
  '\n',
);
const okPairs = [...cells.values()].filter((c) => c.failed.length === 0).length;
const summary = `${okPairs}/${pairs.length} pairs passed in ${((Date.now() - started) / 1000).toFixed(0)} s (each cell: type fidelity + streamed transaction + check and cutover, their time)`;
process.stdout.write(
  `\n[matrix] PostgreSQL blue x green, test/engine-versions.test.ts\n${table}\n[matrix] ${summary}\n`,
);
if (markdownFile) fs.writeFileSync(markdownFile, `${table}\n\n${summary}\n`);
process.exit(okPairs === pairs.length && code === 0 ? 0 : 1);
