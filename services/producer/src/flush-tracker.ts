import type { Lsn } from '@teal/change-event';

// Decides how far the slot may be confirmed. Records go to Kafka in numbered batches, sent
// in order and possibly several at a time; a batch is "acked" when Kafka acknowledged all of
// it (acks = all). A commit may be confirmed only when every batch up to the one holding its
// last record is acked, which covers all its events and all earlier ones. Between
// transactions, a keepalive's WAL end or a heartbeat's LSN is confirmable the same way once
// everything before it is acked. Confirmed LSNs only move forward.

interface Marker {
  /** Highest batch that must be acked first (0: none). */
  readonly batch: number;
  readonly lsn?: Lsn;
  readonly callback?: () => void;
}

export class FlushTracker {
  private fillingBatch = 1;
  private lastRecordBatch = 0;
  private ackedThrough = 0;
  private readonly ackedAhead = new Set<number>();
  private readonly markers: Marker[] = [];
  private confirmedLsn: Lsn;
  private inTransaction = false;
  private failed = false;

  constructor(startLsn: Lsn) {
    this.confirmedLsn = startLsn;
  }

  get confirmed(): Lsn {
    return this.confirmedLsn;
  }

  /** The batch the next record goes into. */
  get currentBatch(): number {
    return this.fillingBatch;
  }

  /** True when nothing is waiting for Kafka and no transaction is open. */
  get idle(): boolean {
    return !this.inTransaction && this.markers.length === 0 && this.ackedThrough >= this.lastRecordBatch;
  }

  recordAdded(): void {
    this.lastRecordBatch = this.fillingBatch;
  }

  /** The filling batch is handed to Kafka; later records go into the next one. Returns its id. */
  seal(): number {
    const id = this.fillingBatch;
    this.fillingBatch++;
    return id;
  }

  begin(): void {
    this.inTransaction = true;
  }

  /** The transaction ended at `endLsn`; returns the newly confirmable LSN, if any. */
  commit(endLsn: Lsn): Lsn | undefined {
    this.inTransaction = false;
    return this.mark({ batch: this.lastRecordBatch, lsn: endLsn });
  }

  /** A position with no data of its own (keepalive WAL end, heartbeat): confirmable between transactions. */
  between(lsn: Lsn): Lsn | undefined {
    if (this.inTransaction) return undefined;
    return this.mark({ batch: this.lastRecordBatch, lsn });
  }

  /** Runs `callback` once every record added so far is acked. */
  afterAck(callback: () => void): void {
    this.mark({ batch: this.lastRecordBatch, callback });
  }

  /** Kafka acknowledged batch `id`; returns the newly confirmable LSN, if any. */
  ack(id: number): Lsn | undefined {
    if (this.failed) return undefined;
    if (id === this.ackedThrough + 1) {
      this.ackedThrough = id;
      while (this.ackedAhead.delete(this.ackedThrough + 1)) this.ackedThrough++;
    } else if (id > this.ackedThrough) {
      this.ackedAhead.add(id);
    }
    return this.release();
  }

  /** A send failed: nothing after the last confirmed LSN may be confirmed by this tracker again. */
  fail(): void {
    this.failed = true;
    this.markers.length = 0;
  }

  private mark(marker: Marker): Lsn | undefined {
    if (this.failed) return undefined;
    this.markers.push(marker);
    return this.release();
  }

  private release(): Lsn | undefined {
    const before = this.confirmedLsn;
    while (this.markers.length > 0 && this.markers[0].batch <= this.ackedThrough) {
      const marker = this.markers.shift()!;
      if (marker.lsn !== undefined && marker.lsn > this.confirmedLsn) this.confirmedLsn = marker.lsn;
      marker.callback?.();
    }
    return this.confirmedLsn > before ? this.confirmedLsn : undefined;
  }
}
