import { beforeAll, describe, expect, it } from 'vitest';
import { guardAllocations } from '../../../fuzz/alloc-guard.ts';
import { fuzz } from '../../../fuzz/engine.ts';
import { Rng } from '../../../fuzz/rng.ts';
import { avroFixture, avroTarget } from '../../../fuzz/targets.ts';
import { decodeEvent, decodeKey } from './codec.ts';

// CI slice of `npm run fuzz -- --target avro`: 50k mutated single-object encodings of real
// events and keys (TableCodec over a table with many types), fixed seed. Only values or
// TEAL_* TealErrors may come out; no input over 100 ms; no Buffer allocation over 16 MB.
const SEED = 20_240_229;
// The returned function removes the guard after the file.
beforeAll(() => guardAllocations(16 * 1024 * 1024));

describe('fuzzing the Avro decoders (seeded, reproducible)', () => {
  it('the unmutated corpus decodes (the fuzzer starts from valid encodings)', () => {
    const { cache, events, keys } = avroFixture(new Rng(SEED, 0xa7a0), 50);
    for (const e of events) expect(decodeEvent(e, cache).event.schema).toBe('public');
    for (const k of keys) expect(Object.keys(decodeKey(k, cache).key).length).toBeGreaterThan(0);
  });

  it('decodeEvent / decodeKey: 50k inputs', async () => {
    const stats = await fuzz(avroTarget(SEED), { seed: SEED, inputs: 50_000 });
    expect(stats.failures.map((f) => `#${f.index} ${f.reason}\n${f.stack ?? ''}`)).toEqual([]);
    expect(stats.slow).toEqual([]);
    expect(stats.accepted).toBeGreaterThan(1000);
    expect(stats.rejected.TEAL_AVRO_UNDECODABLE).toBeGreaterThan(10_000);
  }, 60_000);
});
