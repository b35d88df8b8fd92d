// `npm run demo` and `npm test` must work on a fresh clone, also on a machine whose own `node`
// is older than package.json's engines (this machine's Debian ships the end-of-life Node 20).
// Node builtins only, so that old Node runs it. The scripts call it as
//   e=$(node infra/local/ensure-deps.mjs) && eval "$e" && <the rest of the script>
// Under an unsupported Node it installs the pinned LTS (infra/tools/node.mjs) and prints the
// one line that puts it first on PATH, so the rest of the script (npm, vitest, tsx) runs
// under it in the same shell: no wrapper process between npm and teal, so a Ctrl-C reaches
// teal once, as it would without this script. Then it installs the npm dependencies (npm ci)
// when node_modules is missing or older than package-lock.json. Its stdout is shell code
// only; what it says goes to stderr.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path, { join } from 'node:path';
import { ROOT as root } from './lib/common.mjs';

const say = (msg) => process.stderr.write(`[deps] ${msg}\n`);

/** Whether `version` (v22.12.0) is in `range`, written as `^x.y.z || >=x.y.z` clauses (all engines uses). */
function satisfies(version, range) {
  const v = version.replace(/^v/, '').split('.').map(Number);
  return range.split('||').some((clause) => {
    const m = /^\s*(\^|>=)(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$/.exec(clause);
    if (!m)
      throw new Error(`package.json engines.node: cannot read "${clause.trim()}" (write ^x.y.z or >=x.y.z)`);
    const min = [m[2], m[3] ?? 0, m[4] ?? 0].map(Number);
    if (m[1] === '^' && v[0] !== min[0]) return false;
    for (let i = 0; i < 3; i++) if (v[i] !== min[i]) return v[i] > min[i];
    return true;
  });
}

const range = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).engines.node;
let env = process.env;
if (!satisfies(process.version, range)) {
  const tool = await import('../tools/node.mjs');
  say(`this node is ${process.version}; teal needs Node ${range} (package.json engines)`);
  let bin;
  try {
    bin = await tool.ensure();
  } catch (err) {
    say(
      `could not install Node ${tool.NODE_VERSION} from the npm registry: ${err instanceof Error ? err.message : err}`,
    );
    say(`install Node ${range} yourself (e.g. with nvm) and run this again`);
    process.exit(1);
  }
  say(
    `running under Node ${tool.NODE_VERSION} from ${bin} (in your shell: eval "$(node infra/tools/node.mjs --export)")`,
  );
  env = { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` };
  process.stdout.write(`export PATH='${bin}':"$PATH"\n`);
}

const installed = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');
if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs) {
  say('installing npm dependencies (npm ci)');
  // stdout to stderr: this script's stdout is the shell code the caller evaluates.
  const result = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, env, stdio: [0, 2, 2] });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
