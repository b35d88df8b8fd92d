import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { build } from '@teal/control';
import { describe, expect, onTestFinished, test } from 'vitest';
import { ensure as ensureSchemathesis } from '../infra/tools/schemathesis.mjs';
import { controlConfig, controlPipeline, ownBlueDatabase, sessionOn } from './support/control-pipeline.ts';
import { blueUrl, freePort, greenUrl, pgClient, uniqueName } from './support/env.ts';

// Issue 16 item 3: the OpenAPI document (GET /docs) is the truth. schemathesis, a
// property-based API tester, reads the live document and sends what it allows (and what it
// does not) to a live teal API over a real pipeline; it fails on any status, content type,
// header or body the document does not declare, on a 5xx, on an unlisted method that does
// not answer 405 with Allow, on valid data refused and invalid data accepted. It runs with
// the bearer token and without (every route but health must then answer a documented 401).
//
// Nothing is excluded: pause, resume, fence, unfence, drain, cutover and verify all run, on
// a blue database of this test's own (a fence makes a whole database read-only) and a
// pipeline of its own (slot, publication, topics), so the shared environment is untouched.

const TOKEN = 'schemathesis-token-0123456789abcdef';

interface Run {
  code: number;
  output: string;
}

function schemathesis(exe: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      exe,
      args,
      { cwd, timeout: 150_000, maxBuffer: 32 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, output: `${stdout}\n${stderr}` });
      },
    );
  });
}

describe('the OpenAPI document against the live API (schemathesis)', () => {
  test('with the token and without: every answer is documented, no 5xx', { timeout: 400_000 }, async () => {
    const exe = await ensureSchemathesis();
    const name = uniqueName('api_st');
    const blueDb = await ownBlueDatabase(blueUrl(), name);
    // A fence (which the tester sends) terminates this session too.
    const blue = await sessionOn(blueDb);
    const green = await pgClient(greenUrl());
    // A serial key: cutover has a sequence to copy.
    for (const db of [blue, green]) await db.query(`CREATE TABLE ${name} (id serial PRIMARY KEY, v text)`);
    onTestFinished(async () => {
      await green.query(`DROP TABLE IF EXISTS ${name}`);
    });
    await blue.query(`INSERT INTO ${name} (v) SELECT 'v' || g FROM generate_series(1, 50) g`);

    const config = controlConfig(name, blueDb, [`public.${name}`]);
    onTestFinished(async () => {
      // A cutover the tester sends with withRollback may succeed (green has wal_level logical):
      // its reverse slot would keep green's WAL for the rest of the run.
      await green.query(
        `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`,
        [`${config.slot}_reverse`],
      );
      await green.query(`DROP PUBLICATION IF EXISTS ${config.publication}_reverse`);
      await green
        .query(`DELETE FROM teal.control WHERE key = $1`, [`reverse:${config.kafka.topicPrefix}`])
        .catch(() => {});
    });
    const { control, metrics } = await controlPipeline(config);
    // The snapshot is in green before the tester starts: its drains and verifies then answer
    // what a running pipeline answers.
    expect((await control.drain({ timeoutMs: 60_000, fence: false })).drained).toBe(true);

    const port = await freePort();
    const app = build({ backend: control, token: TOKEN, host: '127.0.0.1', port, metrics });
    onTestFinished(() => app.close());
    await app.listen({ host: '127.0.0.1', port });
    const url = `http://127.0.0.1:${port}`;

    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'teal-schemathesis-'));
    onTestFinished(() => fs.rmSync(work, { recursive: true, force: true }));
    const common = [
      'run',
      `${url}/docs`,
      '--checks',
      'all',
      '--max-examples',
      '4',
      '--seed',
      '16',
      '--workers',
      '1',
      '--request-timeout',
      '60',
      // A verify of 1000 tables that do not exist takes its time; that is not what this tests.
      '--max-response-time',
      '30',
      '--generation-database',
      'none',
      '--no-color',
    ];

    // With the token: the document behind it, every operation driven with valid and invalid data.
    const withToken = await schemathesis(
      exe,
      [...common, '--phases', 'examples,coverage,fuzzing', '-H', `Authorization: Bearer ${TOKEN}`],
      work,
    );
    expect(withToken.code, withToken.output).toBe(0);
    expect(withToken.output).toMatch(/Selected: (\d+)\/\1\s+Tested: \1/);

    // Without it, from a copy of the document (GET /docs needs the token too): health answers,
    // everything else a documented 401 with WWW-Authenticate. The coverage phase is the one
    // that matters here (every operation, unlisted methods); random bodies all meet the 401.
    const doc = await (await fetch(`${url}/docs`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
    fs.writeFileSync(path.join(work, 'openapi.json'), JSON.stringify(doc));
    const noToken = await schemathesis(
      exe,
      [
        ...common.map((a) => (a === `${url}/docs` ? 'openapi.json' : a)),
        '--url',
        url,
        '--phases',
        'coverage',
      ],
      work,
    );
    expect(noToken.output).toMatch(/Selected: (\d+)\/\1\s+Tested: \1/);
    expect(noToken.code, noToken.output).toBe(0);
    const unauthorized = await fetch(`${url}/status`);
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get('www-authenticate')).toMatch(/^Bearer realm="teal"/);
  });
});
