import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { dropLeftoverTestSlots } from './support/leftover-slots.ts';
import './support/provided-context.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ENV_SCRIPT = path.join(ROOT, 'infra', 'local', 'env.mjs');

// Brings the local environment (infra/local/env.mjs) up when it is not already, then hands
// its addresses to the tests. The environment is shared between runs and engineers, so it
// is left running at the end; .ci/run stops it.
export default async function setup(project: TestProject): Promise<void> {
  const blueUrl = process.env.TEAL_BLUE_URL;
  const greenUrl = process.env.TEAL_GREEN_URL;
  const kafkaBrokers = process.env.TEAL_KAFKA_BROKERS;
  // Only when every address points elsewhere is the local environment not needed.
  if (!blueUrl || !greenUrl || !kafkaBrokers) {
    const status = spawnSync(process.execPath, [ENV_SCRIPT, 'status'], { cwd: ROOT, encoding: 'utf8' });
    if (status.status !== 0) {
      execFileSync(process.execPath, [ENV_SCRIPT, 'up'], { cwd: ROOT, stdio: 'inherit' });
    }
  }
  const localBlue = 'postgres://postgres@127.0.0.1:5433/app';
  if (!blueUrl) {
    // Only on the local environment's blue: a blue given by address is someone else's.
    const dropped = await dropLeftoverTestSlots(localBlue);
    if (dropped.length > 0)
      console.log(
        `[test setup] dropped ${dropped.length} inactive slot(s) left by interrupted runs: ${dropped.join(', ')}`,
      );
  }
  project.provide('blueUrl', blueUrl ?? localBlue);
  project.provide('greenUrl', greenUrl ?? 'postgres://postgres@127.0.0.1:5434/app');
  project.provide('kafkaBrokers', kafkaBrokers ?? '127.0.0.1:9092');
}
