// `npm run demo` and `npm test` must work on a fresh clone: install the npm dependencies
// first when node_modules is missing or older than package-lock.json. Node builtins only.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT as root } from './lib/common.mjs';

const installed = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');

if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs) {
  console.error('[deps] installing npm dependencies (npm ci)');
  const run = (args) =>
    spawnSync('npm', args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  let result = run(['ci', '--no-audit', '--no-fund']);
  if (result.status !== 0) {
    // npm 11 refuses a lockfile that lacks optional platform packages a registry mirror does not serve.
    console.error('[deps] npm ci refused the lockfile; trying npm install');
    result = run(['install', '--no-audit', '--no-fund']);
  }
  if (result.status !== 0) process.exit(result.status ?? 1);
}
