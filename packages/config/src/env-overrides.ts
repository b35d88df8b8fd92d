import { describeValue, type Obj, type Problems } from './validate.ts';

export type Env = Readonly<Record<string, string | undefined>>;

/** What a variable's parser returns for text that is not one of its values. */
class Invalid {
  constructor(readonly expected: string) {}
}

interface EnvOverride {
  readonly name: string;
  /** The teal.config.ts key it replaces, "section.key" or "key". */
  readonly path: string;
  /**
   * Text -> the value the file would hold, which the file's own check then validates.
   * undefined: counts as unset; Invalid: refused here, with what the variable takes.
   */
  readonly parse?: (text: string) => unknown;
}

const commaList = (text: string) =>
  text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');

const flag = (text: string) =>
  text === '1' || text === 'true'
    ? true
    : text === '0' || text === 'false'
      ? false
      : new Invalid('1, 0, true or false');

// Digits become a number for the port's range check; other text is shown as it was written.
const port = (text: string) => (/^\d{1,6}$/.test(text) ? Number(text) : text);
const count = (text: string) => (/^\d{1,12}$/.test(text) ? Number(text) : text);

/**
 * Every TEAL_* variable that overrides teal.config.ts, in one table: adding one is one line
 * here (plus the key's check in resolve-config.ts). The variable wins over the file; an empty
 * variable counts as unset. A refused value is reported as `env NAME: ...`.
 *
 * - TEAL_BLUE_URL, TEAL_GREEN_URL: postgres:// URLs
 * - TEAL_KAFKA_BROKERS: comma-separated host:port list
 * - TEAL_TOPIC_PREFIX, TEAL_SLOT, TEAL_PUBLICATION: names, checked as in the file
 * - TEAL_KAFKA_HEADERS: 1, 0, true or false
 * - TEAL_KAFKA_CLIENT: kafkajs or platformatic (blank = unset)
 * - TEAL_KAFKA_MAX_MESSAGE_BYTES: the largest change record, bytes
 * - TEAL_KAFKA_TLS: 1 or 0 (TLS to the brokers; any TEAL_KAFKA_TLS_* turns it on)
 * - TEAL_KAFKA_TLS_CA, TEAL_KAFKA_TLS_CERT, TEAL_KAFKA_TLS_KEY: a PEM file path (or the PEM)
 * - TEAL_KAFKA_TLS_KEY_PASSPHRASE(_FILE), TEAL_KAFKA_TLS_VERIFY_HOSTNAME (1 or 0)
 * - TEAL_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER),
 *   TEAL_KAFKA_SASL_USERNAME, TEAL_KAFKA_SASL_PASSWORD(_FILE) (kafka-security.ts)
 * - TEAL_API_HOST, TEAL_API_PORT, TEAL_API_TOKEN: the control API's bind address and token
 * - TEAL_VERIFY_ONLINE_ROWS_PER_SECOND: online verify in teal run's background (0 = off)
 * - TEAL_SNAPSHOT_VIA (direct or kafka), TEAL_SNAPSHOT_PARALLEL, TEAL_SNAPSHOT_RANGE_ROWS: the initial copy
 *
 * Settings of one process rather than of the pipeline are not in the file and not here:
 * TEAL_LOG_LEVEL, TEAL_RUN_THREADS, TEAL_CONSUMER_GROUP (process-settings.ts).
 */
