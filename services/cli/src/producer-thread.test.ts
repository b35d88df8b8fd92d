import { once } from 'node:events';
import { type ResolvedConfig, resolveConfig } from '@teal/config';
import { TealError } from '@teal/errors';
import { rootLogger } from '@teal/runtime';
import { describe, expect, test } from 'vitest';
import { ProducerThread } from './producer-thread.ts';

// The main-thread side of `teal run`'s producer thread against a stand-in worker (no
// database, no Kafka): what reaches runPipeline when the thread starts, fails, dies or hangs.

const ENTRY = new URL('./fixtures/stand-in-producer-worker.mjs', import.meta.url);
const quiet = rootLogger().child({}, { level: 'silent' });

function thread(mode: string, stopTimeoutMs = 5_000): ProducerThread {
  const config: ResolvedConfig = resolveConfig({ slot: mode }, { env: {} });
  return new ProducerThread(config, {
    cwd: process.cwd(),
    env: {},
    logger: quiet,
    entry: ENTRY,
    stopTimeoutMs,
  });
}

describe('ProducerThread', () => {
  test('start resolves when the worker started; status() is its latest copy, bigint included', async () => {
    const t = thread('ok');
    expect(t.status()).toMatchObject({ state: 'starting', slot: 'ok' });
    await t.start();
    expect(t.status()).toEqual({ state: 'streaming', slot: 'ok', n: 1n });
    expect(await t.metrics()).toEqual([{ name: 'teal_x', values: [] }]);
    await t.stop();
    expect(t.status()).toMatchObject({ state: 'stopped' });
    // Gone: the last copy, at once.
    expect(await t.metrics()).toEqual([{ name: 'teal_x', values: [] }]);
  });

  test('a start that failed in the worker rejects with its TealError (code and status kept)', async () => {
    const err = await thread('start_fails')
      .start()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TealError);
    expect(err).toMatchObject({ code: 'TEAL_CONFIG_INVALID', status: 400, message: 'bad config' });
  });

  test("the producer's error after start becomes an 'error' event; status says failed", async () => {
    const t = thread('fails');
    await t.start();
    const [err] = await once(t, 'error');
    expect(err).toMatchObject({ code: 'TEAL_SLOT_MISSING', message: 'slot gone' });
    expect(t.status()).toMatchObject({ state: 'failed' });
    await t.stop();
  });

  test("an uncaught exception in the thread is an 'error' event", async () => {
    const t = thread('crash');
    await t.start();
    const [err] = await once(t, 'error');
    expect((err as Error).message).toContain('boom in the producer thread');
    expect(t.status()).toMatchObject({ state: 'failed' });
    await t.stop();
  });

  test("a thread that exits unasked, even with code 0, is an 'error' event", async () => {
    const t = thread('exit_quietly');
    await t.start();
    const [err] = await once(t, 'error');
    expect(err).toMatchObject({ code: 'TEAL_PRODUCER_THREAD_EXITED' });
    await t.stop();
  });

  test('stop() terminates a thread that does not stop in time', async () => {
    const t = thread('hang_on_stop', 300);
    await t.start();
    let errors = 0;
    t.on('error', () => errors++);
    const started = Date.now();
    await t.stop();
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(errors).toBe(0);
  });
});
