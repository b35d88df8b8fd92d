import { tableTopic } from '@teal/change-event';
import type { ResolvedConfig, TransformSet } from '@teal/config';
import { isKeyIndex } from '@teal/postgres/unique-indexes';
import type {
  BlueTableFacts,
  CheckFacts,
  ColumnFacts,
  GreenTableFacts,
  UniqueIndexFacts,
} from './check-facts.ts';

// Pure: the findings of `teal check` from what check-reads.ts read. Each finding says what it
// is, what teal does about it and how to fix it; `block` means teal must not start (teal run
// refuses with TEAL_CHECK_BLOCKED), `warn` that teal runs but something is lost or at risk,
// `info` what teal does on its own. docs/cli.md ("teal check") explains every check id.

export type Severity = 'block' | 'warn' | 'info';

export interface Finding {
  readonly severity: Severity;
  /** Stable id of the check (docs/cli.md lists them), for scripts. */
  readonly check: string;
  /** Blue's "schema.table", null for a server or broker setting. */
  readonly table: string | null;
  readonly what: string;
  /** What teal does about it. */
  readonly teal: string;
  /** What to change; null when nothing needs changing. */
  readonly fix: string | null;
}

export type CheckConfig = Pick<
  ResolvedConfig,
  'tables' | 'keyColumns' | 'ordered' | 'apply' | 'kafka' | 'slot' | 'publication' | 'transforms'
>;

const SEVERITY_ORDER: Record<Severity, number> = { block: 0, warn: 1, info: 2 };

/** Findings sorted as reports show them: settings first, then by table; block, warn, info. */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  return [...findings].sort(
    (a, b) =>
      (a.table === null ? 0 : 1) - (b.table === null ? 0 : 1) ||
      (a.table ?? '').localeCompare(b.table ?? '') ||
      SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] ||
      a.check.localeCompare(b.check),
  );
}

export function deriveFindings(facts: CheckFacts, config: CheckConfig, transforms: TransformSet): Finding[] {
  const out: Finding[] = [...serverFindings(facts, config)];
  const rootsNamed = new Set(facts.tables.map((t) => t.name));
  for (const { name, blue } of facts.tables) {
    if (!blue) {
      out.push({
        severity: 'block',
        check: 'table-missing-on-blue',
        table: name,
        what: `blue has no table ${name}, which the config lists`,
        teal: 'cannot replicate it; the producer would fail to create the publication',
        fix: `create ${name} on blue, or remove it from tables in teal.config.ts`,
      });
      continue;
    }
    out.push(...tableFindings(blue, facts, config, transforms, config.tables !== 'all', rootsNamed));
  }
  return sortFindings(out);
}

