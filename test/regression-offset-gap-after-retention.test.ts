import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import { afterAll, expect, test } from 'vitest';
import { kafkaBrokers } from './support/env.ts';
import { groupSetup } from './support/group-setup.ts';

// Issue 13, item 4: records deleted from Kafka (retention) while the consumer was stopped were
// skipped silently: the consumer's seek to green's offset + 1 was out of range, kafkajs reset it
// to the earliest offset, and the records after the gap were applied as if nothing was missing.
// The consumer must stop that partition (and only that one) with a message that says what
// happened and how to recover, apply nothing past the gap, and resume after the operator's override.

const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-offset-gap-test' });
afterAll(() => kafka.close());

test('a gap left by retention blocks the partition with the recovery; nothing past it is applied', async () => {
  const s = await groupSetup(kafka, 'tgap');
  await s.green.query(`CREATE TABLE public.${s.table} (id int PRIMARY KEY, name text)`);
  const row = (id: number, partition: number) => s.event(id, `n${id}`, partition);
  const ids = async () => (await s.rows()).map((r) => Number(r.id));
  const blockedReason = (c: ReturnType<typeof s.consumer>) =>
    c.status().partitions.find((p) => p.topic === s.topic && p.partition === 0)?.blocked?.reason;

  // Partition 0: offsets 0..2 applied, then the consumer stops.
  await s.send([row(1, 0), row(2, 0), row(3, 0), row(101, 1)]);
  const first = s.consumer();
  await first.start();
  await waitFor(async () => (await s.stored(0)) === 2n && (await s.stored(1)) === 0n, {
    what: 'first records applied',
  });
  await first.stop();

  // While it is stopped, offsets 3..6 arrive and retention removes 3 and 4 (deleteRecords does
  // deterministically what retention.ms does eventually).
  await s.send([row(4, 0), row(5, 0), row(6, 0), row(7, 0), row(102, 1)]);
  await s.admin.fetchTopicMetadata({ topics: [s.topic] }); // deleteTopicRecords needs the leaders
  await s.admin.deleteTopicRecords({ topic: s.topic, partitions: [{ partition: 0, offset: '5' }] });
  const low = (await s.admin.fetchTopicOffsets(s.topic)).find((o) => o.partition === 0)!.low;
  expect(low).toBe('5');

  const second = s.consumer();
  await second.start();
  // The other partition keeps applying; partition 0 stops at the gap with the reason.
  await waitFor(async () => (await s.stored(1)) === 1n, { what: 'partition 1 applies past the restart' });
  const reason = await waitFor(() => blockedReason(second), { what: 'partition 0 blocked at the gap' });
  expect(reason).toContain(`${s.topic}[0]: green applied through offset 2`);
  expect(reason).toContain('the first offset Kafka still holds is 5');
  expect(reason).toContain('records 3..4 were deleted (retention)');
  expect(reason).toContain('re-snapshotting the table');
  expect(await s.stored(0)).toBe(2n);
  expect(await ids()).toEqual([1, 2, 3, 101, 102]);

  // The operator accepts the loss explicitly: the partition resumes after the gap.
  await s.green.query(
    'UPDATE teal.applied_position SET kafka_offset = 4 WHERE topic = $1 AND partition = 0',
    [s.topic],
  );
  await waitFor(async () => (await s.stored(0)) === 6n, { what: 'partition 0 resumes after the override' });
  expect(await ids()).toEqual([1, 2, 3, 6, 7, 101, 102]);
  await waitFor(() => !blockedReason(second), { what: 'partition 0 unblocked' });
});
