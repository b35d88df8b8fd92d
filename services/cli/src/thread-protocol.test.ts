import { resolveConfig } from '@teal/config';
import { TealError } from '@teal/errors';
import { describe, expect, test } from 'vitest';
import { type CliIo, EXIT, main } from './cli.ts';
import {
  configFingerprint,
  configSource,
  deepFreeze,
  errorFromData,
  errorToData,
  runThreads,
} from './thread-protocol.ts';

describe('thread protocol', () => {
  test('a TealError crosses threads with its code, status, retriable and details', () => {
    const original = new TealError('TEAL_SLOT_MISSING', 'slot gone', {
      status: 409,
      retriable: false,
      details: { slot: 's' },
    });
    const again = errorFromData(structuredClone(errorToData(original)));
    expect(again).toBeInstanceOf(TealError);
    expect(again).toMatchObject({
      code: 'TEAL_SLOT_MISSING',
      status: 409,
      retriable: false,
      details: { slot: 's' },
    });
    expect(again.stack).toBe(original.stack);
  });

  test('another error keeps its name, message and code (pg errors carry their SQLSTATE)', () => {
    const pgError = Object.assign(new Error('database "x" does not exist'), { code: '3D000' });
    const again = errorFromData(structuredClone(errorToData(pgError)));
    expect(again).not.toBeInstanceOf(TealError);
    expect(again).toMatchObject({ message: 'database "x" does not exist', code: '3D000' });
    expect(errorFromData(errorToData('just text')).message).toBe('just text');
  });

  test('a config without functions goes to the worker as it is; one with transforms is loaded again', () => {
    const plain = resolveConfig({ slot: 's' }, { env: {} });
    const source = configSource(plain, '/tmp', {});
    expect(source.kind).toBe('resolved');
    if (source.kind === 'resolved') {
      expect(source.config).toEqual(plain);
      expect(Object.isFrozen(deepFreeze(source.config).kafka)).toBe(true);
    }

    const withDerive = resolveConfig(
      { transforms: { 'public.t': { derive: { d: (row: Record<string, unknown>) => String(row.v) } } } },
      { env: {}, configPath: '/x/teal.config.ts' },
    );
    const reload = configSource(withDerive, '/x', { TEAL_SLOT: 's', UNSET: undefined });
    expect(reload).toEqual({
      kind: 'reload',
      configPath: '/x/teal.config.ts',
      cwd: '/x',
      env: { TEAL_SLOT: 's' },
      fingerprint: configFingerprint(withDerive),
    });
  });

  test('the fingerprint sees a changed transform function', () => {
    const a = resolveConfig({ transforms: { 'public.t': { filter: () => true } } }, { env: {} });
    const b = resolveConfig({ transforms: { 'public.t': { filter: () => false } } }, { env: {} });
    expect(configFingerprint(a)).not.toBe(configFingerprint(b));
    expect(configFingerprint(a)).toBe(
      configFingerprint(resolveConfig({ transforms: { 'public.t': { filter: () => true } } }, { env: {} })),
    );
  });

  test('TEAL_RUN_THREADS: 2 by default, 1 for one thread, anything else is a usage error', async () => {
    expect(runThreads({})).toBe(2);
    expect(runThreads({ TEAL_RUN_THREADS: '2' })).toBe(2);
    expect(runThreads({ TEAL_RUN_THREADS: ' 1 ' })).toBe(1);
    expect(() => runThreads({ TEAL_RUN_THREADS: 'yes' })).toThrow(/TEAL_RUN_THREADS must be 1 .* or 2/);

    let stderr = '';
    const io: CliIo = {
      stdout: { write: () => true } as never,
      stderr: {
        write: (s: string) => {
          stderr += s;
          return true;
        },
      } as never,
      env: { TEAL_RUN_THREADS: '4' },
      cwd: process.cwd(),
      stopSignal: () => new Promise(() => {}),
    };
    expect(await main(['run'], io)).toBe(EXIT.usage);
    expect(stderr).toMatch(/^teal run: TEAL_RUN_THREADS must be 1/);
  });
});
