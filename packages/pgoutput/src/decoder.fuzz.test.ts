import { type ErrorCode, TealError } from '@teal/errors';
import { beforeAll, describe, expect, it } from 'vitest';
import { guardAllocations } from '../../../fuzz/alloc-guard.ts';
import { caseAt, type FuzzStats, fuzz } from '../../../fuzz/engine.ts';
import type { Rng } from '../../../fuzz/rng.ts';
import {
  assemblerTarget,
  copyDataTarget,
  type FuzzTarget,
  pgoutputTarget,
  unacceptable,
} from '../../../fuzz/targets.ts';
import { decodePgoutput } from './decoder.ts';
import { decodeCopyData } from './framing.ts';
import { pgo } from './wire-fixtures.ts';

// CI slice of `npm run fuzz` (fuzz/README.md): fixed seed, 50k mutated inputs per decoder,
// 8k mutated message sequences through the assembler. Only values or TEAL_* TealErrors may
// come out, no input may take over 100 ms, no Buffer allocation may exceed 16 MB.
const SEED = 20_240_229;
// The returned function removes the guard after the file.
beforeAll(() => guardAllocations(16 * 1024 * 1024));

function expectClean(stats: FuzzStats): void {
  const shown = stats.failures.map((f) => `#${f.index} ${f.reason}\n${f.stack ?? ''}`);
  expect(shown).toEqual([]);
  expect(stats.slow).toEqual([]);
  // The mutations must reach both sides: some inputs still decode, most are rejected.
  expect(stats.accepted).toBeGreaterThan(stats.inputs * 0.02);
  expect(Object.values(stats.rejected).reduce((a, b) => a + b, 0)).toBeGreaterThan(stats.inputs * 0.5);
}

describe('fuzzing the pgoutput decoders (seeded, reproducible)', () => {
  it('decodePgoutput, proto v1-v4, in and out of stream blocks: 50k inputs', async () => {
    expectClean(await fuzz(pgoutputTarget, { seed: SEED, inputs: 50_000 }));
  }, 30_000);

  it('decodeCopyData (and the XLogData payload): 50k inputs', async () => {
    expectClean(await fuzz(copyDataTarget, { seed: SEED, inputs: 50_000 }));
  }, 30_000);

  it('TransactionAssembler with MemorySpillStore: 8k mutated sequences', async () => {
    expectClean(await fuzz(assemblerTarget, { seed: SEED, inputs: 8_000 }));
  }, 60_000);

  it('input i is the same bytes on every run', () => {
    for (const t of [pgoutputTarget, copyDataTarget, assemblerTarget]) {
      expect(caseAt(t, SEED, 123)).toEqual(caseAt(t, SEED, 123));
      expect(caseAt(t, SEED, 123)).not.toEqual(caseAt(t, SEED, 124));
    }
  });
});

describe('corrupt length fields never size an allocation', () => {
  const LENGTHS = [0x7fffffff, -0x80000000, -1, 0xffffffff];
  const samples = [
    pgo.insert(16_384, ['1', 'x'.repeat(100)]),
    pgo.insert(16_384, [{ b: Buffer.alloc(64, 7) }]),
    pgo.message(true, 1n, 'p', Buffer.from('content')),
    pgo.truncate([1, 2, 3], 0),
    pgo.relation(16_384, 'public', 't', 'd', [{ name: 'a', oid: 23, key: true }]),
  ];
  it.each(samples.map((s, i) => [i, s]))(
    'sample %i: every 4-byte field set to 2^31-1, -2^31, -1, 2^32-1',
    (_, s) => {
      for (let at = 1; at + 4 <= s.length; at++) {
        for (const n of LENGTHS) {
          const b = Buffer.from(s);
          if (n > 0x7fffffff) b.writeUInt32BE(n, at);
          else b.writeInt32BE(n, at);
          for (const protoVersion of [1, 4]) {
            try {
              decodePgoutput(b, { protoVersion, inStreamBlock: false });
            } catch (err) {
              expect(unacceptable(err)).toBeUndefined();
            }
          }
        }
      }
    },
  );

  it('CopyData with a 2^31 length field inside its payload is rejected without allocating it', () => {
    const payload = pgo.message(true, 1n, 'p', Buffer.from('x'));
    payload.writeInt32BE(0x7fffffff, payload.length - 5);
    const frame = Buffer.concat([Buffer.from([0x77]), Buffer.alloc(24), payload]);
    const decoded = decodeCopyData(frame);
    expect(decoded.kind).toBe('w');
    expect(() =>
      decodePgoutput((decoded as { payload: Buffer }).payload, { protoVersion: 4, inStreamBlock: false }),
    ).toThrow(TealError);
  });
});

describe('the harness itself', () => {
  it('flags anything but a TealError with a catalog code as a crash, and inputs over the time bound as slow', async () => {
    const target: FuzzTarget = {
      name: 'harness-check',
      generate: (rng: Rng) => ({ data: [Buffer.from([rng.int(4)])], params: {} }),
      run(c) {
        const k = c.data[0]![0];
        if (k === 0) throw new TypeError('boom');
        if (k === 1) throw new TealError('NOT_TEAL' as ErrorCode, 'wrong code');
        if (k === 2) throw new TealError('TEAL_PGOUTPUT_MALFORMED', 'typed');
        const until = performance.now() + 3;
        while (performance.now() < until) {
          // busy: slower than the 2 ms bound below
        }
      },
    };
    const stats = await fuzz(target, { seed: 1, inputs: 40, slowMs: 2, maxFailures: 100 });
    expect(stats.failures.some((f) => f.reason === 'TypeError: boom')).toBe(true);
    expect(stats.failures.some((f) => f.reason.includes('non-TEAL_ code "NOT_TEAL"'))).toBe(true);
    expect(stats.rejected.TEAL_PGOUTPUT_MALFORMED).toBeGreaterThan(0);
    expect(stats.slow.length).toBeGreaterThanOrEqual(stats.accepted);
    expect(() => Buffer.alloc(32 * 1024 * 1024)).toThrow(/over the fuzzing limit/);
  });
});
