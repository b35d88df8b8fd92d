import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KafkaClient } from '@teal/kafka';
import { readSnapshotProgress, writeControlValue } from '@teal/postgres';
import { waitFor } from '@teal/runtime';
import type pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, freePort, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';
import { spawnTeal, type TealChild } from './support/teal-child.ts';

// kill -9 of `teal run` in the middle of the direct initial copy, with writes on blue before,
// during and after it. The exported snapshot dies with the process: the restart streams from
// the slot and finishes the unfinished tables by chunk through Kafka (after the last key the
// copy recorded for the keyed table, from the start for the keyless one). Green must then
// equal blue: no lost row, and no duplicate in the table without a key in green.

const keyed = async (db: pg.Client, t: string) =>
  (
    await db.query(
      `SELECT count(*)::text AS n, md5(coalesce(string_agg(id || ':' || v, ',' ORDER BY id), '')) AS h FROM ${t}`,
    )
  ).rows[0];
const multiset = async (db: pg.Client, t: string) =>
  JSON.stringify(
    (await db.query(`SELECT x, y, count(*)::text AS n FROM ${t} GROUP BY 1, 2 ORDER BY 1, 2`)).rows,
  );

describe('direct initial copy: crash', () => {
  test('kill -9 mid-copy, restart: green equals blue, nothing lost, nothing twice', async () => {
    const name = uniqueName('direct_crash');
    const [k, f] = [`${name}_k`, `${name}_f`];
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    const writer = await pgClient(blueUrl());
    await blue.query(`CREATE TABLE ${k} (id int PRIMARY KEY, v text NOT NULL)`);
    await blue.query(`INSERT INTO ${k} SELECT g, 'v' || g FROM generate_series(1, 200000) g`);
    await blue.query(`CREATE TABLE ${f} (x int, y text)`);
    await blue.query(`ALTER TABLE ${f} REPLICA IDENTITY FULL`);
    await blue.query(`INSERT INTO ${f} SELECT g % 5000, 'r' || (g % 7) FROM generate_series(1, 20000) g`);
    await green.query(`CREATE TABLE ${k} (id int PRIMARY KEY, v text NOT NULL)`);
    await green.query(`CREATE TABLE ${f} (x int, y text)`);
    const dir = mkdtempSync(join(tmpdir(), 'teal-direct-crash-'));
    writeFileSync(
      join(dir, 'teal.config.ts'),
      `export default ${JSON.stringify({
        tables: [`public.${k}`, `public.${f}`],
        slot: name,
        publication: name,
        kafka: { topicPrefix: name, partitions: 2 },
        heartbeatMs: 500,
        snapshot: { via: 'direct', parallel: 2, rangeRows: 200, chunkRows: 2000 },
      })};\n`,
    );
    const port = await freePort();
    const run = (): TealChild =>
      spawnTeal(['run', '--skip-check'], {
        cwd: dir,
        env: {
          TEAL_LOG_LEVEL: 'info',
          TEAL_BLUE_URL: blueUrl(),
          TEAL_GREEN_URL: greenUrl(),
          TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
          TEAL_API_PORT: String(port),
        },
      });
    let writing = true;
    let writes = 0;
    const writeLoop = (async () => {
      while (writing) {
        const id = 1 + ((writes * 7919) % 200000);
        await writer.query(`UPDATE ${k} SET v = v || 'u' WHERE id = $1`, [id]);
        if (writes % 5 === 0) await writer.query(`DELETE FROM ${k} WHERE id = $1`, [id + 1]);
        if (writes % 3 === 0)
          await writer.query(`INSERT INTO ${k} VALUES ($1, 'new') ON CONFLICT DO NOTHING`, [200000 + writes]);
        writes++;
      }
    })();
    onTestFinished(async () => {
      writing = false;
      await writeLoop.catch(() => {});
      await blue.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [
        name,
      ]);
      await blue.query(`DROP PUBLICATION IF EXISTS ${name}`);
      const kafka = new KafkaClient({ brokers: kafkaBrokers() });
      const admin = kafka.admin();
      await admin.deleteTopics(await admin.listTopics(`${name}.`)).catch(() => {});
      await kafka.close();
      await green.query(`DELETE FROM teal.control WHERE key LIKE $1`, [`%:${name}`]);
      for (const t of [k, f]) {
        await blue.query(`DROP TABLE IF EXISTS ${t}`);
        await green.query(`DROP TABLE IF EXISTS ${t}`);
      }
      await Promise.all([blue.end(), green.end(), writer.end()]);
      rmSync(dir, { recursive: true, force: true });
    });

    const first = run();
    // Some ranges of the keyed table are committed in green: pause (the copy stops between
    // ranges, so the kill surely lands before its end), then kill -9.
    const progressOf = async (t: string) => (await readSnapshotProgress(green)).get(`public.${t}`);
    await waitFor(
      async () => {
        if (first.proc.exitCode !== null) throw new Error(`teal run exited:\n${first.output()}`);
        return ((await progressOf(k).catch(() => undefined))?.rowsDone ?? 0) >= 2000;
      },
      { what: 'some ranges copied', timeoutMs: 120_000 },
    );
    await writeControlValue(green, `paused:${name}`, true);
    await waitFor(() => first.output().includes('paused: not reading the slot'), {
      what: 'pause seen',
      timeoutMs: 30_000,
    });
    first.proc.kill('SIGKILL');
    await first.exited;
    const atKill = await progressOf(k);
    expect(atKill?.state).toBe('running');
    expect(atKill?.lastKey).not.toBeNull();
    expect((await progressOf(f))?.state).not.toBe('done');
    expect(Number((await green.query(`SELECT count(*) AS n FROM ${k}`)).rows[0].n)).toBeLessThan(200000);

    // Restart: the same slot, streaming, the rest by chunk through Kafka.
    await writeControlValue(green, `paused:${name}`, false);
    const second = run();
    await waitFor(
      async () => {
        if (second.proc.exitCode !== null) throw new Error(`teal run exited:\n${second.output()}`);
        const [pk, pf] = [await progressOf(k), await progressOf(f)];
        return pk?.state === 'done' && pf?.state === 'done';
      },
      { what: 'snapshot finished after the restart', timeoutMs: 240_000 },
    );
    writing = false;
    await writeLoop;
    expect(writes).toBeGreaterThan(0);
    await waitFor(
      async () =>
        JSON.stringify(await keyed(green, k)) === JSON.stringify(await keyed(blue, k)) &&
        (await multiset(green, f)) === (await multiset(blue, f)),
      { what: 'green equals blue', timeoutMs: 120_000 },
    ).catch(async (err) => {
      const diff = async (db: pg.Client) =>
        (await db.query(`SELECT id, v FROM ${k} ORDER BY id`)).rows.map((r) => `${r.id}:${r.v}`);
      const [gb, bb] = [await diff(green), await diff(blue)];
      const gs = new Set(gb);
      const bs = new Set(bb);
      console.log(
        'missing in green',
        bb.filter((r) => !gs.has(r)).slice(0, 20),
        'extra in green',
        gb.filter((r) => !bs.has(r)).slice(0, 20),
      );
      console.log(
        'f green',
        (await multiset(green, f)).slice(0, 300),
        'f blue',
        (await multiset(blue, f)).slice(0, 300),
      );
      console.log(
        await fetch(`http://127.0.0.1:${port}/status`)
          .then((r) => r.text())
          .catch(() => 'no status'),
      );
      throw err;
    });
    expect(await keyed(green, k)).toEqual(await keyed(blue, k));
    expect(await multiset(green, f)).toBe(await multiset(blue, f));
    expect(first.output()).toContain('copying directly to green');
  }, 600_000);
});
