import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '@teal/config';
import { Producer } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import { describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';
import { dropSlotAndPublication } from './support/producer-fixture.ts';

// Regression: a stream session spills a big transaction under <tmpdir>/teal-spill-<slot>-*
// and removes the directory when it closes; after a SIGKILL mid-transaction nothing ever
// removed it (gigabytes per crash). The next start of a producer for that slot removes it,
// and leaves another slot's directory alone.
describe('spill directories left by a killed producer', () => {
  test('are removed at the next start of a producer for the same slot', async () => {
    const name = uniqueName('spill_left');
    const slot = `${name}_slot`;
    const dead = join(tmpdir(), `teal-spill-${slot}-Ab12Cd`);
    const otherSlot = join(tmpdir(), `teal-spill-${slot}_b-Xy34Zw`);
    for (const dir of [dead, otherSlot]) {
      mkdirSync(dir);
      writeFileSync(join(dir, '1234.spill'), Buffer.alloc(64 * 1024));
    }
    onTestFinished(() => {
      for (const dir of [dead, otherSlot]) rmSync(dir, { recursive: true, force: true });
    });
    const blue = await pgClient(blueUrl());
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY)`);
    const producer = new Producer(
      resolveConfig(
        {
          tables: [`public.${name}`],
          slot,
          publication: `${name}_pub`,
          kafka: { topicPrefix: `${name}_t`, partitions: 1 },
        },
        {
          env: {
            TEAL_BLUE_URL: blueUrl(),
            TEAL_GREEN_URL: greenUrl(),
            TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
          },
        },
      ),
    );
    onTestFinished(async () => {
      await producer.stop();
      await dropSlotAndPublication(blue, slot, `${name}_pub`);
      await blue.query(`DROP TABLE IF EXISTS ${name}`);
    });
    await producer.start();
    await waitFor(() => producer.status().state === 'streaming', { what: 'streaming' });
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(otherSlot)).toBe(true);
  });
});