function serverFindings(facts: CheckFacts, config: CheckConfig): Finding[] {
  const s = facts.server;
  const out: Finding[] = [];
  const setting = (f: Omit<Finding, 'table'>) => out.push({ ...f, table: null });
  if (s.walLevel !== 'logical') {
    setting({
      severity: 'block',
      check: 'wal-level',
      what: `blue's wal_level is ${s.walLevel}, logical decoding needs logical`,
      teal: 'cannot create a logical replication slot',
      fix: "ALTER SYSTEM SET wal_level = 'logical' on blue, then restart blue",
    });
  }
  if (!s.ownSlotExists && s.replicationSlotsUsed >= s.maxReplicationSlots) {
    setting({
      severity: 'block',
      check: 'replication-slots',
      what: `blue has no free replication slot (${s.replicationSlotsUsed} of max_replication_slots ${s.maxReplicationSlots} in use)`,
      teal: `cannot create its slot ${config.slot}`,
      fix: 'drop a slot nobody reads (pg_drop_replication_slot), or raise max_replication_slots on blue and restart it',
    });
  }
  if (s.walSendersUsed >= s.maxWalSenders) {
    setting({
      severity: 'block',
      check: 'wal-senders',
      what: `blue has no free WAL sender (${s.walSendersUsed} of max_wal_senders ${s.maxWalSenders} in use)`,
      teal: 'cannot open its replication connection',
      fix: 'raise max_wal_senders on blue and restart it, or stop another replication client',
    });
  }
  if (s.maxSlotWalKeepSizeMb === -1) {
    setting({
      severity: 'warn',
      check: 'max-slot-wal-keep-size',
      what: "blue's max_slot_wal_keep_size is -1: a slot may keep WAL without bound",
      teal: "keeps its slot moving while it runs; if teal stops for long, blue's WAL grows until its disk is full",
      fix: "ALTER SYSTEM SET max_slot_wal_keep_size = '<GB blue can spare>' on blue (then SELECT pg_reload_conf()); teal reports an invalidated slot loudly (TEAL_SLOT_INVALIDATED)",
    });
  }
  if (!s.role.superuser && !s.role.replication) {
    setting({
      severity: 'block',
      check: 'replication-privilege',
      what: `blue's role ${s.role.name} has neither REPLICATION nor SUPERUSER`,
      teal: 'cannot create a slot or stream from it',
      fix: `ALTER ROLE ${s.role.name} REPLICATION on blue (as a superuser)`,
    });
  }
  if (!s.role.superuser && s.publication === null && !s.canCreateInDatabase) {
    setting({
      severity: 'block',
      check: 'publication-privilege',
      what: `blue's role ${s.role.name} may not create publication ${config.publication} (no CREATE on database ${s.database})`,
      teal: 'cannot create the publication it reads',
      fix: `GRANT CREATE ON DATABASE ${s.database} TO ${s.role.name}, or create it yourself as the tables' owner: CREATE PUBLICATION ${config.publication} FOR TABLE ... WITH (publish_via_partition_root = true)`,
    });
  }
  if (s.largeObjects > 0) {
    setting({
      severity: 'warn',
      check: 'large-objects',
      what: `blue holds ${s.largeObjects} large object${s.largeObjects === 1 ? '' : 's'} (pg_largeobject)`,
      teal: 'does not replicate them: logical replication does not carry large objects',
      fix: 'copy them yourself at cutover (pg_dump --large-objects --data-only), or move them into bytea columns',
    });
  }
  if (s.sequences > 0) {
    setting({
      severity: 'info',
      check: 'sequences',
      what: `blue has ${s.sequences} sequence${s.sequences === 1 ? '' : 's'}`,
      teal: "logical replication does not carry sequences: cutover copies each one's value to green",
      fix: null,
    });
  }
  const checked = new Set(facts.tables.map((t) => t.name));
  for (const name of s.unloggedTables) {
    if (checked.has(name)) continue;
    out.push({
      severity: 'warn',
      check: 'unlogged-table',
      table: name,
      what: `${name} is UNLOGGED on blue`,
      teal: 'does not replicate it: unlogged tables write no WAL, so logical replication never sees their changes',
      fix: `ALTER TABLE ${name} SET LOGGED on blue to replicate it, or copy it yourself`,
    });
  }
  out.push(...brokerFindings(facts, config));
  return out;
}

function brokerFindings(facts: CheckFacts, config: CheckConfig): Finding[] {
  const broker = facts.broker;
  if (!broker) return [];
  const out: Finding[] = [];
  const max = config.kafka.maxMessageBytes;
  if (broker.socketRequestMaxBytes !== null && broker.socketRequestMaxBytes < max) {
    out.push({
      severity: 'warn',
      check: 'broker-request-size',
      table: null,
      what: `the broker's socket.request.max.bytes (${mib(broker.socketRequestMaxBytes)}) is below kafka.maxMessageBytes (${mib(max)})`,
      teal: 'a record near kafka.maxMessageBytes cannot be sent in one request',
      fix: `raise socket.request.max.bytes on the brokers above ${max}, or lower kafka.maxMessageBytes (TEAL_KAFKA_MAX_MESSAGE_BYTES)`,
    });
  }
  if (broker.messageMaxBytes < max) {
    out.push({
      severity: 'info',
      check: 'broker-message-size',
      table: null,
      what: `the broker's message.max.bytes is ${mib(broker.messageMaxBytes)}, kafka.maxMessageBytes ${mib(max)}`,
      teal: `creates its topics with max.message.bytes = ${max}, which wins over the broker's default for them`,
      fix: null,
    });
  }
  return out;
}

