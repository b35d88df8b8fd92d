import type { Row } from '@teal/change-event';

/** The Kafka clients an operator may pick (kafka.client, TEAL_KAFKA_CLIENT); @teal/kafka implements them. */
export const KAFKA_CLIENTS = ['kafkajs', 'platformatic'] as const;
export type KafkaClientName = (typeof KAFKA_CLIENTS)[number];

// The shape of teal.config.ts. Everything is optional: with no config at all teal replicates
// every table of blue's non-system schemas into the same-named table of green, using the
// local environment (blue :5433, green :5434, Kafka :9092). loadConfig() validates a config
// once, applies env overrides and defaults, and freezes the result as a ResolvedConfig.

/**
 * How one blue table reaches green. Column names on the left of every mapping are blue's
 * names. Functions receive blue's row exactly as blue has it (Postgres text under teal's
 * session settings, NULL as null), before any rename, drop or cast: they are pure and must
 * not keep state, because they run again on replays, snapshots and verify.
 */
export interface TableTransform {
  /** Green table, "schema.table" or "table" (schema public). Default: blue's own name. */
  renameTo?: string;
  /** Blue column -> green column. */
  renameColumns?: Record<string, string>;
  /** Blue columns that green does not get. Key columns cannot be dropped. */
  dropColumns?: string[];
  /**
   * Column (blue name, or a derived column's name) -> green Postgres type the text value is
   * cast to on write (`$n::numeric(12,2)`). The cast runs in green; verify compares the same way.
   */
  cast?: Record<string, string>;
  /**
   * New green column -> function of blue's row returning Postgres text or null. A derived
   * column named like a green column replaces that column's value.
   */
  derive?: Record<string, (row: Readonly<Row>) => string | null>;
  /**
   * false: the row is not replicated; a row that stops matching after an update is deleted
   * from green. Deletes always reach green (by key).
   */
  filter?: (row: Readonly<Row>) => boolean;
  /**
   * How `teal rollback`'s reverse pipeline (green -> blue) writes this table back, where the
   * forward transform cannot be inverted by itself (docs/rollback.md). `cutover --with-rollback`
   * names every table and column that needs it.
   */
  reverse?: ReverseTransform;
}

/** `transforms[table].reverse`: what the reverse direction does where the forward one lost information. */
export interface ReverseTransform {
  /** Blue column -> function of green's row (green's names, Postgres text) returning blue's text or null. */
  derive?: Record<string, (greenRow: Readonly<Row>) => string | null>;
  /** Blue columns the reverse leaves as they are (blue's default on insert), like a dropped column. */
  keep?: string[];
  /** true: the table is not streamed back; a rollback leaves blue's rows of it as they are. */
  ignore?: true;
}

/** SASL mechanisms teal speaks to Kafka (kafka.sasl.mechanism, TEAL_KAFKA_SASL_MECHANISM). */
export const KAFKA_SASL_MECHANISMS = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512', 'OAUTHBEARER'] as const;
export type KafkaSaslMechanism = (typeof KAFKA_SASL_MECHANISMS)[number];

/** What an OAUTHBEARER token hook returns: the token, and when it expires (it is asked again before). */
export interface OAuthBearerToken {
  /** The token as the broker takes it (a JWT for MSK IAM, Confluent Cloud, Event Hubs). */
  token: string;
  /** When it expires: epoch milliseconds or a Date. Left out: asked again after 5 minutes. */
  expiresAt?: number | Date;
  /** SASL extensions (KIP-342), e.g. Confluent Cloud's logicalCluster and identityPoolId. */
  extensions?: Record<string, string>;
}

/** teal.config.ts `kafka.tls` (docs/kafka-security.md). */
export interface KafkaTlsConfig {
  /** CA bundle that signs the brokers' certificates: a file path or the PEM text. Default: Node's CAs. */
  ca?: string;
  /** Client certificate for mutual TLS: a file path or the PEM text; needs `key`. */
  cert?: string;
  /** The client certificate's private key: a file path (or PEM text). */
  key?: string;
  /** The key's passphrase, or better `passphraseFile` / TEAL_KAFKA_TLS_KEY_PASSPHRASE(_FILE). */
  passphrase?: string;
  passphraseFile?: string;
  /** Check that the broker's certificate names the host teal dialed (default true). */
  verifyHostname?: boolean;
}

