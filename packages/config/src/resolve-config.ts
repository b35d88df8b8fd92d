import { TealError } from '@teal/errors';
import { DEFAULTS } from './defaults.ts';
import type { ResolvedConfig } from './define-config.ts';
import { type Env, Settings } from './env-overrides.ts';
import { kafkaClient } from './kafka-client.ts';
import { kafkaSecuritySections, resolveKafkaSasl, resolveKafkaTls } from './kafka-security.ts';
import { resolveKeyColumns, resolveOrdered, resolveTables, resolveTransforms } from './resolve-tables.ts';
import {
  bool,
  checkKeys,
  deepFreeze,
  describeValue,
  int,
  isObj,
  type Obj,
  oneOf,
  Problems,
  postgresUrl,
  section,
  str,
} from './validate.ts';

// Validation runs once, over the whole config, and reports every problem at once with its
// path and what to write instead; the result is defaulted and frozen, so no part of teal
// re-checks or mutates it. Secrets (URL passwords, the API token) never appear in messages.

export { DEFAULTS } from './defaults.ts';
export { describeValue } from './validate.ts';

export interface ResolveOptions {
  /** Environment overrides (TEAL_*, env-overrides.ts); default none. */
  env?: Env;
  configPath?: string;
}

const TOP_KEYS = [
  'blue',
  'green',
  'kafka',
  'slot',
  'publication',
  'api',
  'tables',
  'transforms',
  'apply',
  'keyColumns',
  'ordered',
  'heartbeatMs',
  'snapshot',
  'lag',
  'verify',
];
const SLOT = /^[a-z0-9_]{1,63}$/;
const PUBLICATION = /^[a-z_][a-z0-9_$]{0,62}$/;
const TOPIC_PREFIX = /^[A-Za-z0-9_-](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9_-])?$/;
const BROKER = /^(?:\[[0-9A-Fa-f:.]+\]|[^\s:,[\]]+):(\d{1,5})$/;

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function brokerList(p: Problems, list: unknown, path: string): string[] | undefined {
  if (list === undefined) return undefined;
  if (!Array.isArray(list) || list.length === 0) {
    p.add(path, `expected a non-empty list of "host:port", got ${describeValue(list)}`);
    return undefined;
  }
  const brokers: string[] = [];
  list.forEach((b: unknown, i: number) => {
    const ok = typeof b === 'string' && BROKER.test(b) && Number(BROKER.exec(b)?.[1]) <= 65535;
    if (ok) brokers.push(b as string);
    else p.add(`${path}[${i}]`, `expected "host:port" like "127.0.0.1:9092", got ${describeValue(b)}`);
  });
  return brokers;
}

/**
 * Validates a config (the default export of teal.config.ts, or undefined for none), applies
 * env overrides and defaults, and freezes the result. Throws TealError TEAL_CONFIG_INVALID
 * listing every problem.
 */
