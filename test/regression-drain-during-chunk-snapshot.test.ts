import { TealError } from '@teal/errors';
import { waitFor } from '@teal/runtime';
import { describe, expect, onTestFinished, test } from 'vitest';
import { controlConfig, controlPipeline, tableOnBoth } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, pgClient, uniqueName } from './support/env.ts';

// Issue 13, item 5: drain said `drained: true` while a table's snapshot was still being
// copied by chunks (teal.snapshot_progress not done), so green lacked the rows the snapshot
// had not shipped yet. Here the initial snapshot breaks off and its resume by chunks is held
// inside its first chunk: drain must wait for it and, past its timeout, name the table.

describe('drain while a chunked snapshot is in progress', () => {
  test('does not report drained while a table snapshot is not done; drains once it is', async () => {
    const name = uniqueName('rg_drain_chunk');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    await tableOnBoth(blue, green, name, 'id int PRIMARY KEY, v text');
    await blue.query(`INSERT INTO ${name} SELECT g, 'v' || g FROM generate_series(1, 30) g`);

    let phase: 'initial' | 'chunked' = 'initial';
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let chunkHeld = false;
    onTestFinished(() => release());
    const config = controlConfig(name, blueUrl(), [`public.${name}`], {
      snapshot: { chunkRows: 5, via: 'kafka' },
    });
    const { control } = await controlPipeline(config, {
      waitForStreaming: false,
      producerDeps: {
        afterChunkRead: async () => {
          if (phase === 'initial') {
            phase = 'chunked';
            throw new Error('simulated: the initial snapshot breaks off after its first chunk');
          }
          chunkHeld = true;
          await held;
        },
      },
    });
    await waitFor(() => chunkHeld, { what: 'the resumed snapshot holds its first chunk', timeoutMs: 60_000 });

    const err = await control.drain({ timeoutMs: 5_000, fence: false }).catch((e: unknown) => e);
    expect(err, 'drain must not say drained while green lacks the snapshot rows').toBeInstanceOf(TealError);
    const e = err as TealError;
    expect(e.code).toBe('TEAL_DRAIN_TIMEOUT');
    expect(e.status).toBe(504);
    expect(e.message).toMatch(
      new RegExp(`snapshot of 1 table\\(s\\) is not done, so green lacks rows of public\\.${name} `),
    );
    expect(e.details?.snapshotsPending).toEqual([expect.objectContaining({ table: `public.${name}` })]);

    release();
    const drained = await control.drain({ timeoutMs: 60_000, fence: false });
    expect(drained.drained).toBe(true);
    const { rows } = await green.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${name}`);
    expect(rows[0].n).toBe('30');
  });
});
