// Shared by the tools that come as npm packages (node, postgres-versions): a command that
// must succeed, and `npm pack` of a pinned release checked against its pinned integrity,
// so nothing lands in the project's node_modules and a changed tarball is refused.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Runs `cmd` to completion and returns its stdout; throws with its output when it fails. */
export function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
  if (res.status !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')} failed (${res.status ?? res.signal}): ${(res.stderr || res.stdout || res.error?.message || '').trim()}`,
    );
  return res.stdout;
}

/** `npm pack spec` into dir, checked against `integrity` (sha512-...); returns the tarball's path. */
export function npmPack(spec, integrity, dir) {
  const file = run('npm', ['pack', spec, '--silent', '--pack-destination', dir], { cwd: dir })
    .trim()
    .split('\n')
    .pop();
  const tarball = path.join(dir, file);
  const actual = `sha512-${createHash('sha512').update(fs.readFileSync(tarball)).digest('base64')}`;
  if (actual !== integrity) throw new Error(`${spec}: integrity ${actual}, pinned ${integrity}`);
  return tarball;
}
