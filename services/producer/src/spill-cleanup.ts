import { readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '@teal/runtime';

// A stream session spills large transactions under mkdtemp(`<tmpdir>/teal-spill-<slot>-`)
// and removes the directory when it closes; a SIGKILL leaves it behind (gigabytes for a big
// streamed transaction). Only one walsender streams a slot at a time, so when a producer
// starts for a slot that no one streams, every such directory of that slot is dead.

/** `teal-spill-<slot>-` + mkdtemp's six characters; slot names hold no '-', so no other slot matches. */
function spillDirPattern(slot: string): RegExp {
  return new RegExp(`^teal-spill-${slot.replace(/[^a-z0-9_]/gi, '\\$&')}-[A-Za-z0-9]{6}$`);
}

function bytesUnder(path: string): number {
  let total = 0;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) total += bytesUnder(child);
    else if (entry.isFile()) total += statSync(child).size;
  }
  return total;
}

/** Removes the spill directories `slot`'s earlier producers left; returns what was removed. */
export function removeDeadSpillDirs(
  slot: string,
  log: Logger,
  dir = tmpdir(),
): { directories: number; bytes: number } {
  const pattern = spillDirPattern(slot);
  let directories = 0;
  let bytes = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || !pattern.test(entry.name)) continue;
    const path = join(dir, entry.name);
    try {
      bytes += bytesUnder(path);
      rmSync(path, { recursive: true, force: true });
      directories++;
    } catch (err) {
      log.warn({ err, path }, 'could not remove a spill directory left by an earlier producer');
    }
  }
  if (directories > 0)
    log.info(
      { slot, directories, bytes },
      'removed spill directories left by an earlier producer of this slot',
    );
  return { directories, bytes };
}
