import { closeSync, mkdirSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { TealError } from '@teal/errors';
import type { SpillStore } from './spill-store.ts';

// The one file of this package that does I/O (synchronous file writes and reads, see
// spill-store.ts for why synchronous); everything else in @teal/pgoutput is pure.

interface SpillFile {
  readonly path: string;
  onDisk: number;
  readonly fd: number;
  /** Appends are buffered and written in blocks: one syscall per ~64 kB, not per row. */
  pending: Buffer[];
  pendingBytes: number;
  readonly abortedSubxids: Set<number>;
}

const RECORD_HEADER = 8; // Uint32 length of item, Uint32 subxid
const FLUSH_AT = 64 * 1024;
const READ_BLOCK = 256 * 1024;

// One append-only file per top-level xid under `directory`, records
// [Uint32BE item length][Uint32BE subxid][item]. A sub-transaction abort cannot cut records
// out of an append-only file, so it is remembered and its records are skipped at read time.
// Files are removed on discard (commit replayed, or abort). Memory stays at one write block
// plus one read block per open transaction, whatever the transaction's size.
export class FileSpillStore implements SpillStore {
  private readonly files = new Map<number, SpillFile>();
  /** Bytes currently held on disk (and in write buffers) across all transactions. */
  bytesHeld = 0;
  /** Bytes ever written, for metrics. */
  bytesWrittenTotal = 0;

  constructor(readonly directory: string) {
    mkdirSync(directory, { recursive: true });
  }

  append(xid: number, subxid: number, item: Buffer): void {
    const file = this.open(xid);
    const header = Buffer.allocUnsafe(RECORD_HEADER);
    header.writeUInt32BE(item.length, 0);
    header.writeUInt32BE(subxid >>> 0, 4);
    file.pending.push(header, Buffer.from(item));
    file.pendingBytes += RECORD_HEADER + item.length;
    this.bytesHeld += RECORD_HEADER + item.length;
    this.bytesWrittenTotal += RECORD_HEADER + item.length;
    if (file.pendingBytes >= FLUSH_AT) this.flush(file);
  }

  *read(xid: number): Iterable<{ subxid: number; item: Buffer }> {
    const file = this.files.get(xid);
    if (!file) return;
    this.flush(file);
    let block = Buffer.allocUnsafe(READ_BLOCK);
    let filePos = 0;
    let start = 0;
    let end = 0;
    for (;;) {
      // Complete records in [start, end) are handed out; a partial one is moved to the
      // front and the block refilled (grown when one record is bigger than a block).
      if (end - start >= RECORD_HEADER) {
        const length = block.readUInt32BE(start);
        const subxid = block.readUInt32BE(start + 4);
        if (end - start >= RECORD_HEADER + length) {
          const item = Buffer.from(block.subarray(start + RECORD_HEADER, start + RECORD_HEADER + length));
          start += RECORD_HEADER + length;
          if (!file.abortedSubxids.has(subxid)) yield { subxid, item };
          continue;
        }
        if (RECORD_HEADER + length > block.length) {
          const bigger = Buffer.allocUnsafe(RECORD_HEADER + length);
          block.copy(bigger, 0, start, end);
          block = bigger;
          end -= start;
          start = 0;
        }
      }
      if (start > 0) {
        block.copy(block, 0, start, end);
        end -= start;
        start = 0;
      }
      const n = readSync(file.fd, block, end, block.length - end, filePos);
      if (n === 0) {
        if (end !== start) {
          throw new TealError('TEAL_SPILL_CORRUPT', `spill file ${file.path} ends inside a record`);
        }
        return;
      }
      filePos += n;
      end += n;
    }
  }

  discard(xid: number): void {
    const file = this.files.get(xid);
    if (!file) return;
    this.files.delete(xid);
    closeSync(file.fd);
    rmSync(file.path, { force: true });
    this.bytesHeld -= file.pendingBytes + file.onDisk;
  }

  discardSub(xid: number, subxid: number): void {
    this.files.get(xid)?.abortedSubxids.add(subxid);
  }

  /** Removes every file (shutdown, or a restart that will receive the transactions again). */
  discardAll(): void {
    for (const xid of [...this.files.keys()]) this.discard(xid);
  }

  private open(xid: number): SpillFile {
    let file = this.files.get(xid);
    if (!file) {
      const path = join(this.directory, `xid-${xid}.spill`);
      // 'w+' truncates a leftover of a previous run: after a restart the server streams the
      // transaction again from its first segment.
      file = {
        path,
        onDisk: 0,
        fd: openSync(path, 'w+'),
        pending: [],
        pendingBytes: 0,
        abortedSubxids: new Set(),
      };
      this.files.set(xid, file);
    }
    return file;
  }

  private flush(file: SpillFile): void {
    if (file.pendingBytes === 0) return;
    const block = Buffer.concat(file.pending, file.pendingBytes);
    let off = 0;
    while (off < block.length) off += writeSync(file.fd, block, off, block.length - off);
    file.onDisk += file.pendingBytes;
    file.pending = [];
    file.pendingBytes = 0;
  }
}
