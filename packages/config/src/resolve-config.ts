import { redactUrl, TealError } from '@teal/errors';
import type {
  OnMissingColumn,
  ResolvedConfig,
  SessionReplicationRole,
  TableTransform,
} from './define-config.ts';
import { didYouMean } from './did-you-mean.ts';
import { normalizeTableName, parseTableName } from './table-names.ts';

// Validation runs once, over the whole config, and reports every problem at once with its
// path and what to write instead; the result is defaulted and frozen, so no part of teal
// re-checks or mutates it. Secrets (URL passwords, the API token) never appear in messages.

export const DEFAULTS = Object.freeze({
  blueUrl: 'postgres://postgres@127.0.0.1:5433/app',
  greenUrl: 'postgres://postgres@127.0.0.1:5434/app',
  kafkaBrokers: ['127.0.0.1:9092'],
  topicPrefix: 'teal',
  partitions: 4,
  slot: 'teal_slot',
  publication: 'teal_pub',
  apiHost: '127.0.0.1',
  apiPort: 8080,
  onMissingColumn: 'fail' as OnMissingColumn,
  createTables: false,
  sessionReplicationRole: 'replica' as SessionReplicationRole,
  batchSize: 5000,
  heartbeatMs: 10_000,
  chunkRows: 10_000,
  lagWarnBytes: 1024 ** 3,
  lagCriticalBytes: 8 * 1024 ** 3,
});

export interface ResolveOptions {
  /** Environment overrides (TEAL_*); default none. */
  env?: Record<string, string | undefined>;
  configPath?: string;
}

type Obj = Record<string, unknown>;

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
  'heartbeatMs',
  'snapshot',
  'lag',
];
const TRANSFORM_KEYS = ['renameTo', 'renameColumns', 'dropColumns', 'cast', 'derive', 'filter'];
const SLOT = /^[a-z0-9_]{1,63}$/;
const PUBLICATION = /^[a-z_][a-z0-9_$]{0,62}$/;
const TOPIC_PREFIX = /^[A-Za-z0-9_-](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9_-])?$/;
const BROKER = /^(?:\[[0-9A-Fa-f:.]+\]|[^\s:,[\]]+):(\d{1,5})$/;
// A type name that can follow `::` safely: words, dots, typmods, array brackets, quoted names.
const TYPE_NAME =
  /^(?:[A-Za-z_][A-Za-z0-9_$]*|"[^"]+")(?:\s*\.\s*(?:[A-Za-z_][A-Za-z0-9_$]*|"[^"]+"))?(?:\s+[A-Za-z]+)*(?:\s*\(\s*\d+(?:\s*,\s*-?\d+)?\s*\))?(?:\s+[A-Za-z]+)*(?:\s*\[\d*\])*$/;

/** Accumulates problems as "path: what is wrong, what to write". */
class Problems {
  readonly list: string[] = [];
  add(path: string, message: string): void {
    this.list.push(`${path}: ${message}`);
  }
}

