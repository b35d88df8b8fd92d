import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TealError } from '@teal/errors';
import { describe, expect, it, onTestFinished } from 'vitest';
import { kafkaClientFromEnv } from './kafka-client.ts';
import { configPathFromArgv, loadConfig } from './load-config.ts';
import { resolveConfig } from './resolve-config.ts';

function problemsOf(input: unknown, env: Record<string, string> = {}): string[] {
  try {
    resolveConfig(input, { env });
  } catch (err) {
    expect(err).toBeInstanceOf(TealError);
    expect((err as TealError).code).toBe('TEAL_CONFIG_INVALID');
    return (err as TealError).details?.problems as string[];
  }
  throw new Error('expected the config to be rejected');
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'teal-config-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('resolveConfig', () => {
  it('defaults to the local environment and replicates every table', () => {
    const config = resolveConfig(undefined);
    expect(config).toEqual({
      blue: { url: 'postgres://postgres@127.0.0.1:5433/app' },
      green: { url: 'postgres://postgres@127.0.0.1:5434/app' },
      kafka: {
        brokers: ['127.0.0.1:9092'],
        topicPrefix: 'teal',
        partitions: 4,
        headers: false,
        client: 'platformatic',
        maxMessageBytes: 16 * 1024 ** 2,
      },
      slot: 'teal_slot',
      publication: 'teal_pub',
      api: { host: '127.0.0.1', port: 8080, token: undefined },
      tables: 'all',
      transforms: {},
      apply: {
        onMissingColumn: 'fail',
        createTables: false,
        sessionReplicationRole: 'replica',
        batchSize: 5000,
      },
      keyColumns: {},
      ordered: {},
      heartbeatMs: 10_000,
      snapshot: { chunkRows: 10_000, via: 'direct', parallel: 2, rangeRows: 100_000 },
      lag: { warnBytes: 1024 ** 3, criticalBytes: 8 * 1024 ** 3 },
      verify: { onlineRowsPerSecond: 0 },
      configPath: undefined,
    });
    expect(Object.isFrozen(config.kafka.brokers)).toBe(true);
    expect(Object.isFrozen(config.api)).toBe(true);
  });

  it('lets env override the file', () => {
    const config = resolveConfig(
      {
        blue: { url: 'postgres://a@h:1/x' },
        api: { port: 9000 },
        kafka: { brokers: ['k:1'] },
        slot: 'file_slot',
      },
      {
        env: {
          TEAL_BLUE_URL: 'postgres://u:pw@blue:5432/app',
          TEAL_GREEN_URL: 'postgresql://u@green/app',
          TEAL_KAFKA_BROKERS: 'b1:9092, b2:9093,',
          TEAL_API_HOST: '0.0.0.0',
          TEAL_API_PORT: '9100',
          TEAL_API_TOKEN: 's3cret-token',
          TEAL_TOPIC_PREFIX: 'acme.teal',
          TEAL_SLOT: 'env_slot',
          TEAL_PUBLICATION: 'env_pub',
        },
      },
    );
    expect(config.blue.url).toBe('postgres://u:pw@blue:5432/app');
    expect(config.green.url).toBe('postgresql://u@green/app');
    expect(config.kafka.brokers).toEqual(['b1:9092', 'b2:9093']);
    expect(config.api).toEqual({ host: '0.0.0.0', port: 9100, token: 's3cret-token' });
    expect(config.kafka.topicPrefix).toBe('acme.teal');
    expect(config.slot).toBe('env_slot');
    expect(config.publication).toBe('env_pub');
  });

  it('writes Kafka headers only when asked, by config or TEAL_KAFKA_HEADERS', () => {
    expect(resolveConfig({ kafka: { headers: true } }).kafka.headers).toBe(true);
    expect(
      resolveConfig({ kafka: { headers: true } }, { env: { TEAL_KAFKA_HEADERS: '0' } }).kafka.headers,
    ).toBe(false);
    expect(resolveConfig(undefined, { env: { TEAL_KAFKA_HEADERS: '1' } }).kafka.headers).toBe(true);
    expect(() => resolveConfig(undefined, { env: { TEAL_KAFKA_HEADERS: 'yes' } })).toThrow(
      /TEAL_KAFKA_HEADERS: expected 1, 0, true or false, got "yes"/,
    );
    expect(() => resolveConfig({ kafka: { headers: 'on' } } as never)).toThrow(
      /kafka.headers: expected true or false/,
    );
  });

  it('picks the Kafka client by config or TEAL_KAFKA_CLIENT (env wins); an unknown name is refused', () => {
    expect(resolveConfig({ kafka: { client: 'kafkajs' } }).kafka.client).toBe('kafkajs');
    expect(
      resolveConfig({ kafka: { client: 'kafkajs' } }, { env: { TEAL_KAFKA_CLIENT: ' platformatic ' } }).kafka
        .client,
    ).toBe('platformatic');
    expect(
      resolveConfig({ kafka: { client: 'kafkajs' } }, { env: { TEAL_KAFKA_CLIENT: ' ' } }).kafka.client,
    ).toBe('kafkajs');
    expect(problemsOf(undefined, { TEAL_KAFKA_CLIENT: 'rdkafka' })).toEqual([
      'env TEAL_KAFKA_CLIENT: "rdkafka" is not a Kafka client teal knows: set it to kafkajs or platformatic',
    ]);
    expect(problemsOf({ kafka: { client: 'librdkafka' } })).toEqual([
      'kafka.client: "librdkafka" is not a Kafka client teal knows: set it to kafkajs or platformatic',
    ]);
  });

  it('kafkaClientFromEnv reads TEAL_KAFKA_CLIENT alone, with the default when unset', () => {
    expect(kafkaClientFromEnv({})).toBe('platformatic');
    expect(kafkaClientFromEnv({ TEAL_KAFKA_CLIENT: 'kafkajs' })).toBe('kafkajs');
    expect(() => kafkaClientFromEnv({ TEAL_KAFKA_CLIENT: 'rdkafka' })).toThrow(
      'TEAL_KAFKA_CLIENT=rdkafka is not a Kafka client teal knows: set it to kafkajs or platformatic, or unset it',
    );
  });

  it('normalizes table names to schema.table', () => {
    const config = resolveConfig({
      tables: ['users', 'app.orders'],
      transforms: { users: { renameTo: 'people' } },
      keyColumns: { 'app.orders': ['tenant', 'id'] },
    });
    expect(config.tables).toEqual(['public.users', 'app.orders']);
    expect(Object.keys(config.transforms)).toEqual(['public.users']);
    expect(config.transforms['public.users'].renameTo).toBe('public.people');
    expect(config.keyColumns).toEqual({ 'app.orders': ['tenant', 'id'] });
  });

  it('lists every problem with its path and what to write instead', () => {
    const problems = problemsOf({
      blu: {},
      slot: 'Teal-Slot',
      api: { port: 70000 },
      kafka: { brokers: ['nohost'], partitions: 0 },
      apply: { onMissingColumn: 'ignored', batchSize: 1.5 },
      transforms: {
        'public.users': {
          dropColumns: [42],
          derive: { email_domain: 'lower(email)' },
          renameColumn: {},
          cast: { age: 'int; drop table x' },
        },
      },
      heartbeatMs: '1000',
    });
    expect(problems).toEqual([
      'blu: unknown key; did you mean "blue"? (allowed: blue, green, kafka, slot, publication, api, tables, transforms, apply, keyColumns, ordered, heartbeatMs, snapshot, lag, verify)',
      'kafka.brokers[0]: expected "host:port" like "127.0.0.1:9092", got "nohost"',
      'kafka.partitions: expected an integer from 1 to 1000, got 0',
      'slot: expected a slot name of 1-63 lowercase letters, digits or "_" like "teal_slot", got "Teal-Slot"',
      'api.port: expected an integer from 0 to 65535, got 70000',
      'transforms["public.users"].renameColumn: unknown key; did you mean "renameColumns"? (allowed: renameTo, renameColumns, dropColumns, cast, derive, filter, reverse)',
      'transforms["public.users"].dropColumns[0]: expected a column name string, got 42',
      'transforms["public.users"].derive.email_domain: expected a function (row) => string | null, got "lower(email)"',
      'transforms["public.users"].cast.age: expected a Postgres type name like "numeric(12,2)" or "text[]", got "int; drop table x"',
      "apply.onMissingColumn: expected one of 'fail', 'ignore', 'add', got \"ignored\"; did you mean 'ignore'?",
      'apply.batchSize: expected an integer from 1 to 100000, got 1.5',
      'heartbeatMs: expected an integer from 100 to 3600000, got "1000"',
    ]);
  });

  it('reads kafka.maxMessageBytes (file or env) and per-table ordered flags', () => {
    const config = resolveConfig(
      { kafka: { maxMessageBytes: 2 * 1024 ** 2 }, ordered: { users: true, 'app.log': false } },
      { env: { TEAL_KAFKA_MAX_MESSAGE_BYTES: String(64 * 1024 ** 2) } },
    );
    expect(config.kafka.maxMessageBytes).toBe(64 * 1024 ** 2);
    expect(config.ordered).toEqual({ 'public.users': true, 'app.log': false });
    expect(problemsOf({ kafka: { maxMessageBytes: 1000 }, ordered: { users: 'yes' } })).toEqual([
      'kafka.maxMessageBytes: expected an integer from 1048576 to 2147483647, got 1000',
      'ordered["users"]: expected true or false, got "yes"',
    ]);
  });

  it('puts the problem count and list in the message', () => {
    expect(() => resolveConfig({ slot: 'x-y' })).toThrow(
      /^invalid teal configuration \(1 problem\):\n {2}- slot: expected a slot name/,
    );
  });

  it('never shows a password or token', () => {
    const problems = problemsOf(
      { api: { host: '0.0.0.0' } },
      { TEAL_BLUE_URL: 'mysql://admin:hunter2@db/app', TEAL_API_PORT: 'http' },
    );
    expect(problems.join('\n')).not.toContain('hunter2');
    expect(problems).toEqual([
      'env TEAL_BLUE_URL: expected a connection URL like "postgres://user@host:5432/database", got "mysql://admin:***@db/app"',
      'env TEAL_API_PORT: expected an integer from 0 to 65535, got "http"',
      'api.host: "0.0.0.0" is not a loopback address, so the API requires a bearer token: set TEAL_API_TOKEN',
    ]);
    expect(problemsOf({ api: { token: '' } })).toEqual([
      'api.token: expected a non-empty string (better: leave it out and set TEAL_API_TOKEN)',
    ]);
  });

  it('rejects conflicting table and column mappings', () => {
    expect(
      problemsOf({
        tables: ['users', 'people', 'orders'],
        transforms: {
          users: {
            renameTo: 'people',
            renameColumns: { a: 'x', b: 'x' },
            dropColumns: ['a'],
            derive: { x: () => null },
          },
          'public.users': {},
          ordres: {},
        },
      }),
    ).toEqual([
      'transforms["users"].renameColumns.b: "a" is renamed to "x" too',
      'transforms["users"].dropColumns[0]: "a" is both renamed and dropped; keep one',
      'transforms["users"].derive.x: "a" is renamed to "x" too; pick another name',
      'transforms["public.users"]: public.users has a transform twice (as "users" and "public.users"); keep one',
      'transforms["ordres"]: public.ordres is not in tables; add it there or did you mean "public.orders"?',
      'transforms["users"].renameTo: public.people is also replicated under its own name; rename one of them',
    ]);
  });

  it('rejects keyColumns that are not lists of names, and lag thresholds out of order', () => {
    expect(
      problemsOf({ keyColumns: { t: [], u: ['a', 'a'] }, lag: { warnBytes: 10, criticalBytes: 5 } }),
    ).toEqual([
      'keyColumns["t"]: expected a non-empty list of column names, got an array of 0',
      'keyColumns["u"][1]: column "a" is listed twice',
      'lag.warnBytes: must be below lag.criticalBytes (5), got 10',
    ]);
  });
});