export function resolveConfig(input: unknown, options: ResolveOptions = {}): ResolvedConfig {
  const p = new Problems();
  const where = options.configPath ? ` in ${options.configPath}` : '';
  let raw: Obj = {};
  if (input !== undefined) {
    if (isObj(input)) raw = input;
    else
      p.add(
        'config',
        `expected an object (export default defineConfig({ ... })), got ${describeValue(input)}`,
      );
  }
  checkKeys(p, raw, '', TOP_KEYS);

  const sections = {
    '': raw,
    blue: section(p, raw, 'blue', ['url']),
    green: section(p, raw, 'green', ['url']),
    kafka: section(p, raw, 'kafka', [
      'brokers',
      'topicPrefix',
      'partitions',
      'headers',
      'client',
      'maxMessageBytes',
      'tls',
      'sasl',
    ]),
    api: section(p, raw, 'api', ['host', 'port', 'token']),
    apply: section(p, raw, 'apply', [
      'onMissingColumn',
      'createTables',
      'sessionReplicationRole',
      'batchSize',
    ]),
    snapshot: section(p, raw, 'snapshot', ['chunkRows', 'via', 'parallel', 'rangeRows']),
    lag: section(p, raw, 'lag', ['warnBytes', 'criticalBytes']),
    verify: section(p, raw, 'verify', ['onlineRowsPerSecond']),
  };
  const kafkaSecurity = kafkaSecuritySections(p, sections.kafka);
  // Each read gives the value (env over file) and the name to report a problem under.
  const settings = new Settings(
    p,
    { ...sections, 'kafka.tls': kafkaSecurity.tls, 'kafka.sasl': kafkaSecurity.sasl },
    options.env ?? {},
  );
  const read = (path: string) => settings.read(path);

  const blueUrl = postgresUrl(p, ...read('blue.url'));
  const greenUrl = postgresUrl(p, ...read('green.url'));

  const brokers = brokerList(p, ...read('kafka.brokers'));
  const topicPrefix = str(
    p,
    ...read('kafka.topicPrefix'),
    'a Kafka topic prefix of letters, digits, ".", "_" or "-" like "teal"',
    (s) => TOPIC_PREFIX.test(s),
  );
  const partitions = int(p, ...read('kafka.partitions'), 1, 1000);
  // Headers repeat fields of the Avro value (position, op, xid): off unless asked for.
  const headers = bool(p, ...read('kafka.headers')) ?? false;
  const client = kafkaClient(p, ...read('kafka.client'));
  // Below 1 MiB a row of ordinary size fails; Kafka's own ceiling is an int32.
  const maxMessageBytes = int(p, ...read('kafka.maxMessageBytes'), 1024 ** 2, 2 ** 31 - 1);
  const tls = resolveKafkaTls(p, read, options.configPath);
  const sasl = resolveKafkaSasl(p, read, options.configPath);

  const slot = str(
    p,
    ...read('slot'),
    'a slot name of 1-63 lowercase letters, digits or "_" like "teal_slot"',
    (s) => SLOT.test(s),
  );
  const publication = str(
    p,
    ...read('publication'),
    'a lowercase identifier (letters, digits, "_", at most 63) like "teal_pub"',
    (s) => PUBLICATION.test(s),
  );

  const [hostValue, hostFrom] = read('api.host');
  const apiHost = str(p, hostValue, hostFrom, 'a host or address to bind like "127.0.0.1"', (s) =>
    /^[^\s/]+$/.test(s),
  );
  const apiPort = int(p, ...read('api.port'), 0, 65535);
  const [token, tokenFrom] = read('api.token');
  let apiToken: string | undefined;
  // TEAL_API_TOKEN is taken as it is; only a token written in the file is checked (and named).
  if (tokenFrom !== 'api.token') apiToken = token as string;
  else if (token !== undefined) {
    if (typeof token !== 'string' || token.trim() === '') {
      p.add('api.token', 'expected a non-empty string (better: leave it out and set TEAL_API_TOKEN)');
    } else apiToken = token;
  }
  const host = apiHost ?? DEFAULTS.apiHost;
  if (!isLoopback(host) && apiToken === undefined) {
    p.add(
      hostFrom,
      `${JSON.stringify(host)} is not a loopback address, so the API requires a bearer token: set TEAL_API_TOKEN`,
    );
  }

  const tables = resolveTables(p, raw.tables);
  const transforms = resolveTransforms(p, raw.transforms, tables);
  const keyColumns = resolveKeyColumns(p, raw.keyColumns);
  const ordered = resolveOrdered(p, raw.ordered);

  const warnBytes = int(p, ...read('lag.warnBytes'), 1, Number.MAX_SAFE_INTEGER) ?? DEFAULTS.lagWarnBytes;
  const criticalBytes =
    int(p, ...read('lag.criticalBytes'), 1, Number.MAX_SAFE_INTEGER) ??
    Math.max(DEFAULTS.lagCriticalBytes, warnBytes * 2);
  if (warnBytes >= criticalBytes) {
    p.add('lag.warnBytes', `must be below lag.criticalBytes (${criticalBytes}), got ${warnBytes}`);
  }

  const onMissingColumn = oneOf(p, ...read('apply.onMissingColumn'), ['fail', 'ignore', 'add']);
  const createTables = bool(p, ...read('apply.createTables'));
  const sessionReplicationRole = oneOf(p, ...read('apply.sessionReplicationRole'), ['origin', 'replica']);
  const batchSize = int(p, ...read('apply.batchSize'), 1, 100_000);
  const heartbeatMs = int(p, ...read('heartbeatMs'), 100, 3_600_000);
  const chunkRows = int(p, ...read('snapshot.chunkRows'), 1, 10_000_000);
  const snapshotVia = oneOf(p, ...read('snapshot.via'), ['direct', 'kafka']);
  const snapshotParallel = int(p, ...read('snapshot.parallel'), 1, 64);
  const rangeRows = int(p, ...read('snapshot.rangeRows'), 1, 100_000_000);
  const onlineRowsPerSecond = int(p, ...read('verify.onlineRowsPerSecond'), 0, 100_000_000);

  if (p.list.length > 0) {
    throw new TealError(
      'TEAL_CONFIG_INVALID',
      `invalid teal configuration${where} (${p.list.length} problem${p.list.length === 1 ? '' : 's'}):\n  - ${p.list.join('\n  - ')}`,
      { status: 400, details: { problems: p.list } },
    );
  }

  return deepFreeze({
    blue: { url: blueUrl ?? DEFAULTS.blueUrl },
    green: { url: greenUrl ?? DEFAULTS.greenUrl },
    kafka: {
      brokers: brokers ?? [...DEFAULTS.kafkaBrokers],
      topicPrefix: topicPrefix ?? DEFAULTS.topicPrefix,
      partitions: partitions ?? DEFAULTS.partitions,
      headers,
      client: client ?? DEFAULTS.kafkaClient,
      maxMessageBytes: maxMessageBytes ?? DEFAULTS.maxMessageBytes,
      tls,
      sasl,
    },
    slot: slot ?? DEFAULTS.slot,
    publication: publication ?? DEFAULTS.publication,
    api: { host, port: apiPort ?? DEFAULTS.apiPort, token: apiToken },
    tables,
    transforms,
    apply: {
      onMissingColumn: onMissingColumn ?? DEFAULTS.onMissingColumn,
      createTables: createTables ?? DEFAULTS.createTables,
      sessionReplicationRole: sessionReplicationRole ?? DEFAULTS.sessionReplicationRole,
      batchSize: batchSize ?? DEFAULTS.batchSize,
    },
    keyColumns,
    ordered,
    heartbeatMs: heartbeatMs ?? DEFAULTS.heartbeatMs,
    snapshot: {
      chunkRows: chunkRows ?? DEFAULTS.chunkRows,
      via: snapshotVia ?? DEFAULTS.snapshotVia,
      parallel: snapshotParallel ?? DEFAULTS.snapshotParallel,
      rangeRows: rangeRows ?? DEFAULTS.snapshotRangeRows,
    },
    lag: { warnBytes, criticalBytes },
    verify: { onlineRowsPerSecond: onlineRowsPerSecond ?? 0 },
    configPath: options.configPath,
  });
}
