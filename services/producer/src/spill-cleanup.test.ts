import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootLogger } from '@teal/runtime';
import { afterEach, describe, expect, it } from 'vitest';
import { removeDeadSpillDirs } from './spill-cleanup.ts';

describe('removeDeadSpillDirs', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("removes this slot's spill directories and counts their bytes, and only those", () => {
    dir = mkdtempSync(join(tmpdir(), 'teal-spill-cleanup-test-'));
    const make = (name: string, bytes: number) => {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, '7.spill'), Buffer.alloc(bytes));
    };
    make('teal-spill-s1-aB3dE9', 1000);
    make('teal-spill-s1-Zz0000', 24);
    make('teal-spill-s1_b-aB3dE9', 5); // another slot whose name starts the same
    make('teal-spill-s10-aB3dE9', 5);
    writeFileSync(join(dir, 'teal-spill-s1-file00'), 'not a directory');
    const removed = removeDeadSpillDirs('s1', rootLogger(), dir);
    expect(removed).toEqual({ directories: 2, bytes: 1024 });
    expect(existsSync(join(dir, 'teal-spill-s1-aB3dE9'))).toBe(false);
    expect(existsSync(join(dir, 'teal-spill-s1-Zz0000'))).toBe(false);
    expect(existsSync(join(dir, 'teal-spill-s1_b-aB3dE9'))).toBe(true);
    expect(existsSync(join(dir, 'teal-spill-s10-aB3dE9'))).toBe(true);
    expect(existsSync(join(dir, 'teal-spill-s1-file00'))).toBe(true);
  });
});
