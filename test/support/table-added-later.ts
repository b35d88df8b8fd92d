import { comparePosition, type Row } from '@teal/change-event';
import { resolveConfig } from '@teal/config';
import { KafkaClient } from '@teal/kafka';
import { slotKey } from '@teal/postgres';
import { decodeAll, Producer, type ProducerDeps, TopicReader } from '@teal/producer';
import { waitFor } from '@teal/runtime';
import pg from 'pg';
import { onTestFinished } from 'vitest';
import { greenUrl, kafkaBrokers } from './env.ts';

// A table added to the configuration later, snapshotted by chunk while the stream runs: a first
// producer creates the slot and publication with `first` only; `addLater` then returns a
// producer for `first` and `later`. `replay` applies the table's topic as the consumer does.

export interface TableAddedLater {
  readonly prefix: string;
  readonly kafka: KafkaClient;
  addLater(deps?: ProducerDeps): Producer;
  /** Resolves once the slot is confirmed up to blue's current WAL position. */
  confirmedToNow(): Promise<void>;
  /** `later`'s rows after its whole topic is applied in position order, by id. */
  replay(): Promise<Map<string, Row>>;
}

export async function tableAddedLater(
  blueUrl: string,
  name: string,
  first: string,
  later: string,
  /** Runs while the first producer streams, before it stops. */
  whileFirstRuns?: () => Promise<void>,
): Promise<TableAddedLater> {
  const prefix = `${name}_t`;
  const config = (tables: string[]) =>
    resolveConfig(
      {
        tables,
        slot: `${name}_slot`,
        publication: `${name}_pub`,
        kafka: { topicPrefix: prefix, partitions: 1 },
        heartbeatMs: 300,
        snapshot: { chunkRows: 100 },
      },
      {
        env: {
          TEAL_BLUE_URL: blueUrl,
          TEAL_GREEN_URL: greenUrl(),
          TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
        },
      },
    );
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: name });
  const producers: Producer[] = [];
  onTestFinished(async () => {
    for (const p of producers) await p.stop();
    const admin = kafka.admin();
    await admin.deleteTopics(await admin.listTopics(`${prefix}.`)).catch(() => {});
    await admin.close();
    await kafka.close();
    const blue = new pg.Client({ connectionString: blueUrl });
    await blue.connect();
    await blue.query('SELECT pg_drop_replication_slot($1)', [`${name}_slot`]).catch(() => {});
    await blue.query(`DROP PUBLICATION IF EXISTS ${name}_pub`);
    await blue.end();
    const green = new pg.Client({ connectionString: greenUrl() });
    await green.connect();
    await green.query('DELETE FROM teal.control WHERE key = $1', [slotKey(`${name}_slot`)]);
    await green.query('DELETE FROM teal.snapshot_progress WHERE "table" = ANY($1::text[])', [[first, later]]);
    await green.end();
  });
  const initial = new Producer(config([first]));
  producers.push(initial);
  await initial.start();
  await waitFor(() => initial.status().state === 'streaming', {
    what: 'first producer streaming',
    timeoutMs: 60_000,
  });
  await whileFirstRuns?.();
  await initial.stop();

  return {
    prefix,
    kafka,
    addLater(deps) {
      const p = new Producer(config([first, later]), deps);
      producers.push(p);
      return p;
    },
    confirmedToNow: () => slotConfirmedToNow(blueUrl, `${name}_slot`),
    async replay() {
      const topic = `${prefix}.public.${later}`;
      const admin = kafka.admin();
      const ends = await admin.logEndOffsets(topic);
      await admin.close();
      const total = ends.reduce((s, e) => s + Number(e.end), 0);
      const reader = new TopicReader(kafka, [topic]);
      await reader.start();
      try {
        await waitFor(() => reader.records.length >= total, { what: 'every record of the topic read' });
        const events = (await decodeAll(kafka, prefix, reader.records)).map((d) => d.event);
        events.sort((a, b) => comparePosition(a.position, b.position));
        const rows = new Map<string, Row>();
        for (const e of events) {
          const id = e.key.id ?? '';
          const old = rows.get(id);
          if (e.op === 'd') rows.delete(id);
          else if (e.op === 'u' && e.unchanged.length > 0) {
            // A partial update changes a row green has; it cannot create one.
            if (!old || !e.after) continue;
            const changed = { ...e.after };
            for (const c of e.unchanged) delete changed[c];
            rows.set(id, { ...old, ...changed });
          } else if (e.after) rows.set(id, e.after);
        }
        return rows;
      } finally {
        await reader.stop();
      }
    },
  };
}

/** Resolves once `slot` is confirmed up to blue's current WAL position. */
export async function slotConfirmedToNow(blueUrl: string, slot: string): Promise<void> {
  const blue = new pg.Client({ connectionString: blueUrl });
  await blue.connect();
  try {
    const { rows } = await blue.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l');
    await waitFor(
      async () =>
        (
          await blue.query(
            'SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND confirmed_flush_lsn >= $2::pg_lsn',
            [slot, rows[0].l],
          )
        ).rowCount === 1,
      { what: `slot ${slot} confirmed up to the current WAL position` },
    );
  } finally {
    await blue.end();
  }
}