function tableFindings(
  blue: BlueTableFacts,
  facts: CheckFacts,
  config: CheckConfig,
  transforms: TransformSet,
  listed: boolean,
  namedTables: ReadonlySet<string>,
): Finding[] {
  const name = blue.name;
  const out: Finding[] = [];
  const add = (f: Omit<Finding, 'table'>) => out.push({ ...f, table: name });

  if (blue.kind === 'partition') {
    const root = blue.partitionRoot ?? 'its partitioned root';
    add({
      severity: 'block',
      check: 'partition-named',
      what: `${name} is a partition of ${root}`,
      teal: `replicates partitions through their root (publish_via_partition_root): its changes arrive as ${root}'s`,
      fix: `list ${root} in tables instead of ${name}${namedTables.has(root) ? ' (it is listed already: remove this one)' : ''}`,
    });
    return out;
  }
  if (blue.kind === 'other') {
    add({
      severity: 'block',
      check: 'not-a-table',
      what: `${name} is not a table on blue (a view, materialized view or foreign table)`,
      teal: 'logical replication carries only tables',
      fix: `remove ${name} from tables`,
    });
    return out;
  }
  if (blue.unlogged) {
    add({
      severity: listed ? 'block' : 'warn',
      check: 'unlogged-table',
      what: `${name} is UNLOGGED on blue`,
      teal: listed
        ? 'cannot add it to the publication: unlogged tables write no WAL'
        : 'does not replicate it: unlogged tables write no WAL, so logical replication never sees their changes',
      fix: `ALTER TABLE ${name} SET LOGGED on blue${listed ? ', or remove it from tables' : ' to replicate it, or copy it yourself'}`,
    });
    return out;
  }
  if (blue.kind === 'partitioned') {
    add({
      severity: 'info',
      check: 'partitioned-table',
      what: `${name} is partitioned`,
      teal: "replicates it through its root (publish_via_partition_root): every partition's changes go to this table's topic, and green may partition it differently or not at all. PostgreSQL does not publish a TRUNCATE of one partition alone through the root (nor a DETACH or DROP of a partition): teal logs it as an error and green keeps those rows",
      fix: `empty a partition with DELETE, or TRUNCATE ${name} as a whole; detach a partition only after deleting its rows`,
    });
  }

  if (!blue.selectable) {
    add({
      severity: 'block',
      check: 'select-privilege',
      what: `blue's role ${facts.server.role.name} may not SELECT ${name}`,
      teal: 'cannot copy its rows (the initial snapshot and verify read it)',
      fix: `GRANT SELECT ON ${name} TO ${facts.server.role.name} on blue`,
    });
  }
  if (blue.leavesWithoutIdentity.length > 0) {
    add({
      severity: 'block',
      check: 'partition-without-identity',
      what: `partitions ${blue.leavesWithoutIdentity.join(', ')} of ${name} have neither a primary key nor a replica identity`,
      teal: "refuses to start (TEAL_NO_REPLICA_IDENTITY): each leaf's own replica identity is what its updates and deletes log",
      fix: `ALTER TABLE <partition> REPLICA IDENTITY FULL on each, or add a primary key to ${name}`,
    });
  }
  const publication = facts.server.publication;
  const published = publication !== null && (publication.allTables || publication.tables.includes(name));
  if (!blue.owned && !facts.server.role.superuser && !published) {
    add({
      severity: 'block',
      check: 'table-ownership',
      what: `blue's role ${facts.server.role.name} does not own ${name}, which teal must add to publication ${config.publication}`,
      teal: 'cannot add it to the publication (Postgres lets only the owner publish a table)',
      fix: `as its owner: ALTER PUBLICATION ${config.publication} ADD TABLE ${name} (or CREATE PUBLICATION ${config.publication} FOR TABLE ${name}, ... WITH (publish_via_partition_root = true)), or ALTER TABLE ${name} OWNER TO ${facts.server.role.name}`,
    });
  }
  const key = keyOf(blue, config);
  if (key.kind === 'none') {
    add({
      severity: 'block',
      check: 'no-key',
      what: `${name} has no primary key, no replica identity index and is not REPLICA IDENTITY FULL`,
      teal: 'cannot key its records, and blue refuses UPDATE and DELETE on it once it is published',
      fix: `ALTER TABLE ${name} ADD PRIMARY KEY (...), or ALTER TABLE ${name} REPLICA IDENTITY FULL (with keyColumns: { "${name}": [...] } in teal.config.ts to pick the key)`,
    });
  } else {
    const nullable = key.columns.filter((c) => !blue.columns.find((col) => col.name === c)?.notNull);
    const noIdentity =
      blue.replicaIdentity === 'nothing' || (blue.replicaIdentity === 'default' && !hasPrimaryKey(blue));
    if (key.kind === 'configured' && noIdentity) {
      // As the producer does (publication-manager.ts): a unique index over exactly the key
      // columns, all NOT NULL, becomes the replica identity; without one blue must log FULL rows.
      const index = blue.uniqueIndexes.find(
        (i) =>
          i.immediate &&
          !i.exclusion &&
          !i.partialOrExpression &&
          sameColumns(i.columns, key.columns) &&
          i.columns.every((c) => blue.columns.find((col) => col.name === c)?.notNull),
      );
      add(
        index
          ? {
              severity: 'info',
              check: 'key-columns-without-identity',
              what: `${name} is keyed by keyColumns (${key.columns.join(', ')}) and has no replica identity on blue`,
              teal: `sets REPLICA IDENTITY USING INDEX ${index.name} on blue at start, so that updates and deletes carry the key`,
              fix: null,
            }
          : {
              severity: 'block',
              check: 'key-columns-without-identity',
              what: `${name} is keyed by keyColumns (${key.columns.join(', ')}) but has no replica identity on blue, nor a unique index over those NOT NULL columns`,
              teal: 'refuses to start (TEAL_NO_REPLICA_IDENTITY): blue refuses UPDATE and DELETE on a published table without a replica identity',
              fix: `ALTER TABLE ${name} REPLICA IDENTITY FULL on blue`,
            },
      );
    }
    if (nullable.length > 0) {
      add({
        severity: 'warn',
        check: 'nullable-key',
        what: `${name}'s key (${key.kind === 'full' ? 'REPLICA IDENTITY FULL: every column' : key.columns.join(', ')}) has nullable column${nullable.length === 1 ? '' : 's'} ${nullable.join(', ')}`,
        teal: 'matches keys NULL-safely (IS NULL where a key value is NULL); rows whose keys are equal, NULLs included, are one row to teal, unless green has no unique index over the key (then changes apply in stream order and equal rows stay as many as blue has)',
        fix: `make the key NOT NULL, or give ${name} a primary key (or keyColumns of NOT NULL columns)`,
      });
    }
  }

  for (const c of blue.columns.filter((col) => col.generated)) {
    add({
      severity: 'info',
      check: 'generated-column',
      what: `${name}.${c.name} is a generated column on blue`,
      teal: 'never reads or writes it (pgoutput does not send it either); green computes its own',
      fix: null,
    });
  }

  // The transform must fit blue's columns; its own message says what to change.
  try {
    transforms.checkTable({
      schema: schemaOf(name),
      table: tableOf(name),
      columns: blue.columns,
      keyColumns: key.kind === 'none' ? [] : key.columns,
    });
  } catch (err) {
    add({
      severity: 'block',
      check: 'transform-invalid',
      what: (err as Error).message,
      teal: 'refuses to start with a transform that does not fit blue',
      fix: `correct transforms["${name}"] in teal.config.ts`,
    });
  }

  if (!facts.green) {
    if (key.kind !== 'none')
      out.push(...uniqueFindings(name, blue, undefined, key.columns, config, transforms));
    out.push(...rowSizeFindings(blue, facts, config));
    return out;
  }
  const target = transforms.target(schemaOf(name), tableOf(name));
  const targetName = `${target.schema}.${target.table}`;
  const green = facts.green.get(targetName);
  const written = writtenColumns(blue, transforms);
  if (!green) {
    const missingTypes = [
      ...new Set(written.flatMap((w) => (w.blue?.userType ? [w.blue.userType] : []))),
    ].filter((t) => !facts.greenTypes.has(t));
    if (config.apply.createTables) {
      add({
        severity: missingTypes.length > 0 ? 'block' : 'info',
        check: 'green-table-missing',
        what: `green has no table ${targetName}${missingTypes.length > 0 ? `, nor the type${missingTypes.length === 1 ? '' : 's'} ${missingTypes.join(', ')} its columns need` : ''}`,
        teal: "creates it from blue's shape (apply.createTables)",
        fix:
          missingTypes.length > 0
            ? `create ${missingTypes.join(', ')} in green (pg_dump --schema-only of the types)`
            : null,
      });
    } else {
      add({
        severity: 'block',
        check: 'green-table-missing',
        what: `green has no table ${targetName} (the target of ${name})`,
        teal: 'would stop the partition (TEAL_SCHEMA_BLOCKED) at its first row',
        fix: `create ${targetName} in green, or set apply.createTables: true in teal.config.ts`,
      });
    }
    if (key.kind !== 'none')
      out.push(...uniqueFindings(name, blue, undefined, key.columns, config, transforms));
    out.push(...rowSizeFindings(blue, facts, config));
    return out;
  }

  out.push(...columnFindings(name, blue, green, written, facts, config, transforms));
  // Without a key the table is blocked already; green's own primary key is not news then.
  if (key.kind !== 'none') out.push(...uniqueFindings(name, blue, green, key.columns, config, transforms));
  out.push(...constraintFindings(name, green, config));
  out.push(...rowSizeFindings(blue, facts, config));
  return out;
}

