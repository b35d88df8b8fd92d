import { resolveConfig } from '@teal/config';
import { TealError } from '@teal/errors';
import { KafkaClient } from '@teal/kafka';
import { Producer } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import { describe, expect, onTestFinished, test } from 'vitest';
import { type ScratchPostgres, startScratchPostgres } from '../soak/scratch-postgres.ts';
import { blueUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// Regression: the start-over advice of TEAL_SLOT_MISSING told the operator to delete the
// control row 'producer', but the producer reads 'producer:<prefix>' (controlKey), so the
// stale row still said "teal had this slot" and an operator who followed the advice was
// refused again with the same error. Here the advice is followed to the letter (its SQL
// parsed from the message) and the next start must take a fresh snapshot. Green is a
// scratch cluster: the advice TRUNCATEs teal's state tables, which the shared green holds
// for every other test.

/** The SQL statements the advice names, as the operator would copy them. */
function adviceStatements(message: string) {
  const drop = /SELECT pg_drop_replication_slot\('([^']+)'\)/.exec(message);
  const del = /DELETE FROM teal\.control WHERE key IN \([^)]*\)/.exec(message);
  const truncate = /TRUNCATE [a-z_.]+(?:, [a-z_.]+)*/.exec(message);
  return { dropSlot: drop?.[1], deleteControl: del?.[0], truncate: truncate?.[0] };
}

describe('start-over advice names the control keys the producer reads', () => {
  test('following the TEAL_SLOT_MISSING advice to the letter lets the producer start over with a fresh snapshot', async () => {
    const name = uniqueName('start_over');
    let scratch: ScratchPostgres | undefined;
    onTestFinished(() => scratch?.destroy());
    scratch = await startScratchPostgres();
    const green = await pgClient(scratch.url);
    const blue = await pgClient(blueUrl());
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    await blue.query(`INSERT INTO ${name} SELECT g, 'v' || g FROM generate_series(1, 3) g`);
    onTestFinished(async () => {
      await blue.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [
        name,
      ]);
      await blue.query(`DROP PUBLICATION IF EXISTS ${name}; DROP TABLE IF EXISTS ${name}`);
      await deleteTopics(name);
    });
    const config = resolveConfig(
      { tables: [name], slot: name, publication: name, kafka: { topicPrefix: name, partitions: 1 } },
      {
        env: {
          TEAL_BLUE_URL: blueUrl(),
          TEAL_GREEN_URL: scratch.url,
          TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
        },
      },
    );
    const producers: Producer[] = [];
    onTestFinished(async () => {
      for (const p of producers) await p.stop();
    });
    const producer = () => {
      const p = new Producer(config, { statusIntervalMs: 100 });
      producers.push(p);
      return p;
    };

    // The producer creates its slot and streams; then the slot is dropped behind its back.
    const first = producer();
    await first.start();
    await waitFor(() => first.status().state === 'streaming', { what: 'first producer streaming' });
    await first.stop();
    await blue.query('SELECT pg_drop_replication_slot($1)', [name]);

    const refused = producer();
    const err = await startError(refused);
    await refused.stop();
    expect(err).toBeInstanceOf(TealError);
    expect((err as TealError).code).toBe('TEAL_SLOT_MISSING');
    const message = (err as TealError).message;
    expect(message).toContain('To start over on purpose');

    // Exactly what the advice says to run: on blue, then on green.
    const sql = adviceStatements(message);
    expect(sql.dropSlot, message).toBe(name);
    expect(sql.deleteControl, message).toBeDefined();
    expect(sql.truncate, message).toBeDefined();
    const slotThere = await blue.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [name]);
    if (slotThere.rowCount === 1) await blue.query(`SELECT pg_drop_replication_slot('${sql.dropSlot}')`);
    await green.query(sql.deleteControl!);
    await green.query(sql.truncate!);
    await deleteTopics(name);

    const again = producer();
    const restart = await startError(again);
    expect(restart, `the advice was followed, yet: ${String(restart)}`).toBeUndefined();
    await waitFor(() => again.status().state === 'streaming', { what: 'producer streaming again' });
    expect(again.status().snapshot).toEqual([
      { table: `public.${name}`, state: 'done', rowsDone: 3, rowsEstimated: expect.any(Number) },
    ]);
    const slots = await blue.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [name]);
    expect(slots.rowCount, 'a fresh slot').toBe(1);
  });
});

/** What start() rejected with; undefined when it started. */
function startError(producer: Producer): Promise<unknown> {
  return producer.start().then(
    () => undefined,
    (e: unknown) => e,
  );
}

async function deleteTopics(prefix: string): Promise<void> {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: prefix });
  const admin = kafka.admin();
  try {
    await admin.deleteTopics(await admin.listTopics(`${prefix}.`));
  } catch {
    // Nothing to delete, or the broker is busy: the names are unique to this test anyway.
  } finally {
    await admin.close();
    await kafka.close();
  }
}
