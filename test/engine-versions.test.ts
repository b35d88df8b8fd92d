import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { runCheck } from '@teal/control';
import { waitFor } from '@teal/runtime';
import { afterAll, beforeAll, describe, expect, onTestFinished, test, vi } from 'vitest';
import {
  type PgCluster,
  parsePgMajor,
  pgDataDir,
  pgDataMajor,
  pgDown,
  pgLogFile,
  pgServerVersion,
  pgUp,
  preparePgDirs,
} from '../infra/local/lib/postgres.mjs';
import { ensurePostgres } from '../infra/tools/postgres-versions.mjs';
import { type ScratchPostgres, startScratchPostgres } from '../soak/scratch-postgres.ts';
import {
  controlConfig,
  controlPipeline,
  expectCutoverDone,
  ownBlueDatabase,
  sessionOn,
  tableOnBoth,
} from './support/control-pipeline.ts';
import { pgClient, uniqueName, withDatabase } from './support/env.ts';
import { startPipeline } from './support/pipeline.ts';
import { typeFidelityEndToEnd } from './support/type-fidelity.ts';

// Blue and green on other PostgreSQL majors than the shared 15 (issue 14 item 4): the
// type-fidelity check and a streamed transaction (larger than logical_decoding_work_mem,
// with an aborted transaction and an aborted sub-transaction around it) end to end, on
// scratch clusters of the majors installed by infra/tools/postgres-versions.mjs and the
// shared Kafka. One cluster per major; blue is its database `blue`, green its `green`, so a
// pair of equal majors is one server. CI runs the pairs below; `npm run test:matrix` runs
// every pair over 13..18 through TEAL_ENGINE_PAIRS ("13:18,18:13,...").

const PAIRS: Array<[blue: number, green: number]> = (process.env.TEAL_ENGINE_PAIRS ?? '15:17,18:18')
  .split(',')
  .filter((p) => p.trim() !== '')
  .map((p) => p.split(':').map(Number) as [number, number]);
/** 13 always: what it cannot do is refused (the last test). */
const MAJORS = [...new Set([13, ...PAIRS.flat()])].sort((a, b) => a - b);
/** The range the version tests keep to (docs/engine-versions.md): never the shared 5433/5434. */
const PORTS = { first: 15500, last: 15599 };

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function freePortInRange(taken: Set<number>): Promise<number> {
  for (let port = PORTS.first; port <= PORTS.last; port++) {
    if (!taken.has(port) && (await portIsFree(port))) {
      taken.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${PORTS.first}-${PORTS.last}`);
}

const clusters = new Map<number, ScratchPostgres>();

beforeAll(async () => {
  const taken = new Set<number>();
  for (const major of MAJORS) {
    const binDir = await ensurePostgres(major);
    const cluster = await startScratchPostgres(
      {
        // Small enough that the transaction below goes out in stream blocks (14+).
        logical_decoding_work_mem: "'64kB'",
        max_wal_senders: '20',
        max_replication_slots: '20',
      },
      { binDir, port: await freePortInRange(taken) },
    );
    clusters.set(major, cluster);
    const admin = await pgClientOutsideTest(cluster.url);
    try {
      await admin.query('CREATE DATABASE blue');
      await admin.query('CREATE DATABASE green');
    } finally {
      await admin.end();
    }
  }
}, 300_000);

afterAll(() => {
  for (const cluster of clusters.values()) cluster.destroy();
});

async function pgClientOutsideTest(url: string) {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

function urlsFor(blue: number, green: number) {
  return {
    blue: withDatabase(clusters.get(blue)!.url, 'blue'),
    green: withDatabase(clusters.get(green)!.url, 'green'),
  };
}

describe.each(PAIRS)('PostgreSQL %i -> %i', (blueMajor, greenMajor) => {
  test('every type, blue text == green text, snapshot and stream', async () => {
    await typeFidelityEndToEnd(urlsFor(blueMajor, greenMajor));
  }, 120_000);

  test('a transaction larger than logical_decoding_work_mem arrives whole; aborted work never does', async () => {
    const urls = urlsFor(blueMajor, greenMajor);
    const name = uniqueName('big');
    const blue = await pgClient(urls.blue);
    const green = await pgClient(urls.green);
    const ddl = `CREATE TABLE ${name} (id int PRIMARY KEY, v text)`;
    await blue.query(ddl);
    await green.query(ddl);
    await startPipeline(name, [`public.${name}`], { kafka: { topicPrefix: name, partitions: 2 } }, urls);

    await blue.query('BEGIN');
    await blue.query(`INSERT INTO ${name} SELECT g, repeat('a', 100) FROM generate_series(1, 5000) g`);
    await blue.query('ROLLBACK');
    await blue.query('BEGIN');
    await blue.query(`INSERT INTO ${name} SELECT g, repeat('b', 100) FROM generate_series(10001, 30000) g`);
    await blue.query('SAVEPOINT s');
    await blue.query(`INSERT INTO ${name} SELECT g, repeat('c', 100) FROM generate_series(40001, 45000) g`);
    await blue.query('ROLLBACK TO SAVEPOINT s');
    await blue.query(`UPDATE ${name} SET v = 'updated' WHERE id % 1000 = 0`);
    await blue.query('COMMIT');

    const digest = `SELECT count(*)::text AS n, md5(string_agg(id || ':' || v, ',' ORDER BY id)) AS h FROM ${name}`;
    const expected = (await blue.query(digest)).rows[0];
    expect(expected.n).toBe('20000');
    const got = await waitFor(
      async () => {
        const row = (await green.query(digest)).rows[0];
        return row.n === expected.n && row.h === expected.h ? row : undefined;
      },
      { what: `the 20000 rows of the big transaction in green (${greenMajor})`, timeoutMs: 90_000 },
    );
    expect(got).toEqual(expected);
    if (blueMajor >= 14) {
      // Blue's own counter says the transaction went out as in-progress stream blocks.
      await waitFor(
        async () => {
          const { rows } = await blue.query<{ n: string }>(
            'SELECT stream_txns::text AS n FROM pg_stat_replication_slots WHERE slot_name = $1',
            [name],
          );
          return Number(rows[0]?.n ?? 0) >= 1;
        },
        { what: `pg_stat_replication_slots.stream_txns >= 1 on blue (${blueMajor})`, timeoutMs: 30_000 },
      );
    }
  }, 120_000);

  test('teal check, then a cutover: fence, drain, sequences, verify', async () => {
    const name = uniqueName('cut');
    const blueUrl = await ownBlueDatabase(clusters.get(blueMajor)!.url, name);
    const greenUrl = urlsFor(blueMajor, greenMajor).green;
    // The fence ends this session (blue's database goes when the test ends).
    const blue = await sessionOn(blueUrl);
    const green = await pgClient(greenUrl);
    for (const db of [blue, green])
      await db.query(`CREATE TABLE ${name} (id serial PRIMARY KEY, v text, at timestamptz DEFAULT now())`);
    onTestFinished(async () => {
      await green.query(`DROP TABLE IF EXISTS ${name}`);
    });
    await blue.query(`INSERT INTO ${name} (v) SELECT 'before ' || g FROM generate_series(1, 300) g`);
    const config = controlConfig(name, blueUrl, [`public.${name}`], {}, greenUrl);
    // Every read teal check makes, on both versions: nothing blocks, nothing skipped.
    const check = await runCheck({ config });
    expect(check.skipped).toEqual([]);
    expect(check.findings.filter((f) => f.severity === 'block')).toEqual([]);

    const { control } = await controlPipeline(config);
    await blue.query(`INSERT INTO ${name} (v) SELECT 'after ' || g FROM generate_series(1, 200) g`);
    onTestFinished(async () => {
      await control.unfence();
    });
    const report = await expectCutoverDone(control);
    expect(report.sequences).toEqual([
      expect.objectContaining({ blue: `public.${name}_id_seq`, value: '500' }),
    ]);
    const { rows } = await green.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${name}`);
    expect(rows[0].n).toBe('500');
  }, 150_000);
});

