import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CliIo, EXIT, main } from '@teal/cli';
import { describe, expect, onTestFinished, test } from 'vitest';
import { blueUrl, greenUrl, kafkaBrokers, pgClient, uniqueName } from './support/env.ts';

// `teal verify` with no API running verifies directly against the real blue and green.
async function teal(args: string[]) {
  let out = '';
  let err = '';
  const io: CliIo = {
    stdout: { write: (t: string) => (out += t) },
    stderr: { write: (t: string) => (err += t) },
    env: {
      TEAL_BLUE_URL: blueUrl(),
      TEAL_GREEN_URL: greenUrl(),
      TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
      // Nothing listens on port 1: the CLI must fall back to the databases.
      TEAL_API_PORT: '1',
    },
    cwd: mkdtempSync(join(tmpdir(), 'teal-cli-')),
    stopSignal: () => new Promise(() => {}),
  };
  return { code: await main(args, io), out, err };
}

describe('teal verify without an API', () => {
  test('compares blue and green directly: exit 0 when equal, 1 counting the drifted row', async () => {
    const name = uniqueName('ctl_cli');
    const blue = await pgClient(blueUrl());
    const green = await pgClient(greenUrl());
    for (const c of [blue, green]) {
      await c.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
      await c.query(`INSERT INTO ${name} SELECT g, 'v' || g FROM generate_series(1, 100) g`);
    }
    onTestFinished(async () => {
      await blue.query(`DROP TABLE IF EXISTS ${name}`);
      await green.query(`DROP TABLE IF EXISTS ${name}`);
    });

    const same = await teal(['verify', '--table', `public.${name}`, '--json']);
    expect(same.err).toMatch(/no API at http:\/\/127\.0\.0\.1:1: verifying directly against blue and green/);
    expect(same.code, same.err).toBe(EXIT.ok);
    const report = JSON.parse(same.out);
    expect(report.ok).toBe(true);
    expect(report.tables[0]).toMatchObject({ blue: `public.${name}`, blueRows: 100, greenRows: 100 });

    await green.query(`UPDATE ${name} SET v = 'drifted' WHERE id = 42`);
    const differ = await teal(['verify', '--table', `public.${name}`]);
    expect(differ.code).toBe(EXIT.failure);
    expect(differ.out).toMatch(/DIFFERENCES FOUND/);
    // rows blue, rows green, bad chunks, missing, extra, different, ok
    expect(differ.out).toMatch(
      new RegExp(`public\\.${name}\\s+public\\.${name}\\s+100\\s+100\\s+1\\s+0\\s+0\\s+1\\s+NO`),
    );
  });
});