type Key =
  | { kind: 'none' }
  | { kind: 'primary' | 'index' | 'configured' | 'full'; columns: readonly string[] };

function hasPrimaryKey(blue: BlueTableFacts): boolean {
  return blue.uniqueIndexes.some((i) => i.primary);
}

/** The columns teal keys a table's records by, as the producer picks them (services/producer/src/catalog.ts). */
function keyOf(blue: BlueTableFacts, config: CheckConfig): Key {
  const configured = config.keyColumns[blue.name];
  if (configured && configured.length > 0) return { kind: 'configured', columns: configured };
  if (blue.replicaIdentity === 'index') {
    const index = blue.uniqueIndexes.find((i) => i.replicaIdentity);
    if (index) return { kind: 'index', columns: index.columns };
  }
  if (blue.replicaIdentity === 'default') {
    const pk = blue.uniqueIndexes.find((i) => i.primary);
    if (pk) return { kind: 'primary', columns: pk.columns };
  }
  if (blue.replicaIdentity === 'full') {
    const pk = blue.uniqueIndexes.find((i) => i.primary);
    if (pk) return { kind: 'primary', columns: pk.columns };
    return { kind: 'full', columns: blue.columns.filter((c) => !c.generated).map((c) => c.name) };
  }
  return { kind: 'none' };
}

