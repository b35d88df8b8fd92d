import type { Consumer } from '@teal/consumer';
import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import { afterAll, expect, test } from 'vitest';
import type { EventInput } from '../services/consumer/src/testing/harness.ts';
import { kafkaBrokers } from './support/env.ts';
import { groupSetup } from './support/group-setup.ts';

// Issue 13, item 4: the group adapter recorded a batch's next offset as the partition's start
// when the batch had only started (apply lanes return then). A batch dropped on revoke left
// that offset behind; when the partition came back with nothing stored in green yet, nothing
// overwrote it, and the refetched records below it were filtered out: skipped silently.
// Here both partitions' first batches are in flight (green lacks the table: they block and
// retry) while a second member joins and leaves; afterwards green must hold every row once.

const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-rebalance-test' });
afterAll(() => kafka.close());

test('a batch in flight while a member joins and leaves is applied once; no record is skipped', async () => {
  const s = await groupSetup(kafka, 'treb');
  const expected = new Map<number, string>();
  const round = async (ids: (p: number) => number[], name: string) => {
    const events: EventInput[] = [];
    for (const p of [0, 1])
      for (const id of ids(p)) {
        events.push(s.event(id, name, p, expected.has(id) ? 'u' : 'c'));
        expected.set(id, name);
      }
    await s.send(events);
  };
  const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
  const blocked = (c: Consumer) =>
    c.status().partitions.filter((p) => p.topic === s.topic && p.blocked).length;
  const stable = async (members: number) => {
    const { groups } = await s.admin.describeGroups([s.groupId]);
    return groups[0]?.state === 'Stable' && groups[0].members.length === members;
  };

  // Offsets 0..9 of each partition; green has no table yet, so both first batches block.
  await round((p) => range(p * 100 + 1, 10), 'v1');
  const a = s.consumer();
  await a.start();
  await waitFor(() => blocked(a) === 2, { what: 'both first batches in flight on a' });

  // b joins (a loses one partition while its batch is in flight), then leaves (a gets it back).
  const b = s.consumer();
  await b.start();
  await waitFor(async () => (await stable(2)) && blocked(b) === 1, {
    timeoutMs: 60_000,
    what: 'b took a partition',
  });
  await b.stop();
  await waitFor(() => stable(1), { timeoutMs: 60_000, what: 'a holds both partitions again' });

  await s.green.query(`CREATE TABLE public.${s.table} (id int PRIMARY KEY, name text)`);
  // Offsets 10..19: the first row of each partition updated, nine new rows each.
  await round((p) => [p * 100 + 1, ...range(p * 100 + 11, 9)], 'v2');
  await waitFor(async () => (await s.stored(0)) === 19n && (await s.stored(1)) === 19n, {
    timeoutMs: 60_000,
    what: 'both partitions applied',
  });
  const want = [...expected].sort(([x], [y]) => x - y).map(([id, name]) => ({ id: String(id), name }));
  expect(await s.rows()).toEqual(want);
  expect(want).toHaveLength(38);
});