describe('PostgreSQL 13 blue: what needs 14 is refused with the version named', () => {
  test('a table added while streaming stops the producer (13 forwards no watermark messages)', async () => {
    const name = uniqueName('late13');
    const blueUrl = await ownBlueDatabase(clusters.get(13)!.url, name);
    const greenUrl = withDatabase(clusters.get(13)!.url, 'green');
    const blue = await pgClient(blueUrl);
    const green = await pgClient(greenUrl);
    await tableOnBoth(blue, green, `${name}_a`, 'id int PRIMARY KEY');
    // No table list: every table of blue, so the one created below is adopted while streaming.
    const config = controlConfig(name, blueUrl, [], { tables: undefined }, greenUrl);
    const { producer } = await controlPipeline(config, { producerDeps: { catalogPollMs: 200 } });
    await tableOnBoth(blue, green, `${name}_b`, 'id int PRIMARY KEY');
    await blue.query(`INSERT INTO ${name}_b VALUES (1)`);
    const error = await waitFor(() => producer.status().error, {
      what: 'the producer to stop on the table added later',
      timeoutMs: 60_000,
    });
    expect(error.code).toBe('TEAL_PGOUTPUT_UNSUPPORTED');
    expect(error.message).toContain(`snapshotting public.${name}_b while streaming`);
    expect(error.message).toContain('needs PostgreSQL 14 or newer on blue (blue runs 13');
  }, 120_000);
});

describe('local environment: a side on the major asked for (npm run env:up -- --blue N)', () => {
  test('made on 16, asked for 13: stopped, made again by 13, saying so; a bad major named', async () => {
    // A side of its own beside blue and green (same code as env.mjs, its own name and port).
    const cluster: PgCluster = {
      name: uniqueName('envside'),
      port: await freePortInRange(new Set()),
      settings: {},
    };
    preparePgDirs([cluster]);
    onTestFinished(async () => {
      await pgDown(cluster).catch(() => undefined);
      rmSync(pgDataDir(cluster), { recursive: true, force: true });
      rmSync(pgLogFile(cluster), { force: true });
    });
    expect(await pgUp(cluster, 16)).toMatch(/PostgreSQL 16\.\d+ created and started/);
    expect(await pgUp(cluster)).toMatch(/already running PostgreSQL 16\./); // no flag: keeps its major
    const printed: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      printed.push(String(chunk));
      return true;
    });
    let line: string;
    try {
      line = await pgUp(cluster, 13);
    } finally {
      spy.mockRestore();
    }
    expect(printed.join('')).toMatch(
      new RegExp(
        `^\\[env\\] ${cluster.name}: .* was made by PostgreSQL 16, 13 was asked for: .*made again by 13\n`,
      ),
    );
    expect(line).toMatch(/PostgreSQL 13\.\d+ created and started/);
    expect(pgDataMajor(cluster)).toBe(13);
    expect(await pgServerVersion(cluster)).toMatch(/^13\./);
    expect(() => parsePgMajor('blue', '12')).toThrow(
      '--blue 12: give a PostgreSQL major, one of 13, 14, 15, 16, 17, 18',
    );
  }, 120_000);
});
