// What `teal check` reads from blue, green and the broker, as plain values: check-reads.ts
// fills them in, check-findings.ts (pure) turns them into findings. Names are Postgres's own
// (case-sensitive, unquoted); tables are "schema.table".

export interface ColumnFacts {
  readonly name: string;
  /** format_type(atttypid, atttypmod): "character varying(40)", "numeric(12,2)", "mood". */
  readonly type: string;
  /** format_type(atttypid, NULL): the type without its modifier. */
  readonly baseType: string;
  /** Schema-qualified name of a type that is not Postgres's own, null for built-in types. */
  readonly userType: string | null;
  readonly notNull: boolean;
  /** A generated column (GENERATED ALWAYS AS (...) STORED, or VIRTUAL from Postgres 18). */
  readonly generated: boolean;
  /** Identity: 'always' (GENERATED ALWAYS AS IDENTITY), 'default' (BY DEFAULT), null when none. */
  readonly identity: 'always' | 'default' | null;
}

export interface UniqueIndexFacts {
  readonly name: string;
  /** Its columns, in index order; empty for an index on expressions only. */
  readonly columns: readonly string[];
  readonly primary: boolean;
  readonly replicaIdentity: boolean;
  /** Has a WHERE clause or expression columns. */
  readonly partialOrExpression: boolean;
  /** Not DEFERRABLE (only such an index can be a replica identity). */
  readonly immediate: boolean;
  /** An exclusion constraint's index: rows collide by overlap, as with a unique value. */
  readonly exclusion: boolean;
}

export type TableKind = 'table' | 'partitioned' | 'partition' | 'other';
export type ReplicaIdentity = 'default' | 'full' | 'index' | 'nothing';

export interface BlueTableFacts {
  readonly name: string;
  readonly kind: TableKind;
  /** The topmost partitioned table a leaf partition replicates through; null otherwise. */
  readonly partitionRoot: string | null;
  /** A partitioned table's leaves with no primary key and no replica identity of their own. */
  readonly leavesWithoutIdentity: readonly string[];
  readonly unlogged: boolean;
  /** teal's blue role may SELECT it (the snapshot reads it). */
  readonly selectable: boolean;
  /** teal's blue role owns it (or is a member of its owner): it may add it to a publication. */
  readonly owned: boolean;
  readonly replicaIdentity: ReplicaIdentity;
  readonly columns: readonly ColumnFacts[];
  /** Valid unique and exclusion indexes (the primary key included). */
  readonly uniqueIndexes: readonly UniqueIndexFacts[];
  /** Largest row's size in bytes (max of pg_column_size and its text length), null when empty. */
  readonly largestRowBytes: number | null;
  /** True when largestRowBytes comes from a sample (TABLESAMPLE), not every row. */
  readonly rowSizeSampled: boolean;
}

export interface ForeignKeyFacts {
  readonly name: string;
  /** The other table: the referenced one (outgoing) or the referencing one (incoming). */
  readonly table: string;
}

export interface TriggerFacts {
  readonly name: string;
  /** pg_trigger.tgenabled: O (origin/local), R (replica), A (always), D (disabled). */
  readonly enabled: 'O' | 'R' | 'A' | 'D';
}

export interface GreenTableFacts {
  readonly name: string;
  readonly columns: readonly ColumnFacts[];
  readonly uniqueIndexes: readonly UniqueIndexFacts[];
  readonly foreignKeys: readonly ForeignKeyFacts[];
  readonly referencedBy: readonly ForeignKeyFacts[];
  /** User triggers (constraint triggers of foreign keys left out). */
  readonly triggers: readonly TriggerFacts[];
}

export interface BlueServerFacts {
  readonly serverVersion: string;
  readonly walLevel: string;
  readonly maxReplicationSlots: number;
  readonly replicationSlotsUsed: number;
  readonly maxWalSenders: number;
  /** WAL senders running now, teal's own slot's walsender left out. */
  readonly walSendersUsed: number;
  /** max_slot_wal_keep_size in MB; -1 is unlimited. */
  readonly maxSlotWalKeepSizeMb: number;
  readonly role: { readonly name: string; readonly superuser: boolean; readonly replication: boolean };
  /** teal's slot (config.slot) exists already: a restart needs no new slot. */
  readonly ownSlotExists: boolean;
  readonly database: string;
  /** teal's role may CREATE in blue's database (CREATE PUBLICATION needs it). */
  readonly canCreateInDatabase: boolean;
  /** teal's publication (config.publication) as it is now; null when it does not exist. */
  readonly publication: { readonly allTables: boolean; readonly tables: readonly string[] } | null;
  readonly largeObjects: number;
  /** Sequences in the replicated schemas. */
  readonly sequences: number;
  /** Unlogged tables in the replicated schemas (logical replication never carries them). */
  readonly unloggedTables: readonly string[];
}

export interface BrokerFacts {
  readonly messageMaxBytes: number;
  readonly socketRequestMaxBytes: number | null;
  /** Existing table topics -> their max.message.bytes. */
  readonly topics: ReadonlyMap<string, number>;
}

export interface CheckFacts {
  /** Every table teal would replicate (or the config names), with blue's facts; null when blue lacks it. */
  readonly tables: readonly { readonly name: string; readonly blue: BlueTableFacts | null }[];
  /** Green tables by "schema.table" (the transforms' targets that exist); null when green was not read. */
  readonly green: ReadonlyMap<string, GreenTableFacts> | null;
  /** User types (schema.name) green has, among those blue's columns use. */
  readonly greenTypes: ReadonlySet<string>;
  readonly server: BlueServerFacts;
  /** null when the broker was not asked (teal run with Kafka away: the producer waits for it). */
  readonly broker: BrokerFacts | null;
}
