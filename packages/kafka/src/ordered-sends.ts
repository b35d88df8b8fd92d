import { TealError } from '@teal/errors';

/**
 * Runs sends one at a time, in call order, whatever the client does with concurrent
 * requests: kafkajs reorders concurrent sendBatch calls (each awaits metadata before it
 * queues its request) and platformatic would give two in-flight batches of a partition the
 * same sequence number. Either would put later positions before earlier ones in a
 * partition, which the consumer then skips as replays. Once a send fails, every send
 * queued behind it is rejected unsent, so no later record lands before the ones that must
 * be sent again; sends queued after the failure was reported go through.
 */
export class OrderedSends {
  private tail: Promise<void> = Promise.resolve();
  private generation = 0;

  /** Queues `send`; `onFailure` runs once per failed send, before the queued ones are rejected. */
  run(send: () => Promise<void>, onFailure?: () => void): Promise<void> {
    const generation = this.generation;
    const result = this.tail.then(async () => {
      if (generation !== this.generation) {
        throw new TealError('TEAL_KAFKA_SEND_ABORTED', 'not sent: an earlier send failed (order is kept)', {
          retriable: true,
        });
      }
      try {
        await send();
      } catch (err) {
        if (generation === this.generation) {
          this.generation++;
          onFailure?.();
        }
        throw err;
      }
    });
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Resolves when every queued send has settled (sent or rejected). */
  settled(): Promise<void> {
    return this.tail;
  }
}
