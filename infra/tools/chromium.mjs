// Debian's chromium, driven headless by playwright-core in test/ui-status-page.test.ts.
// Installed with apt-get (a system package: machine-wide, so a fresh clone finds it);
// playwright's own browser download is not used, it reaches outside the package registries.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const name = 'chromium';
/** Debian's package, and a font so that screenshots show letters, not boxes. */
const PACKAGES = ['chromium', 'fonts-dejavu-core'];
const CANDIDATES = [process.env.TEAL_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'];

/** @returns {Promise<string>} the browser's path */
export async function ensure() {
  const found = await installed();
  if (found) return found;
  if (process.platform !== 'linux' || !fs.existsSync('/usr/bin/apt-get')) {
    throw new Error(
      'chromium is missing and this is not a Debian-like system: install it, or set TEAL_CHROMIUM=/path/to/chromium',
    );
  }
  // Other tools may hold dpkg's lock (another apt-get at the same time): wait for it.
  const apt = ['-o', 'DPkg::Lock::Timeout=600', '-y', '-q'];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const opts = { env, maxBuffer: 32 * 1024 * 1024, timeout: 30 * 60 * 1000 };
  try {
    try {
      await run('apt-get', ['install', ...apt, '--no-install-recommends', ...PACKAGES], opts);
    } catch {
      // An old or missing package list: update once, then install again.
      await run('apt-get', ['update', ...apt], opts);
      await run('apt-get', ['install', ...apt, '--no-install-recommends', ...PACKAGES], opts);
    }
  } catch (err) {
    const detail = err?.stderr ? `\n${String(err.stderr).trim().split('\n').slice(-8).join('\n')}` : '';
    throw new Error(`apt-get install ${PACKAGES.join(' ')} failed${detail}`);
  }
  const after = await installed();
  if (!after) throw new Error('apt-get installed chromium but no chromium binary answers --version');
  return after;
}

async function installed() {
  for (const candidate of CANDIDATES) {
    if (!candidate || !fs.existsSync(candidate)) continue;
    try {
      await run(candidate, ['--version'], { timeout: 30_000 });
      return candidate;
    } catch {}
  }
  return undefined;
}
