// Where the changes of a streamed (in-progress) transaction wait for its Stream Commit.
// Items are raw pgoutput message bytes, so memory holds no JS objects per row. read()
// yields the items of a top-level xid in append order, leaving out those of
// sub-transactions removed by discardSub (a Stream Abort with subxid != xid).
// Synchronous on purpose: a file read of a 64 kB block from the page cache costs less than
// a promise per row would, and the assembler then hands out a replayed transaction as a
// plain iterable the stream reader pauses on (backpressure) between rows.
export interface SpillStore {
  append(xid: number, subxid: number, item: Buffer): void;
  read(xid: number): Iterable<{ subxid: number; item: Buffer }>;
  discard(xid: number): void;
  discardSub(xid: number, subxid: number): void;
}

/** For unit tests and small transactions: everything in memory. */
export class MemorySpillStore implements SpillStore {
  private readonly txns = new Map<number, { subxid: number; item: Buffer }[]>();

  append(xid: number, subxid: number, item: Buffer): void {
    const list = this.txns.get(xid) ?? [];
    this.txns.set(xid, list);
    list.push({ subxid, item: Buffer.from(item) });
  }

  *read(xid: number): Iterable<{ subxid: number; item: Buffer }> {
    for (const entry of this.txns.get(xid) ?? []) yield entry;
  }

  discard(xid: number): void {
    this.txns.delete(xid);
  }

  discardSub(xid: number, subxid: number): void {
    const list = this.txns.get(xid);
    if (list)
      this.txns.set(
        xid,
        list.filter((e) => e.subxid !== subxid),
      );
  }

  /** Top-level xids currently held. */
  get xids(): number[] {
    return [...this.txns.keys()];
  }
}