/** How a value reads in an error message (never the value itself when it may be secret). */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'string')
    return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === 'object') return 'an object';
  return String(value);
}

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function keyPath(base: string, key: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`;
}

function checkKeys(p: Problems, obj: Obj, path: string, allowed: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (allowed.includes(key)) continue;
    const hint = didYouMean(key, allowed);
    p.add(
      path ? keyPath(path, key) : key,
      `unknown key${hint ? `; did you mean "${hint}"?` : ''} (allowed: ${allowed.join(', ')})`,
    );
  }
}

/** The object at obj[key], or {} (with a problem) when it is present but not an object. */
function section(p: Problems, obj: Obj, key: string, path: string, allowed: readonly string[]): Obj {
  const value = obj[key];
  if (value === undefined) return {};
  if (!isObj(value)) {
    p.add(path, `expected an object { ${allowed.join(', ')} }, got ${describeValue(value)}`);
    return {};
  }
  checkKeys(p, value, path, allowed);
  return value;
}

function str(
  p: Problems,
  value: unknown,
  path: string,
  what: string,
  test?: (s: string) => boolean,
): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || (test && !test(value))) {
    p.add(path, `expected ${what}, got ${describeValue(value)}`);
    return undefined;
  }
  return value;
}

function int(p: Problems, value: unknown, path: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    p.add(path, `expected an integer from ${min} to ${max}, got ${describeValue(value)}`);
    return undefined;
  }
  return value;
}

function oneOf<T extends string>(
  p: Problems,
  value: unknown,
  path: string,
  options: readonly T[],
): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !options.includes(value as T)) {
    const hint = typeof value === 'string' ? didYouMean(value, options) : undefined;
    p.add(
      path,
      `expected one of ${options.map((o) => `'${o}'`).join(', ')}, got ${describeValue(value)}${hint ? `; did you mean '${hint}'?` : ''}`,
    );
    return undefined;
  }
  return value as T;
}

function columnName(value: unknown): value is string {
  return (
    typeof value === 'string' && value.length > 0 && Buffer.byteLength(value) <= 63 && !value.includes('\0')
  );
}

function postgresUrl(p: Problems, value: unknown, path: string): string | undefined {
  if (value === undefined) return undefined;
  const shown = typeof value === 'string' ? JSON.stringify(redactUrl(value)) : describeValue(value);
  let ok = false;
  if (typeof value === 'string') {
    try {
      const url = new URL(value);
      ok = url.protocol === 'postgres:' || url.protocol === 'postgresql:';
    } catch {
      ok = false;
    }
  }
  if (!ok) {
    p.add(path, `expected a connection URL like "postgres://user@host:5432/database", got ${shown}`);
    return undefined;
  }
  return value as string;
}

function fromEnv(env: Record<string, string | undefined>, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

/**
 * Validates a config (the default export of teal.config.ts, or undefined for none), applies
 * env overrides and defaults, and freezes the result. Throws TealError TEAL_CONFIG_INVALID
 * listing every problem.
 */
export function resolveConfig(input: unknown, options: ResolveOptions = {}): ResolvedConfig {
  const env = options.env ?? {};
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

  const blue = section(p, raw, 'blue', 'blue', ['url']);
  const green = section(p, raw, 'green', 'green', ['url']);
  const kafka = section(p, raw, 'kafka', 'kafka', ['brokers', 'topicPrefix', 'partitions', 'headers']);
  const api = section(p, raw, 'api', 'api', ['host', 'port', 'token']);
  const apply = section(p, raw, 'apply', 'apply', [
    'onMissingColumn',
    'createTables',
    'sessionReplicationRole',
    'batchSize',
  ]);
  const snapshot = section(p, raw, 'snapshot', 'snapshot', ['chunkRows']);
  const lag = section(p, raw, 'lag', 'lag', ['warnBytes', 'criticalBytes']);

  const envBlue = fromEnv(env, 'TEAL_BLUE_URL');
  const blueUrl = envBlue
    ? postgresUrl(p, envBlue, 'env TEAL_BLUE_URL')
    : postgresUrl(p, blue.url, 'blue.url');
  const envGreen = fromEnv(env, 'TEAL_GREEN_URL');
  const greenUrl = envGreen
    ? postgresUrl(p, envGreen, 'env TEAL_GREEN_URL')
    : postgresUrl(p, green.url, 'green.url');

  let brokers: string[] | undefined;
  const envBrokers = fromEnv(env, 'TEAL_KAFKA_BROKERS');
  const brokerList: unknown = envBrokers
    ? envBrokers
        .split(',')
        .map((b) => b.trim())
        .filter((b) => b !== '')
    : kafka.brokers;
  const brokersPath = envBrokers ? 'env TEAL_KAFKA_BROKERS' : 'kafka.brokers';
  if (brokerList !== undefined) {
    if (!Array.isArray(brokerList) || brokerList.length === 0) {
      p.add(brokersPath, `expected a non-empty list of "host:port", got ${describeValue(brokerList)}`);
    } else {
      brokers = [];
      brokerList.forEach((b: unknown, i: number) => {
        const ok = typeof b === 'string' && BROKER.test(b) && Number(BROKER.exec(b)?.[1]) <= 65535;
        if (ok) brokers?.push(b as string);
        else
          p.add(
            `${brokersPath}[${i}]`,
            `expected "host:port" like "127.0.0.1:9092", got ${describeValue(b)}`,
          );
      });
    }
  }

  const envPrefix = fromEnv(env, 'TEAL_TOPIC_PREFIX');
  const topicPrefix = str(
    p,
    envPrefix ?? kafka.topicPrefix,
    envPrefix ? 'env TEAL_TOPIC_PREFIX' : 'kafka.topicPrefix',
    'a Kafka topic prefix of letters, digits, ".", "_" or "-" like "teal"',
    (s) => TOPIC_PREFIX.test(s),
  );
  const partitions = int(p, kafka.partitions, 'kafka.partitions', 1, 1000);
  // Headers repeat fields of the Avro value (position, op, xid): off unless asked for.
  let headers = false;
  const envHeaders = fromEnv(env, 'TEAL_KAFKA_HEADERS');
  if (envHeaders !== undefined) {
    if (envHeaders === '1' || envHeaders === 'true') headers = true;
    else if (envHeaders !== '0' && envHeaders !== 'false')
      p.add('env TEAL_KAFKA_HEADERS', `expected 1, 0, true or false, got ${describeValue(envHeaders)}`);
  } else if (kafka.headers !== undefined) {
    if (typeof kafka.headers === 'boolean') headers = kafka.headers;
    else p.add('kafka.headers', `expected true or false, got ${describeValue(kafka.headers)}`);
  }

  const envSlot = fromEnv(env, 'TEAL_SLOT');
  const slot = str(
    p,
    envSlot ?? raw.slot,
    envSlot ? 'env TEAL_SLOT' : 'slot',
    'a slot name of 1-63 lowercase letters, digits or "_" like "teal_slot"',
    (s) => SLOT.test(s),
  );
  const envPub = fromEnv(env, 'TEAL_PUBLICATION');
  const publication = str(
    p,
    envPub ?? raw.publication,
    envPub ? 'env TEAL_PUBLICATION' : 'publication',
    'a lowercase identifier (letters, digits, "_", at most 63) like "teal_pub"',
    (s) => PUBLICATION.test(s),
  );

  const envHost = fromEnv(env, 'TEAL_API_HOST');
  const apiHost = str(
    p,
    envHost ?? api.host,
    envHost ? 'env TEAL_API_HOST' : 'api.host',
    'a host or address to bind like "127.0.0.1"',
    (s) => /^[^\s/]+$/.test(s),
  );
  const envPort = fromEnv(env, 'TEAL_API_PORT');
  let apiPort: number | undefined;
  if (envPort !== undefined) {
    apiPort = int(p, /^\d{1,6}$/.test(envPort) ? Number(envPort) : envPort, 'env TEAL_API_PORT', 0, 65535);
  } else {
    apiPort = int(p, api.port, 'api.port', 0, 65535);
  }
  const envToken = fromEnv(env, 'TEAL_API_TOKEN');
  let apiToken: string | undefined = envToken;
  if (apiToken === undefined && api.token !== undefined) {
    if (typeof api.token !== 'string' || api.token.trim() === '') {
      p.add('api.token', 'expected a non-empty string (better: leave it out and set TEAL_API_TOKEN)');
    } else apiToken = api.token;
  }
  const host = apiHost ?? DEFAULTS.apiHost;
  if (!isLoopback(host) && apiToken === undefined) {
    p.add(
      envHost ? 'env TEAL_API_HOST' : 'api.host',
      `${JSON.stringify(host)} is not a loopback address, so the API requires a bearer token: set TEAL_API_TOKEN`,
    );
  }

  // Tables: explicit list or 'all'.
  let tables: string[] | 'all' = 'all';
  if (raw.tables !== undefined) {
    if (!Array.isArray(raw.tables)) {
      p.add('tables', `expected a list of "schema.table" or "table", got ${describeValue(raw.tables)}`);
    } else {
      const seen = new Set<string>();
      tables = [];
      raw.tables.forEach((t: unknown, i: number) => {
        if (typeof t !== 'string' || !parseTableName(t)) {
          p.add(`tables[${i}]`, `expected a table name "schema.table" or "table", got ${describeValue(t)}`);
          return;
        }
        const name = normalizeTableName(t);
        if (seen.has(name)) p.add(`tables[${i}]`, `${name} is listed twice; remove one`);
        seen.add(name);
        (tables as string[]).push(name);
      });
    }
  }

  const transforms = resolveTransforms(p, raw.transforms, tables);
  const keyColumns = resolveKeyColumns(p, raw.keyColumns);

  const warnBytes =
    int(p, lag.warnBytes, 'lag.warnBytes', 1, Number.MAX_SAFE_INTEGER) ?? DEFAULTS.lagWarnBytes;
  const criticalBytes =
    int(p, lag.criticalBytes, 'lag.criticalBytes', 1, Number.MAX_SAFE_INTEGER) ??
    Math.max(DEFAULTS.lagCriticalBytes, warnBytes * 2);
  if (warnBytes >= criticalBytes) {
    p.add('lag.warnBytes', `must be below lag.criticalBytes (${criticalBytes}), got ${warnBytes}`);
  }

  const onMissingColumn = oneOf(p, apply.onMissingColumn, 'apply.onMissingColumn', ['fail', 'ignore', 'add']);
  if (apply.createTables !== undefined && typeof apply.createTables !== 'boolean') {
    p.add('apply.createTables', `expected true or false, got ${describeValue(apply.createTables)}`);
  }
  const sessionReplicationRole = oneOf(p, apply.sessionReplicationRole, 'apply.sessionReplicationRole', [
    'origin',
    'replica',
  ]);
  const batchSize = int(p, apply.batchSize, 'apply.batchSize', 1, 100_000);
  const heartbeatMs = int(p, raw.heartbeatMs, 'heartbeatMs', 100, 3_600_000);
  const chunkRows = int(p, snapshot.chunkRows, 'snapshot.chunkRows', 1, 10_000_000);

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
    },
    slot: slot ?? DEFAULTS.slot,
    publication: publication ?? DEFAULTS.publication,
    api: { host, port: apiPort ?? DEFAULTS.apiPort, token: apiToken },
    tables,
    transforms,
    apply: {
      onMissingColumn: onMissingColumn ?? DEFAULTS.onMissingColumn,
      createTables: (apply.createTables as boolean | undefined) ?? DEFAULTS.createTables,
      sessionReplicationRole: sessionReplicationRole ?? DEFAULTS.sessionReplicationRole,
      batchSize: batchSize ?? DEFAULTS.batchSize,
    },
    keyColumns,
    heartbeatMs: heartbeatMs ?? DEFAULTS.heartbeatMs,
    snapshot: { chunkRows: chunkRows ?? DEFAULTS.chunkRows },
    lag: { warnBytes, criticalBytes },
    configPath: options.configPath,
  });
}

function resolveKeyColumns(p: Problems, input: unknown): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (input === undefined) return out;
  if (!isObj(input)) {
    p.add(
      'keyColumns',
      `expected an object { "schema.table": ["column", ...] }, got ${describeValue(input)}`,
    );
    return out;
  }
  for (const [tableKey, columns] of Object.entries(input)) {
    const path = `keyColumns[${JSON.stringify(tableKey)}]`;
    if (!parseTableName(tableKey)) {
      p.add(path, 'expected a table name "schema.table" or "table" as key');
      continue;
    }
    if (!Array.isArray(columns) || columns.length === 0) {
      p.add(path, `expected a non-empty list of column names, got ${describeValue(columns)}`);
      continue;
    }
    const list: string[] = [];
    columns.forEach((c: unknown, i: number) => {
      if (!columnName(c)) p.add(`${path}[${i}]`, `expected a column name string, got ${describeValue(c)}`);
      else if (list.includes(c)) p.add(`${path}[${i}]`, `column "${c}" is listed twice`);
      else list.push(c);
    });
    out[normalizeTableName(tableKey)] = list;
  }
  return out;
}

function resolveTransforms(
  p: Problems,
  input: unknown,
  tables: readonly string[] | 'all',
): Record<string, TableTransform> {
  const out: Record<string, TableTransform> = {};
  if (input === undefined) return out;
  if (!isObj(input)) {
    p.add(
      'transforms',
      `expected an object { "schema.table": { renameTo, ... } }, got ${describeValue(input)}`,
    );
    return out;
  }
  const targets = new Map<string, string>();
  const written = new Map<string, string>();
  for (const [tableKey, value] of Object.entries(input)) {
    const path = `transforms[${JSON.stringify(tableKey)}]`;
    if (!parseTableName(tableKey)) {
      p.add(path, 'expected a blue table name "schema.table" or "table" as key');
      continue;
    }
    const blueName = normalizeTableName(tableKey);
    const first = written.get(blueName);
    if (first !== undefined) {
      p.add(path, `${blueName} has a transform twice (as "${first}" and "${tableKey}"); keep one`);
      continue;
    }
    written.set(blueName, tableKey);
    if (tables !== 'all' && !tables.includes(blueName)) {
      const hint = didYouMean(blueName, tables);
      p.add(path, `${blueName} is not in tables; add it there${hint ? ` or did you mean "${hint}"?` : ''}`);
    }
    if (!isObj(value)) {
      p.add(path, `expected an object { ${TRANSFORM_KEYS.join(', ')} }, got ${describeValue(value)}`);
      continue;
    }
    checkKeys(p, value, path, TRANSFORM_KEYS);
    const t: TableTransform = {};

    if (value.renameTo !== undefined) {
      const target = str(
        p,
        value.renameTo,
        `${path}.renameTo`,
        'a green table name "schema.table" or "table"',
        (s) => Boolean(parseTableName(s)),
      );
      if (target !== undefined) t.renameTo = normalizeTableName(target);
    }
    const greenName = t.renameTo ?? blueName;
    const other = targets.get(greenName);
    if (other !== undefined)
      p.add(path, `${blueName} and ${other} would both write green table ${greenName}`);
    targets.set(greenName, blueName);

    const greenColumns = new Map<string, string>();
    if (value.renameColumns !== undefined) {
      if (!isObj(value.renameColumns)) {
        p.add(
          `${path}.renameColumns`,
          `expected { blueColumn: "greenColumn" }, got ${describeValue(value.renameColumns)}`,
        );
      } else {
        t.renameColumns = {};
        for (const [from, to] of Object.entries(value.renameColumns)) {
          const cpath = keyPath(`${path}.renameColumns`, from);
          if (!columnName(to)) p.add(cpath, `expected a green column name string, got ${describeValue(to)}`);
          else if (greenColumns.has(to)) p.add(cpath, `"${greenColumns.get(to)}" is renamed to "${to}" too`);
          else {
            greenColumns.set(to, from);
            t.renameColumns[from] = to;
          }
        }
      }
    }
    if (value.dropColumns !== undefined) {
      if (!Array.isArray(value.dropColumns)) {
        p.add(
          `${path}.dropColumns`,
          `expected a list of column names, got ${describeValue(value.dropColumns)}`,
        );
      } else {
        t.dropColumns = [];
        value.dropColumns.forEach((c: unknown, i: number) => {
          const cpath = `${path}.dropColumns[${i}]`;
          if (!columnName(c)) p.add(cpath, `expected a column name string, got ${describeValue(c)}`);
          else if (t.dropColumns?.includes(c)) p.add(cpath, `"${c}" is listed twice`);
          else if (t.renameColumns?.[c] !== undefined)
            p.add(cpath, `"${c}" is both renamed and dropped; keep one`);
          else t.dropColumns?.push(c);
        });
      }
    }
    if (value.derive !== undefined) {
      if (!isObj(value.derive)) {
        p.add(
          `${path}.derive`,
          `expected { column: (row) => text | null }, got ${describeValue(value.derive)}`,
        );
      } else {
        t.derive = {};
        for (const [column, fn] of Object.entries(value.derive)) {
          const cpath = keyPath(`${path}.derive`, column);
          if (!columnName(column)) p.add(cpath, 'expected a column name (1-63 bytes) as key');
          else if (typeof fn !== 'function') {
            p.add(cpath, `expected a function (row) => string | null, got ${describeValue(fn)}`);
          } else if (greenColumns.has(column)) {
            p.add(cpath, `"${greenColumns.get(column)}" is renamed to "${column}" too; pick another name`);
          } else t.derive[column] = fn as (row: Readonly<Record<string, string | null>>) => string | null;
        }
      }
    }
    if (value.cast !== undefined) {
      if (!isObj(value.cast)) {
        p.add(`${path}.cast`, `expected { column: "postgres type" }, got ${describeValue(value.cast)}`);
      } else {
        t.cast = {};
        for (const [column, type] of Object.entries(value.cast)) {
          const cpath = keyPath(`${path}.cast`, column);
          if (typeof type !== 'string' || !TYPE_NAME.test(type.trim())) {
            p.add(
              cpath,
              `expected a Postgres type name like "numeric(12,2)" or "text[]", got ${describeValue(type)}`,
            );
          } else if (t.dropColumns?.includes(column)) {
            p.add(cpath, `"${column}" is dropped; remove the cast or the drop`);
          } else if (greenColumns.has(column) && t.renameColumns?.[column] === undefined) {
            p.add(cpath, `name the column by its blue name "${greenColumns.get(column)}"`);
          } else t.cast[column] = type.trim();
        }
      }
    }
    if (value.filter !== undefined) {
      if (typeof value.filter !== 'function') {
        p.add(`${path}.filter`, `expected a function (row) => boolean, got ${describeValue(value.filter)}`);
      } else t.filter = value.filter as TableTransform['filter'];
    }
    out[blueName] = t;
  }
  // A renamed table must not land on a blue table that keeps its own name.
  for (const [greenName, blueName] of targets) {
    if (greenName !== blueName && Object.hasOwn(out, greenName) && out[greenName].renameTo === undefined) {
      p.add(
        `transforms[${JSON.stringify(written.get(blueName))}].renameTo`,
        `${greenName} is also blue table ${greenName}'s target; rename one of them`,
      );
    }
    if (
      greenName !== blueName &&
      tables !== 'all' &&
      tables.includes(greenName) &&
      !Object.hasOwn(out, greenName)
    ) {
      p.add(
        `transforms[${JSON.stringify(written.get(blueName))}].renameTo`,
        `${greenName} is also replicated under its own name; rename one of them`,
      );
    }
  }
  return out;
}

/**
 * The key of a row in green's `teal.control` for this pipeline. Several pipelines may share
 * one green (each with its own topic prefix), so pause state and status rows are per prefix.
 */
export function controlKey(
  kind: 'paused' | 'producer' | 'consumer' | 'consumer_blocked',
  config: ResolvedConfig,
): string {
  return `${kind}:${config.kafka.topicPrefix}`;
}
