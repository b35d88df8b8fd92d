import type { ChangeEvent } from '@teal/change-event';
import type { KafkaClient } from '@teal/kafka';
import { decodeAll, TopicReader } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { onTestFinished } from 'vitest';

// What tests of a Producer share: reading a topic back whole, and removing the slot and the
// publication once the producer let go of the slot.

/** Every event of `topic` up to its end offsets now, decoded with the writer schemas. */
export async function readAllEvents(
  kafka: KafkaClient,
  prefix: string,
  topic: string,
): Promise<ChangeEvent[]> {
  const reader = new TopicReader(kafka, [topic]);
  await reader.start();
  onTestFinished(() => reader.stop());
  const admin = kafka.admin();
  const ends = await admin.logEndOffsets(topic);
  await admin.close();
  const total = ends.reduce((s, e) => s + Number(e.end), 0);
  await waitFor(() => reader.records.length >= total, { what: `all records of ${topic} read` });
  return (await decodeAll(kafka, prefix, reader.records)).map((d) => d.event);
}

/** Drops `slot` once no walsender holds it, and `publication`. */
export async function dropSlotAndPublication(
  blue: pg.Client,
  slot: string,
  publication: string,
): Promise<void> {
  await waitFor(
    async () =>
      (await blue.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [slot])).rows
        .length === 0,
    { what: `slot ${slot} released` },
  );
  await blue.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [
    slot,
  ]);
  await blue.query(`DROP PUBLICATION IF EXISTS ${publication}`);
}
