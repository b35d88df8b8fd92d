import { createReverse } from '@teal/cli';
import type { ResolvedConfig } from '@teal/config';
import { type CutoverReport, removeReverseGuard, type SequenceCopy, startApi } from '@teal/control';
import { KafkaClient } from '@teal/kafka';
import { createMetrics, waitFor } from '@teal/runtime';
import pg from 'pg';

// `npm run demo -- --rollback`: after the forward cutover (with rollback), the application
// writes on green for a while; teal reverse streams those writes back into blue through the
// inverse transforms (full_name -> name, email_domain not written back); teal rollback
// fences green, drains, copies sequences back, verifies blue and unfences it; a digest in SQL
// on each side shows that blue has every write.

export interface RollbackLeg {
  writes: { transactions: number; ms: number };
  rollback: {
    safeToSwitch: boolean;
    drainLsn: string | undefined;
    sequences: SequenceCopy[];
    verifyOk: boolean | undefined;
    steps: Array<{ name: string; ok: boolean; ms: number }>;
  };
  /** The same rows on both sides, by an md5 of every row's text (blue's names, green's mapped back). */
  digests: Array<{ table: string; blueRows: number; greenRows: number; same: boolean }>;
}

type Client = () => pg.Client;

/** What a --rollback demo left: the reverse slot and publication on green, its topics, blue's reverse state and guard. */
export async function resetReverseState(
  config: ResolvedConfig,
  blue: pg.Client,
  green: pg.Client,
): Promise<void> {
  const slot = `${config.slot}_reverse`;
  await dropSlot(green, slot, 'the old reverse slot to be released');
  await green.query(`DROP PUBLICATION IF EXISTS ${pg.escapeIdentifier(`${config.publication}_reverse`)}`);
  await removeReverseGuard(blue);
  // The reverse pipeline keeps its state in blue's teal schema: only its own rows go.
  const prefix = `${config.kafka.topicPrefix}_reverse`;
  if ((await blue.query("SELECT to_regclass('teal.control') IS NOT NULL AS ok")).rows[0].ok === 't') {
    await blue.query('DELETE FROM teal.applied_position WHERE starts_with(topic, $1)', [`${prefix}.`]);
    await blue.query('DELETE FROM teal.applied_truncate WHERE starts_with(topic, $1)', [`${prefix}.`]);
    await blue.query("DELETE FROM teal.control WHERE key LIKE '%:' || $1 OR key = $2", [
      prefix,
      `slot:${slot}`,
    ]);
    await blue.query(
      "DELETE FROM teal.snapshot_progress WHERE schema = 'public' AND \"table\" IN ('users', 'orders')",
    );
  }
  await deleteTopics(config, `${prefix}.`, 'old reverse topics to be deleted');
}

/** Ends the session streaming `slot` (a run killed mid-way), waits until it is released, drops it. */
export async function dropSlot(db: pg.Client, slot: string, what: string): Promise<void> {
  await db.query(
    'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL',
    [slot],
  );
  await waitFor(
    async () =>
      (await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [slot]))
        .rowCount === 0,
    { what, timeoutMs: 30_000 },
  );
  await db.query(
    'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  );
}

/** Deletes the topics named `prefix...` on the demo's broker and waits until they are gone. */
export async function deleteTopics(config: ResolvedConfig, prefix: string, what: string): Promise<void> {
  const kafka = new KafkaClient({
    brokers: [...config.kafka.brokers],
    clientId: 'teal-demo',
    client: config.kafka.client,
  });
  try {
    const admin = kafka.admin();
    await admin.deleteTopics(await admin.listTopics(prefix));
    await waitFor(async () => (await admin.listTopics(prefix)).length === 0, { what, timeoutMs: 60_000 });
  } finally {
    await kafka.close();
  }
}