/** teal.config.ts `kafka.sasl` (docs/kafka-security.md). */
export interface KafkaSaslConfig {
  mechanism: KafkaSaslMechanism | Lowercase<KafkaSaslMechanism>;
  /** PLAIN and SCRAM. */
  username?: string;
  /** PLAIN and SCRAM: better `passwordFile` or TEAL_KAFKA_SASL_PASSWORD(_FILE) than inline. */
  password?: string;
  passwordFile?: string;
  /** OAUTHBEARER: called for a token, and again before it expires. */
  oauthBearer?: () => Promise<OAuthBearerToken> | OAuthBearerToken;
}

/** Resolved kafka.tls: file contents read at load; the private key and passphrase behind functions, so no JSON or log line holds them. */
export interface KafkaTlsSettings {
  readonly ca: string | undefined;
  readonly cert: string | undefined;
  readonly key: (() => string) | undefined;
  readonly passphrase: (() => string) | undefined;
  readonly verifyHostname: boolean;
}

/** Resolved kafka.sasl; the password behind a function (JSON and loggers leave functions out). */
export type KafkaSaslSettings =
  | {
      readonly mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';
      readonly username: string;
      readonly password: () => string;
    }
  | {
      readonly mechanism: 'OAUTHBEARER';
      readonly oauthBearer: () => Promise<OAuthBearerToken> | OAuthBearerToken;
    };

export type OnMissingColumn = 'fail' | 'ignore' | 'add';
export type SessionReplicationRole = 'origin' | 'replica';

export interface TealConfig {
  blue?: { url?: string };
  green?: { url?: string };
  kafka?: {
    brokers?: string[];
    topicPrefix?: string;
    partitions?: number;
    /**
     * Also write `teal.position`, `teal.op` and `teal.xid` as Kafka headers on every change
     * record (default false): they repeat fields of the Avro value, for tools that show
     * headers but cannot read Avro, and cost about a quarter of the pipeline's CPU.
     */
    headers?: boolean;
    /**
     * The library behind the admin and the publisher: 'platformatic' (default) or 'kafkajs'.
     * The consumer group is kafkajs either way. Env TEAL_KAFKA_CLIENT wins.
     */
    client?: KafkaClientName;
    /**
     * The largest change record teal writes, bytes (default 16 MiB). teal creates its topics
     * with this `max.message.bytes` and sizes its clients' requests and fetches to it; a row
     * whose record is larger stops the producer with TEAL_ROW_TOO_LARGE naming the table.
     * Env TEAL_KAFKA_MAX_MESSAGE_BYTES.
     */
    maxMessageBytes?: number;
    /** TLS to the brokers (`true`: Node's CAs). Env TEAL_KAFKA_TLS, TEAL_KAFKA_TLS_* win. */
    tls?: boolean | KafkaTlsConfig;
    /** SASL login. Env TEAL_KAFKA_SASL_* win (the OAUTHBEARER hook is in this file only). */
    sasl?: KafkaSaslConfig;
  };
  /** Logical replication slot on blue, [a-z0-9_]{1,63}. Default teal_slot. */
  slot?: string;
  /** Publication on blue. Default teal_pub. */
  publication?: string;
  api?: { host?: string; port?: number; token?: string };
  /** "schema.table" or "table" (public). Default: every table of blue's non-system schemas except teal's. */
  tables?: string[];
  /** Keyed by blue table, "schema.table" or "table". */
  transforms?: Record<string, TableTransform>;
  apply?: {
    /** A column blue sends that green lacks: fail (default), ignore it, or add it to green. */
    onMissingColumn?: OnMissingColumn;
    /** Create missing green tables from blue's shape. Default false. */
    createTables?: boolean;
    /** session_replication_role for green writes; replica skips triggers and FK checks. Default replica. */
    sessionReplicationRole?: SessionReplicationRole;
    /** Rows per green transaction. Default 5000 (measured: bench/consumer.ts, services/consumer/README.md). */
    batchSize?: number;
  };
  /** Key columns (blue names) for blue tables without a primary key. */
  keyColumns?: Record<string, string[]>;
  /**
   * Keyed by blue table: true keeps the table's changes in blue's commit order (one partition,
   * applied statement by statement), which a table needs when green has a UNIQUE constraint
   * other than its key; false opts a table out. Default: true for tables with such a unique
   * index on blue (docs/architecture.md, "Unique constraints").
   */
  ordered?: Record<string, boolean>;
  /** Interval of heartbeat messages on blue, ms. Default 10000. */
  heartbeatMs?: number;
  snapshot?: {
    chunkRows?: number;
    /**
     * How the initial copy reaches green: 'direct' (default) copies each table from blue to
     * green with COPY, in ranges, while the stream waits in Kafka; 'kafka' publishes one record
     * per row to the table topics (full state in the topics). Env TEAL_SNAPSHOT_VIA.
     */
    via?: SnapshotVia;
    /** Blue sessions of the direct copy, sharing the slot's snapshot. Default 2. Env TEAL_SNAPSHOT_PARALLEL. */
    parallel?: number;
    /** Rows per range of the direct copy (one green transaction each). Default 100000. Env TEAL_SNAPSHOT_RANGE_ROWS. */
    rangeRows?: number;
  };
  /** Slot lag thresholds, bytes of retained WAL. Default 1 GiB / 8 GiB. */
  lag?: { warnBytes?: number; criticalBytes?: number };
  /**
   * Online verify in the background of `teal run` (docs/cutover.md): blue rows read per second;
   * 0 (the default) keeps it off, so only `teal verify --online` runs it.
   */
  verify?: { onlineRowsPerSecond?: number };
}

