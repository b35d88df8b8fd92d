import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';
import { startPipeline } from './support/pipeline.ts';
import { readAllEvents } from './support/producer-fixture.ts';

// Regression (issue 12, stored generated columns): the snapshot read `SELECT *`, so its rows
// carried blue's value of a stored generated column, which the stream (pgoutput leaves such
// columns out) never does; green refused every snapshot row (428C9: cannot insert a
// non-DEFAULT value into a generated column) and they went to the dead-letter topic. The
// snapshot now reads only the columns pgoutput sends, and green computes its own values.
describe('regression: a stored generated column in the initial snapshot', () => {
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'teal-generated-column-test' });
  afterAll(() => kafka.close());

  test('snapshot rows leave the generated column out and green accepts them, computing its own', async () => {
    const name = uniqueName('gen_col');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    const ddl = `CREATE TABLE ${name} (id int PRIMARY KEY, price numeric NOT NULL, qty int NOT NULL,
                   total numeric GENERATED ALWAYS AS (price * qty) STORED, note text)`;
    await blue.query(ddl);
    await green.query(ddl);
    onTestFinished(async () => {
      await blue.query(`DROP TABLE IF EXISTS ${name}`);
      await green.query(`DROP TABLE IF EXISTS ${name}`);
    });
    await blue.query(
      `INSERT INTO ${name} (id, price, qty, note) SELECT g, g * 1.5, g, 'n' || g FROM generate_series(1, 20) g`,
    );

    const { config, producer } = await startPipeline(name, [name], {
      snapshot: { chunkRows: 7, via: 'kafka' },
    });
    await waitFor(() => producer.status().state === 'streaming', { what: 'streaming', timeoutMs: 60_000 });
    // And the stream, which never carried it, still flows after the snapshot.
    await blue.query(`INSERT INTO ${name} (id, price, qty) VALUES (21, 2, 3)`);
    await blue.query(`UPDATE ${name} SET qty = qty + 1 WHERE id = 5`);

    const rows = `SELECT id, price, qty, total, note FROM ${name} ORDER BY id`;
    const expected = (await blue.query(rows)).rows;
    await waitFor(async () => JSON.stringify((await green.query(rows)).rows) === JSON.stringify(expected), {
      what: 'green equal to blue, generated column included',
      timeoutMs: 60_000,
    });
    expect(expected).toHaveLength(21);

    const events = await readAllEvents(
      kafka,
      config.kafka.topicPrefix,
      `${config.kafka.topicPrefix}.public.${name}`,
    );
    const snapshotRows = events.filter((e) => e.op === 'r');
    expect(snapshotRows).toHaveLength(20);
    for (const e of snapshotRows)
      expect(Object.keys(e.after ?? {}).sort()).toEqual(['id', 'note', 'price', 'qty']);
  });
});