/** Rows of users (blue's names) and orders as text, digested on one side. */
async function digest(db: pg.Client, table: 'users' | 'orders', nameColumn: string) {
  const columns = table === 'users' ? `id, ${nameColumn}, email` : 'id, user_id, amount';
  const { rows } = await db.query(
    `SELECT count(*)::int AS n, coalesce(md5(string_agg(format('%s', (${columns})), E'\\n' ORDER BY id)), '') AS md5 FROM ${table}`,
  );
  return { rows: Number(rows[0].n), md5: rows[0].md5 as string };
}

export async function runRollbackLeg(opts: {
  config: ResolvedConfig;
  client: Client;
  writeMs: number;
  say: (line: string) => void;
}): Promise<RollbackLeg> {
  const { config, say } = opts;
  const metrics = createMetrics(undefined, { direction: 'reverse' });
  const reverse = await createReverse(config, { metrics });
  let api: { url: string; close(): Promise<unknown> } | undefined;
  try {
    await reverse.producer.start();
    await reverse.consumer.start();
    api = await startApi(reverse.config, reverse.control, metrics);
    say(`teal reverse is running (green -> blue from ${reverse.prepared.lsn}): status ${api.url}/status`);

    // The application has switched to green: inserts, email changes and deletes there.
    say(`writes on green for ${opts.writeMs / 1000} s (new users and orders, email changes, deleted orders)`);
    const writer = new pg.Client({ connectionString: config.green.url, application_name: 'demo-app' });
    await writer.connect();
    let transactions = 0;
    const started = Date.now();
    try {
      while (Date.now() - started < opts.writeMs) {
        const n = transactions++;
        await writer.query('BEGIN');
        const { rows } = await writer.query(
          'INSERT INTO users (full_name, email, email_domain) VALUES ($1, $2, $3) RETURNING id',
          [`Green ${n}`, `green${n}@green.example`, 'green.example'],
        );
        await writer.query('INSERT INTO orders (user_id, amount) VALUES ($1, $2)', [
          rows[0].id,
          (n % 500) + 0.25,
        ]);
        await writer.query(
          "UPDATE users SET email = 'back' || id || '@rolled.example', email_domain = 'rolled.example' WHERE id = $1",
          [1 + ((n * 37) % 1000)],
        );
        await writer.query('DELETE FROM orders WHERE id = (SELECT min(id) FROM orders WHERE id > $1)', [
          n * 13,
        ]);
        await writer.query('COMMIT');
      }
    } finally {
      await writer.end();
    }
    const writeMs = Date.now() - started;
    say(`writes: ${transactions} transactions on green in ${(writeMs / 1000).toFixed(1)} s`);

    say('rollback: fence green, drain the reverse pipeline, copy sequences back, verify blue, unfence blue');
    const report: CutoverReport = await reverse.control.rollback({
      timeoutMs: 300_000,
      unfenceOnFailure: true,
    });
    // Fresh sessions: the fence of green ended every earlier one.
    const blueNow = opts.client();
    const greenNow = new pg.Client({ connectionString: config.green.url, application_name: 'teal-demo' });
    await blueNow.connect();
    await greenNow.connect();
    const digests: RollbackLeg['digests'] = [];
    try {
      for (const table of ['users', 'orders'] as const) {
        const b = await digest(blueNow, table, 'name');
        const g = await digest(greenNow, table, 'full_name');
        digests.push({
          table,
          blueRows: b.rows,
          greenRows: g.rows,
          same: b.md5 === g.md5 && b.rows === g.rows,
        });
      }
    } finally {
      await blueNow.end().catch(() => undefined);
      await greenNow.end().catch(() => undefined);
    }
    return {
      writes: { transactions, ms: writeMs },
      rollback: {
        safeToSwitch: report.safeToSwitch,
        drainLsn: report.drainLsn ?? undefined,
        sequences: report.sequences,
        verifyOk: report.verify?.ok,
        steps: report.steps.map((s) => ({ name: s.name, ok: s.ok, ms: s.ms })),
      },
      digests,
    };
  } finally {
    await api?.close().catch(() => undefined);
    await reverse.control.close().catch(() => undefined);
    await reverse.consumer.stop().catch(() => undefined);
    await reverse.producer.stop().catch(() => undefined);
  }
}
