// schemathesis (property-based tester of an API against its OpenAPI document) for
// test/api-schemathesis.test.ts: a Python venv of its own, from PyPI through pip, under the
// machine-wide tool cache, one folder per version, so a fresh clone on this machine finds it.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { cacheRoot } from './_go.mjs';

const run = promisify(execFile);

export const name = 'schemathesis';
export const version = '4.32.5';

/** The `schemathesis` executable. */
export async function ensure() {
  const venv = path.join(cacheRoot, name, version);
  const exe = path.join(venv, 'bin', 'schemathesis');
  // A venv records its own path in its scripts, so it is built where it lives; the marker,
  // written last, tells a finished install from an interrupted one.
  const done = path.join(venv, '.teal-installed');
  if (fs.existsSync(done) && fs.existsSync(exe)) return exe;
  fs.rmSync(venv, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(venv), { recursive: true });
  try {
    await makeVenv(venv);
    await run(
      path.join(venv, 'bin', 'python'),
      ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', `schemathesis==${version}`],
      { timeout: 20 * 60 * 1000, maxBuffer: 16 * 1024 * 1024 },
    );
    fs.writeFileSync(done, `schemathesis ${version}\n`);
  } catch (err) {
    fs.rmSync(venv, { recursive: true, force: true });
    const detail = err?.stderr ? `\n${String(err.stderr).trim().split('\n').slice(-8).join('\n')}` : '';
    throw new Error(`pip install schemathesis==${version} failed${detail}`);
  }
  return exe;
}

// Debian's python3 makes a venv only with python3-venv (ensurepip); install it once if missing.
async function makeVenv(venv) {
  try {
    await run(findPython(), ['-m', 'venv', venv], { timeout: 5 * 60 * 1000 });
  } catch (err) {
    if (!fs.existsSync('/usr/bin/apt-get')) throw err;
    fs.rmSync(venv, { recursive: true, force: true });
    const apt = ['-o', 'DPkg::Lock::Timeout=600', '-y', '-q', '--no-install-recommends'];
    await run('apt-get', ['install', ...apt, 'python3', 'python3-venv'], { timeout: 10 * 60 * 1000 });
    await run(findPython(), ['-m', 'venv', venv], { timeout: 5 * 60 * 1000 });
  }
}

// The system's Python first: a venv points at its interpreter, which must outlive any
// user's own toolchain (pyenv under a home folder).
function findPython() {
  for (const candidate of ['/usr/bin/python3', '/usr/local/bin/python3']) {
    if (fs.existsSync(candidate)) return candidate;
  }
  return 'python3';
}
