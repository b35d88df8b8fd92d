import { TealError } from '@teal/errors';

/** One drain or cutover at a time: a second one would race the first's fence and LSN. */
export class Exclusive {
  /** What runs now, if anything. */
  running: string | undefined;

  async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.running) {
      throw new TealError(
        'TEAL_BUSY',
        `a ${this.running} is already running: wait for it to finish, then try again`,
        {
          status: 409,
        },
      );
    }
    this.running = what;
    try {
      return await fn();
    } finally {
      this.running = undefined;
    }
  }
}