interface Written {
  /** Green's column name. */
  readonly green: string;
  /** Blue's column, undefined for a derived column. */
  readonly blue: ColumnFacts | undefined;
  readonly cast: string | undefined;
}

/** The green columns teal writes for a blue table: blue's (renamed, not dropped, not generated) and the derived ones. */
function writtenColumns(blue: BlueTableFacts, transforms: TransformSet): Written[] {
  const schema = schemaOf(blue.name);
  const table = tableOf(blue.name);
  const out: Written[] = [];
  const derived = new Set(transforms.derivedColumns(schema, table));
  for (const c of blue.columns) {
    if (c.generated) continue;
    const green = transforms.columnName(schema, table, c.name);
    if (green === null || derived.has(green)) continue;
    out.push({ green, blue: c, cast: transforms.castType(schema, table, green) });
  }
  for (const green of derived)
    out.push({ green, blue: undefined, cast: transforms.castType(schema, table, green) });
  return out;
}

function columnFindings(
  name: string,
  blue: BlueTableFacts,
  green: GreenTableFacts,
  written: readonly Written[],
  facts: CheckFacts,
  config: CheckConfig,
  transforms: TransformSet,
): Finding[] {
  const out: Finding[] = [];
  const add = (f: Omit<Finding, 'table'>) => out.push({ ...f, table: name });
  const greenColumns = new Map(green.columns.map((c) => [c.name, c]));
  const missing = written.filter((w) => !greenColumns.has(w.green));
  if (missing.length > 0) {
    const names = missing.map((w) => w.green).join(', ');
    const policy = config.apply.onMissingColumn;
    const missingTypes = [
      ...new Set(missing.flatMap((w) => (w.blue?.userType ? [w.blue.userType] : []))),
    ].filter((t) => !facts.greenTypes.has(t));
    if (policy === 'add' && missingTypes.length === 0) {
      add({
        severity: 'info',
        check: 'green-column-missing',
        what: `green table ${green.name} lacks column${missing.length === 1 ? '' : 's'} ${names}`,
        teal: 'adds them to green at their first row (apply.onMissingColumn: add)',
        fix: null,
      });
    } else if (policy === 'ignore') {
      add({
        severity: 'warn',
        check: 'green-column-missing',
        what: `green table ${green.name} lacks column${missing.length === 1 ? '' : 's'} ${names}`,
        teal: 'drops their values (apply.onMissingColumn: ignore)',
        fix: `add ${missing.length === 1 ? 'it' : 'them'} to green if the values matter`,
      });
    } else {
      add({
        severity: 'block',
        check: 'green-column-missing',
        what: `green table ${green.name} lacks column${missing.length === 1 ? '' : 's'} ${names}${missingTypes.length > 0 ? ` (and type${missingTypes.length === 1 ? '' : 's'} ${missingTypes.join(', ')})` : ''}`,
        teal: 'would stop the partition (TEAL_SCHEMA_BLOCKED) at its first row',
        fix:
          missingTypes.length > 0
            ? `create ${missingTypes.join(', ')} and the column${missing.length === 1 ? '' : 's'} in green`
            : `ALTER TABLE ${green.name} ADD COLUMN ... in green, or set apply.onMissingColumn to 'add' (or 'ignore', to drop them) in teal.config.ts`,
      });
    }
  }
  for (const w of written) {
    const g = greenColumns.get(w.green);
    if (!g) continue;
    if (g.generated) {
      add({
        severity: 'info',
        check: 'green-generated-column',
        what: `${green.name}.${g.name} is a generated column in green`,
        teal: "never writes it: green computes its own value; blue's is not copied",
        fix: null,
      });
      continue;
    }
    if (g.identity === 'always') {
      add({
        severity: 'info',
        check: 'green-identity-always',
        what: `${green.name}.${g.name} is GENERATED ALWAYS AS IDENTITY in green`,
        teal: "writes blue's values with OVERRIDING SYSTEM VALUE; cutover sets green's sequence past them",
        fix: null,
      });
    }
    if (!w.blue || w.cast) continue;
    const verdict = typeVerdict(w.blue, g);
    if (verdict === 'same') continue;
    if (verdict === 'widening') {
      add({
        severity: 'info',
        check: 'type-changed',
        what: `${name}.${w.blue.name} is ${w.blue.type} on blue, ${green.name}.${g.name} is ${g.type} in green`,
        teal: "writes blue's text, which green casts to its type losslessly",
        fix: null,
      });
    } else if (verdict === 'modifier') {
      add({
        severity: 'warn',
        check: 'type-modifier-changed',
        what: `${name}.${w.blue.name} is ${w.blue.type} on blue, ${green.name}.${g.name} is ${g.type} in green`,
        teal: "writes blue's values as they are; one that does not fit green's modifier is rejected and dead-lettered",
        fix: `make green's column ${w.blue.type}, or declare the change: transforms["${name}"].cast = { ${JSON.stringify(w.blue.name)}: "${g.type}" }`,
      });
    } else {
      add({
        severity: 'block',
        check: 'type-incompatible',
        what: `${name}.${w.blue.name} is ${w.blue.type} on blue, but ${green.name}.${g.name} is ${g.type} in green`,
        teal: "would write blue's text into a column of another type; rows that do not convert are dead-lettered",
        fix: `make green's column ${w.blue.type}, or declare the conversion: transforms["${name}"].cast = { ${JSON.stringify(w.blue.name)}: "${g.type}" } (verify then compares the cast values)`,
      });
    }
  }
  // A blue generated column whose green twin is a plain column receives nothing.
  const schema = schemaOf(name);
  const table = tableOf(name);
  for (const c of blue.columns.filter((col) => col.generated)) {
    const greenName = transforms.columnName(schema, table, c.name);
    const g = greenName === null ? undefined : greenColumns.get(greenName);
    if (g && !g.generated) {
      add({
        severity: 'warn',
        check: 'generated-column-plain-in-green',
        what: `${name}.${c.name} is generated on blue, but ${green.name}.${g.name} is a plain column`,
        teal: "never sends generated values, so green's column keeps its default (NULL)",
        fix: `make ${green.name}.${g.name} GENERATED ALWAYS AS (...) STORED in green, or derive it: transforms["${name}"].derive`,
      });
    }
  }
  return out;
}

