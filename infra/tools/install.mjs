// Installs the outside tools the tests use (browsers, API testers, validators, extra
// PostgreSQL versions, ...). Each tool is one module in this folder exporting
// `name` and `ensure()`; `ensure()` is idempotent, installs into a machine-wide cache when
// the tool is missing, and returns what the caller needs (usually a path). Tests call the
// module they need in their setup; .ci/run calls this script first so install time is
// counted apart from the tests.
//
//   node infra/tools/install.mjs            every tool
//   node infra/tools/install.mjs chromium   only the named ones
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const modules = fs
  .readdirSync(here)
  .filter((f) => f.endsWith('.mjs') && f !== 'install.mjs' && !f.startsWith('_'))
  .sort();

let failed = 0;
for (const file of modules) {
  const tool = await import(pathToFileURL(path.join(here, file)).href);
  if (wanted.length > 0 && !wanted.includes(tool.name)) continue;
  const started = Date.now();
  try {
    const result = await tool.ensure();
    console.log(`[tools] ${tool.name}: ready in ${((Date.now() - started) / 1000).toFixed(1)} s (${result})`);
  } catch (err) {
    failed++;
    console.error(`[tools] ${tool.name}: ${err instanceof Error ? err.message : err}`);
  }
}
process.exit(failed > 0 ? 1 : 0);
