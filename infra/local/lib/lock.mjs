// One env command at a time (up, down, reset) across processes.
import fs from 'node:fs';
import path from 'node:path';
import { delay, log, pidAlive, RUN_DIR, readPid } from './common.mjs';

const LOCK_FILE = path.join(RUN_DIR, 'env.lock');

/**
 * Several test runs may call `up` at once (globalSetup does when `status` is unhappy); two
 * brokers racing would leave the pid file naming the one that lost. So up/down/reset take
 * an exclusive lock file holding the owner's pid; a lock whose owner is gone is taken over.
 */
export async function withLock(fn) {
  fs.mkdirSync(RUN_DIR, { recursive: true });
  const deadline = Date.now() + 3 * 60_000;
  let told = false;
  for (;;) {
    try {
      fs.writeFileSync(LOCK_FILE, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      const owner = readPid(LOCK_FILE);
      if (owner === undefined || !pidAlive(owner)) {
        fs.rmSync(LOCK_FILE, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`another env command (pid ${owner}) holds ${LOCK_FILE}`);
      if (!told) log(`waiting for another env command (pid ${owner}) to finish`);
      told = true;
      await delay(200);
    }
  }
  try {
    return await fn();
  } finally {
    if (readPid(LOCK_FILE) === process.pid) fs.rmSync(LOCK_FILE, { force: true });
  }
}