/** Type families whose text green's type reads without loss (blue type -> green types). */
const WIDENINGS: Record<string, readonly string[]> = {
  smallint: ['integer', 'bigint', 'numeric'],
  integer: ['bigint', 'numeric'],
  bigint: ['numeric'],
  real: ['double precision'],
  'character varying': ['text'],
  character: ['text', 'character varying'],
  json: ['jsonb', 'text'],
  text: ['character varying'],
  'timestamp without time zone': ['timestamp with time zone'],
};

function typeVerdict(
  blue: ColumnFacts,
  green: ColumnFacts,
): 'same' | 'widening' | 'modifier' | 'incompatible' {
  if (blue.type === green.type) return 'same';
  if (blue.baseType === green.baseType) {
    // Dropping a modifier (varchar(40) -> varchar, numeric(12,2) -> numeric) only widens.
    if (green.type === green.baseType) return 'widening';
    return modifierWidens(blue, green) ? 'widening' : 'modifier';
  }
  const widens = WIDENINGS[blue.baseType];
  if (widens?.includes(green.baseType)) return green.type === green.baseType ? 'widening' : 'modifier';
  return 'incompatible';
}

const MODIFIER = /\((\d+)(?:,(\d+))?\)/;
const LENGTH_TYPES = new Set(['character varying', 'bit varying']);
const PRECISION_TYPES = new Set([
  'timestamp without time zone',
  'timestamp with time zone',
  'time without time zone',
  'time with time zone',
  'interval',
]);

/**
 * A larger modifier of the same type that keeps every value's text: a longer varchar, more
 * digits before the point with the same scale (another scale changes "1.50"'s text), a finer
 * time precision. Fixed-length types (char(n), bit(n)) pad, so their text changes: not here.
 */
function modifierWidens(blue: ColumnFacts, green: ColumnFacts): boolean {
  const b = MODIFIER.exec(blue.type);
  const g = MODIFIER.exec(green.type);
  if (!b || !g) return false;
  const [bn, bs] = [Number(b[1]), Number(b[2] ?? 0)];
  const [gn, gs] = [Number(g[1]), Number(g[2] ?? 0)];
  if (LENGTH_TYPES.has(blue.baseType) || PRECISION_TYPES.has(blue.baseType)) return gn >= bn;
  if (blue.baseType === 'numeric') return gs === bs && gn >= bn;
  return false;
}

function sameColumns(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join('\u0000') === [...b].sort().join('\u0000');
}

/** Blue's indexes that make a table ordered: the producer's rule (@teal/postgres/unique-indexes). */
function blueOrderingIndexes(blue: BlueTableFacts, key: readonly string[]): UniqueIndexFacts[] {
  return blue.uniqueIndexes.filter(
    (i) => !isKeyIndex({ columns: i.columns, plain: !i.partialOrExpression, exclusion: i.exclusion }, key),
  );
}

/** Whether the producer sends all of a table's changes to partition 0 (config first, then blue's indexes). */
function isOrdered(blue: BlueTableFacts, key: readonly string[], config: CheckConfig): boolean {
  return config.ordered[blue.name] ?? blueOrderingIndexes(blue, key).length > 0;
}