export type SnapshotVia = 'direct' | 'kafka';

/** Types a teal.config.ts; returns its argument unchanged (loadConfig validates it). */
export function defineConfig(config: TealConfig): TealConfig {
  return config;
}

/** A validated, defaulted and frozen configuration. Table names are "schema.table". */
export interface ResolvedConfig {
  readonly blue: { readonly url: string };
  readonly green: { readonly url: string };
  readonly kafka: {
    readonly brokers: readonly string[];
    readonly topicPrefix: string;
    readonly partitions: number;
    readonly headers: boolean;
    readonly client: KafkaClientName;
    readonly maxMessageBytes: number;
    /** undefined: plaintext. */
    readonly tls: KafkaTlsSettings | undefined;
    /** undefined: no SASL. */
    readonly sasl: KafkaSaslSettings | undefined;
  };
  readonly slot: string;
  readonly publication: string;
  readonly api: { readonly host: string; readonly port: number; readonly token: string | undefined };
  /** 'all' = every table of blue's non-system schemas except teal's (see isReplicatedSchema). */
  readonly tables: readonly string[] | 'all';
  readonly transforms: Readonly<Record<string, Readonly<TableTransform>>>;
  readonly apply: {
    readonly onMissingColumn: OnMissingColumn;
    readonly createTables: boolean;
    readonly sessionReplicationRole: SessionReplicationRole;
    readonly batchSize: number;
  };
  readonly keyColumns: Readonly<Record<string, readonly string[]>>;
  /** Only the tables the config names; the auto-detected ones are decided at start (blue's catalog). */
  readonly ordered: Readonly<Record<string, boolean>>;
  readonly heartbeatMs: number;
  readonly snapshot: {
    readonly chunkRows: number;
    readonly via: SnapshotVia;
    readonly parallel: number;
    readonly rangeRows: number;
  };
  readonly lag: { readonly warnBytes: number; readonly criticalBytes: number };
  readonly verify: { readonly onlineRowsPerSecond: number };
  /** Absolute path of the config file that was loaded, undefined when none. */
  readonly configPath: string | undefined;
}
