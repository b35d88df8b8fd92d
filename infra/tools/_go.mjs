// Shared by the Go-built tools (promtool, helm, kubeconform): `go install module/cmd@version`
// from the Go module proxy into a machine-wide cache, one folder per tool and version, so a
// fresh clone on this machine finds the binary and builds nothing.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const cacheRoot = process.env.TEAL_TOOLS_CACHE ?? '/var/cache/teal-tools';

/**
 * @param {{ name: string, pkg: string, version: string, tags?: string[] }} tool
 * @returns {Promise<string>} the binary's path
 */
export async function goInstall({ name, pkg, version, tags = [] }) {
  const bin = path.join(cacheRoot, name, version);
  const exe = path.join(bin, name);
  if (fs.existsSync(exe)) return exe;
  const go = await findGo();
  fs.mkdirSync(bin, { recursive: true });
  // Build into a temporary folder and rename, so an interrupted build never leaves a binary
  // that a later ensure() would take for a finished one.
  const tmp = fs.mkdtempSync(path.join(cacheRoot, `.${name}-`));
  try {
    const args = [
      'install',
      '-trimpath',
      '-ldflags=-s -w',
      ...(tags.length ? [`-tags=${tags.join(',')}`] : []),
    ];
    await run(go, [...args, `${pkg}@${version}`], {
      env: { ...process.env, GOBIN: tmp, CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false' },
      maxBuffer: 16 * 1024 * 1024,
      // A cold build of promtool or helm on two busy cores took 20-30 minutes.
      timeout: 60 * 60 * 1000,
    });
    fs.renameSync(path.join(tmp, name), exe);
  } catch (err) {
    const detail = err?.stderr ? `\n${String(err.stderr).trim().split('\n').slice(-8).join('\n')}` : '';
    throw new Error(`go install ${pkg}@${version} failed${detail}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return exe;
}

async function findGo() {
  for (const candidate of [process.env.GO, 'go', '/usr/local/go/bin/go', '/usr/lib/go/bin/go']) {
    if (!candidate) continue;
    try {
      await run(candidate, ['version']);
      return candidate;
    } catch {}
  }
  throw new Error("no Go toolchain found (install Debian's golang-go, or set GO=/path/to/go)");
}