function indexLabel(i: UniqueIndexFacts): string {
  const kind = i.exclusion ? 'EXCLUDE' : 'UNIQUE';
  return `${kind} ${i.name} ${i.columns.length > 0 && !i.partialOrExpression ? `(${i.columns.join(', ')})` : '(partial or on expressions)'}`;
}

function uniqueFindings(
  name: string,
  blue: BlueTableFacts,
  green: GreenTableFacts | undefined,
  blueKey: readonly string[],
  config: CheckConfig,
  transforms: TransformSet,
): Finding[] {
  const out: Finding[] = [];
  const schema = schemaOf(name);
  const table = tableOf(name);
  const toGreen = (columns: readonly string[]) =>
    columns.map((c) => transforms.columnName(schema, table, c) ?? `(dropped ${c})`);
  const ordered = isOrdered(blue, blueKey, config);
  const blueOrdering = blueOrderingIndexes(blue, blueKey);
  if (config.ordered[name] === undefined && blueOrdering.length > 0) {
    add(out, name, {
      severity: 'info',
      check: 'ordered-by-blue',
      what: `blue's ${name} has ${blueOrdering.map(indexLabel).join(', ')} besides its key`,
      teal: `ordered (one partition): sends all its changes to partition 0 of its topic and applies them in blue's commit order, so a value moving between rows never collides; its changes are applied one partition wide`,
      fix: null,
    });
  }
  if (!green) return out;
  const greenKey = toGreen(blueKey);
  if (
    !green.uniqueIndexes.some(
      (i) => !i.partialOrExpression && !i.exclusion && sameColumns(i.columns, greenKey),
    )
  ) {
    add(out, name, {
      severity: 'info',
      check: 'green-keyless',
      what: `green's ${green.name} has no unique index over the key (${greenKey.join(', ')})`,
      teal: 'applies its changes in stream order, inserts as plain INSERTs and updates and deletes matching the key (no ON CONFLICT)',
      fix: null,
    });
  }
  const blueSame = blueOrdering
    .filter((i) => !i.partialOrExpression && i.columns.length > 0)
    .map((i) => toGreen(i.columns));
  for (const index of green.uniqueIndexes) {
    // The consumer's rule (green-shape.ts, hasSecondaryUnique): all but a plain index over the key.
    if (!index.partialOrExpression && !index.exclusion && sameColumns(index.columns, greenKey)) continue;
    const label = indexLabel(index);
    const onBlue =
      !index.partialOrExpression &&
      index.columns.length > 0 &&
      blueSame.some((b) => sameColumns(b, index.columns));
    if (config.ordered[name] === false) {
      add(out, name, {
        severity: 'warn',
        check: 'unique-not-ordered',
        what: `green's ${green.name} has ${label} and ordered["${name}"] is false`,
        teal: 'applies its partitions in parallel; a value moving between rows can collide (23505), which is retried with backoff, and dead-lettered if it persists',
        fix: `remove ordered["${name}"]: false from teal.config.ts to keep blue's commit order`,
      });
    } else if (ordered) {
      add(out, name, {
        severity: 'info',
        check: 'unique-ordered',
        what: `green's ${green.name} has ${label}${onBlue ? ', as blue does' : ''}`,
        teal: "ordered (one partition): keeps blue's commit order for this table, statement by statement, so the constraint holds at every step",
        fix: null,
      });
    } else {
      add(out, name, {
        severity: 'warn',
        check: 'unique-only-in-green',
        what: `green's ${green.name} has ${label}, which blue does not have`,
        teal: 'applies the table in parallel partitions; values blue lets collide, or that move between rows, fail with 23505 (retried, then dead-lettered)',
        fix: `add the same unique index on blue, or set ordered: { "${name}": true } in teal.config.ts`,
      });
    }
  }
  return out;
}

function add(out: Finding[], table: string, f: Omit<Finding, 'table'>): void {
  out.push({ ...f, table });
}

