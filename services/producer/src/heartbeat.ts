import { emitHeartbeat } from '@teal/postgres';
import type pg from 'pg';

// On an idle database the slot would never advance (no commits to confirm), and blue would
// keep WAL forever. A non-transactional logical message every heartbeatMs gives the stream
// a position between transactions that the FlushTracker may confirm.

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  lastError: unknown;

  constructor(
    private readonly blue: pg.Pool,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.beat(), this.intervalMs);
    this.timer.unref();
  }

  async beat(): Promise<void> {
    try {
      await emitHeartbeat(this.blue);
      this.lastError = undefined;
    } catch (err) {
      // Blue unreachable: the stream notices too; the next beat tries again.
      this.lastError = err;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