const ENV_OVERRIDES = [
  { name: 'TEAL_BLUE_URL', path: 'blue.url' },
  { name: 'TEAL_GREEN_URL', path: 'green.url' },
  { name: 'TEAL_KAFKA_BROKERS', path: 'kafka.brokers', parse: commaList },
  { name: 'TEAL_TOPIC_PREFIX', path: 'kafka.topicPrefix' },
  { name: 'TEAL_KAFKA_HEADERS', path: 'kafka.headers', parse: flag },
  { name: 'TEAL_KAFKA_CLIENT', path: 'kafka.client', parse: (text) => text.trim() || undefined },
  { name: 'TEAL_KAFKA_MAX_MESSAGE_BYTES', path: 'kafka.maxMessageBytes', parse: count },
  { name: 'TEAL_KAFKA_TLS', path: 'kafka.tls', parse: flag },
  { name: 'TEAL_KAFKA_TLS_CA', path: 'kafka.tls.ca' },
  { name: 'TEAL_KAFKA_TLS_CERT', path: 'kafka.tls.cert' },
  { name: 'TEAL_KAFKA_TLS_KEY', path: 'kafka.tls.key' },
  { name: 'TEAL_KAFKA_TLS_KEY_PASSPHRASE', path: 'kafka.tls.passphrase' },
  { name: 'TEAL_KAFKA_TLS_KEY_PASSPHRASE_FILE', path: 'kafka.tls.passphraseFile' },
  { name: 'TEAL_KAFKA_TLS_VERIFY_HOSTNAME', path: 'kafka.tls.verifyHostname', parse: flag },
  {
    name: 'TEAL_KAFKA_SASL_MECHANISM',
    path: 'kafka.sasl.mechanism',
    parse: (text) => text.trim() || undefined,
  },
  { name: 'TEAL_KAFKA_SASL_USERNAME', path: 'kafka.sasl.username' },
  { name: 'TEAL_KAFKA_SASL_PASSWORD', path: 'kafka.sasl.password' },
  { name: 'TEAL_KAFKA_SASL_PASSWORD_FILE', path: 'kafka.sasl.passwordFile' },
  { name: 'TEAL_SLOT', path: 'slot' },
  { name: 'TEAL_PUBLICATION', path: 'publication' },
  { name: 'TEAL_API_HOST', path: 'api.host' },
  { name: 'TEAL_API_PORT', path: 'api.port', parse: port },
  { name: 'TEAL_API_TOKEN', path: 'api.token' },
  { name: 'TEAL_VERIFY_ONLINE_ROWS_PER_SECOND', path: 'verify.onlineRowsPerSecond', parse: count },
  { name: 'TEAL_SNAPSHOT_VIA', path: 'snapshot.via', parse: (text) => text.trim() || undefined },
  { name: 'TEAL_SNAPSHOT_PARALLEL', path: 'snapshot.parallel', parse: count },
  { name: 'TEAL_SNAPSHOT_RANGE_ROWS', path: 'snapshot.rangeRows', parse: count },
] as const satisfies readonly EnvOverride[];

export type EnvOverrideName = (typeof ENV_OVERRIDES)[number]['name'];

const BY_NAME = new Map<string, EnvOverride>(ENV_OVERRIDES.map((o) => [o.name, o]));
const BY_PATH = new Map<string, EnvOverride>(ENV_OVERRIDES.map((o) => [o.path, o]));

function parsed(env: Env, override: EnvOverride): unknown {
  const text = env[override.name];
  if (text === undefined || text === '') return undefined;
  return override.parse ? override.parse(text) : text;
}

/** One variable's value as resolveConfig takes it; undefined when unset or refused. */
export function envValue(env: Env, name: EnvOverrideName): unknown {
  const value = parsed(env, BY_NAME.get(name)!);
  return value instanceof Invalid ? undefined : value;
}

/** The config's settings with the environment laid over the file, each with where it came from. */
export class Settings {
  /** sections: the file's objects by name, '' for the top level. */
  constructor(
    private readonly p: Problems,
    private readonly sections: Readonly<Record<string, Obj>>,
    private readonly env: Env,
  ) {}

  /** The value at `path` and the name a problem with it is reported under. */
  read(path: string): [value: unknown, from: string] {
    const override = BY_PATH.get(path);
    if (override) {
      const value = parsed(this.env, override);
      const from = `env ${override.name}`;
      if (value instanceof Invalid) {
        this.p.add(from, `expected ${value.expected}, got ${describeValue(this.env[override.name])}`);
        return [undefined, from];
      }
      if (value !== undefined) return [value, from];
    }
    const dot = path.lastIndexOf('.');
    return [this.sections[path.slice(0, Math.max(dot, 0))]?.[path.slice(dot + 1)], path];
  }
}