function constraintFindings(name: string, green: GreenTableFacts, config: CheckConfig): Finding[] {
  const out: Finding[] = [];
  const replica = config.apply.sessionReplicationRole === 'replica';
  if (green.foreignKeys.length > 0) {
    const refs = green.foreignKeys.map((f) => `${f.name} -> ${f.table}`).join(', ');
    add(out, name, {
      severity: replica ? 'info' : 'warn',
      check: 'green-foreign-keys',
      what: `green's ${green.name} has foreign key${green.foreignKeys.length === 1 ? '' : 's'} ${refs}`,
      teal: replica
        ? 'applies under session_replication_role = replica, which skips foreign-key checks (blue enforced them); partitions apply in parallel, so a child may land before its parent'
        : 'applies with foreign-key checks on (sessionReplicationRole: origin): a child that overtakes its parent fails and is dead-lettered',
      fix: replica ? null : "set apply.sessionReplicationRole: 'replica' in teal.config.ts",
    });
  }
  if (green.referencedBy.length > 0) {
    const refs = green.referencedBy.map((f) => `${f.table} (${f.name})`).join(', ');
    add(out, name, {
      severity: 'info',
      check: 'green-referenced',
      what: `green's ${green.name} is referenced by ${refs}`,
      teal: 'applies a TRUNCATE of it as DELETE FROM under session_replication_role = replica (green refuses to truncate a referenced table alone); each referencing table empties at its own position',
      fix: null,
    });
  }
  for (const t of green.triggers) {
    if (t.enabled === 'D') continue;
    const fires = t.enabled === 'A' || t.enabled === 'R' || !replica;
    add(out, name, {
      severity: fires ? 'warn' : 'info',
      check: 'green-trigger',
      what: `green's ${green.name} has trigger ${t.name}${t.enabled === 'A' ? ' (ENABLE ALWAYS)' : t.enabled === 'R' ? ' (ENABLE REPLICA)' : ''}`,
      teal: fires
        ? "fires it for every row teal applies: it may write twice what blue's own trigger already wrote, or reject rows"
        : 'does not fire it: teal applies under session_replication_role = replica, where only ENABLE ALWAYS and ENABLE REPLICA triggers run',
      fix: fires
        ? `ALTER TABLE ${green.name} ENABLE TRIGGER ${t.name} (fires only outside replica sessions), or disable it until cutover`
        : null,
    });
  }
  return out;
}

/**
 * The record-size limits a table's rows meet: kafka.maxMessageBytes (teal's own, and the
 * max.message.bytes teal creates its topics with) and an existing topic's lower limit, which
 * the admin raises at start (packages/kafka/src/topic-config.ts) unless the broker refuses.
 */
function rowSizeFindings(blue: BlueTableFacts, facts: CheckFacts, config: CheckConfig): Finding[] {
  const largest = blue.largestRowBytes;
  if (largest === null) return [];
  // A replica identity FULL update carries the old row too: two images per record.
  const record = blue.replicaIdentity === 'full' ? 2 * largest : largest;
  const max = config.kafka.maxMessageBytes;
  const topic = tableTopic(config.kafka.topicPrefix, schemaOf(blue.name), tableOf(blue.name));
  const topicLimit = facts.broker?.topics.get(topic);
  const measured = blue.rowSizeSampled ? 'a sample of its rows (TABLESAMPLE) has' : 'its largest row is';
  const out: Finding[] = [];
  if (record > max) {
    add(out, blue.name, {
      severity: 'block',
      check: 'row-too-large',
      what: `${measured} ~${mib(record)} as a change record, above kafka.maxMessageBytes (${mib(max)})`,
      teal: 'would stop the producer with TEAL_ROW_TOO_LARGE at that row',
      fix: `raise kafka.maxMessageBytes (TEAL_KAFKA_MAX_MESSAGE_BYTES) above ${roundUpMib(record)}`,
    });
  } else if (topicLimit !== undefined && record > topicLimit) {
    add(out, blue.name, {
      severity: 'warn',
      check: 'row-too-large-for-topic',
      what: `${measured} ~${mib(record)} as a change record, above topic ${topic}'s max.message.bytes (${mib(topicLimit)})`,
      teal: `raises the topic's max.message.bytes to kafka.maxMessageBytes (${max}) at start; if the broker refuses (ACLs), the producer stops with TEAL_ROW_TOO_LARGE at that row`,
      fix: `if teal's Kafka user may not alter topic configs: kafka-configs.sh --alter --entity-type topics --entity-name ${topic} --add-config max.message.bytes=${max}`,
    });
  } else if (blue.rowSizeSampled && record > max / 2) {
    add(out, blue.name, {
      severity: 'warn',
      check: 'row-size-near-limit',
      what: `${measured} ~${mib(record)} as a change record, more than half of kafka.maxMessageBytes (${mib(max)}); unsampled rows may be larger`,
      teal: 'stops the producer with TEAL_ROW_TOO_LARGE at a row that does not fit',
      fix: `raise kafka.maxMessageBytes (TEAL_KAFKA_MAX_MESSAGE_BYTES) with room to spare`,
    });
  }
  return out;
}

function mib(bytes: number): string {
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function roundUpBytes(bytes: number): number {
  return Math.ceil((bytes * 1.25) / (1024 * 1024)) * 1024 * 1024;
}

function roundUpMib(bytes: number): string {
  return `${roundUpBytes(bytes)} (${roundUpBytes(bytes) / 1024 / 1024} MiB)`;
}

function schemaOf(name: string): string {
  return name.slice(0, name.indexOf('.'));
}

function tableOf(name: string): string {
  return name.slice(name.indexOf('.') + 1);
}