describe('loadConfig', () => {
  it('uses defaults and env when there is no teal.config.ts', async () => {
    const config = await loadConfig({ cwd: tempDir(), env: { TEAL_API_PORT: '0' } });
    expect(config.api.port).toBe(0);
    expect(config.configPath).toBeUndefined();
  });

  it('imports teal.config.ts from the working directory, functions included', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'teal.config.ts'),
      `const domain = (r: Record<string, string | null>): string | null => r.email?.split('@')[1]?.toLowerCase() ?? null;
export default { slot: 'from_file', transforms: { users: { derive: { email_domain: domain } } } };\n`,
    );
    const config = await loadConfig({ cwd: dir, env: {} });
    expect(config.slot).toBe('from_file');
    expect(config.configPath).toBe(join(dir, 'teal.config.ts'));
    expect(config.transforms['public.users'].derive?.email_domain({ email: 'a@X.org' })).toBe('x.org');
  });

  it('loads an ESM config that imports defineConfig from @teal/config', async () => {
    const cwd = join(import.meta.dirname, 'fixtures');
    const config = await loadConfig({ cwd, env: {} });
    expect(config.tables).toEqual(['public.users']);
    expect(config.transforms['public.users'].renameColumns).toEqual({ name: 'full_name' });
    expect(config.transforms['public.users'].derive?.email_domain({ email: 'a@B.io' })).toBe('b.io');
  });

  it('loads --config FILE relative to cwd, and env still wins', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'other.ts'),
      `export default { slot: 'other_slot', publication: 'other_pub' };\n`,
    );
    const config = await loadConfig({ cwd: dir, configPath: 'other.ts', env: { TEAL_SLOT: 'env_slot' } });
    expect(config.slot).toBe('env_slot');
    expect(config.publication).toBe('other_pub');
  });

  it('says what to do when the file is missing, broken, or has no default export', async () => {
    const dir = tempDir();
    await expect(loadConfig({ cwd: dir, configPath: 'nope.ts' })).rejects.toThrow(/nope\.ts does not exist/);
    writeFileSync(join(dir, 'broken.ts'), 'export default {{;\n');
    await expect(loadConfig({ cwd: dir, configPath: 'broken.ts' })).rejects.toMatchObject({
      code: 'TEAL_CONFIG_INVALID',
      message: expect.stringMatching(/^could not load .*broken\.ts/),
    });
    writeFileSync(join(dir, 'named.ts'), 'export const config = {};\n');
    await expect(loadConfig({ cwd: dir, configPath: 'named.ts' })).rejects.toThrow(/has no default export/);
    writeFileSync(join(dir, 'bad.ts'), `export default { slot: 'Bad Slot' };\n`);
    await expect(loadConfig({ cwd: dir, configPath: 'bad.ts' })).rejects.toThrow(
      /in .*bad\.ts \(1 problem\)/,
    );
  });

  it('reads --config from argv', () => {
    expect(configPathFromArgv(['verify', '--config', 'x.ts'])).toBe('x.ts');
    expect(configPathFromArgv(['--config=y.ts'])).toBe('y.ts');
    expect(configPathFromArgv(['run'])).toBeUndefined();
  });
});
