import { isReplicatedSchema, qualifiedName } from '@teal/config';
import { TealError } from '@teal/errors';
import { DEFAULT_TABLES_SQL, quoteTable } from '@teal/postgres';
import { type Logger, waitFor } from '@teal/runtime';
import type pg from 'pg';
import { loadTableSchema, type TypeCatalog } from './catalog.ts';
import type { ChunkSnapshotter } from './chunk-snapshot.ts';
import type { TableProgress } from './initial-snapshot.ts';
import { checkReplicaIdentity, ensurePublication, replicatedTable } from './publication-manager.ts';
import { tableRenamedError } from './relation-resolver.ts';
import type { ReplicatedTables, TrackedTable } from './replicated-tables.ts';
import { estimateRows } from './snapshot-reader.ts';
import type { StateStore } from './state-store.ts';

// The publication follows blue's catalog while teal streams. Blue tells nobody about DDL
// (pgoutput sends no DDL, and teal writes nothing to blue but logical messages, so no event
// trigger), so the producer reads pg_class every `intervalMs` (default 5 s: one catalog query,
// and a table noticed late loses nothing, its snapshot reads what was written before):
// - `tables: 'all'`: a table created on blue is added to the publication and snapshotted by
//   chunk while the stream runs (a table without a usable key is refused, in the log, until it
//   has one: adding it would make blue refuse its UPDATEs and DELETEs);
// - a replicated table renamed on blue stops the producer with TEAL_TABLE_RENAMED (the stream
//   stops there too, at the first change under the new name, even between two polls);
// - a partition attached to a replicated root with rows in it: the root is snapshotted again
//   (its changes flow anyway, through the root); a partition detached, dropped or truncated by
//   itself is an error in the log (blue's root lost rows without a delete in the stream).

export interface CatalogWatchOptions {
  blue: pg.Pool;
  tables: ReplicatedTables;
  mode: 'all' | 'listed';
  keyColumns: Readonly<Record<string, readonly string[]>>;
  publication: string;
  topicPrefix: string;
  types: TypeCatalog;
  chunks: ChunkSnapshotter;
  store: StateStore;
  progress: Map<string, TableProgress>;
  intervalMs: number;
  signal: AbortSignal;
  log: Logger;
  /** Something teal must not go on after (a rename): the producer stops with it. */
  onFatal(err: TealError): void;
}

export const DEFAULT_CATALOG_POLL_MS = 5_000;

interface ClassRow {
  oid: string;
  schema: string;
  table: string;
  relkind: string;
  /** 'true' | 'false' (teal's sessions read every value as text). */
  partition: string;
  persistence: string;
}

export class CatalogWatch {
  private timer: NodeJS.Timeout | undefined;
  /** Leaf partitions of each replicated partitioned table (root oid -> leaf oid -> relfilenode), as last seen. */
  private readonly leaves = new Map<number, Map<number, string>>();
  private readonly adopting = new Map<number, Promise<TrackedTable | undefined>>();
  /** Tables refused (no usable key), with the reason last logged. */
  private readonly refused = new Map<number, string>();
  private readonly dropped = new Set<number>();
  /** Chunk snapshots this watch started, one after the other. */
  private snapshots: Promise<void> = Promise.resolve();
  private halted = false;

  constructor(private readonly opts: CatalogWatchOptions) {}

  /** Notes the partitions each replicated root has now (changes of later ones are compared to these). */
  async init(): Promise<void> {
    for (const [root, leaves] of await this.readLeaves(this.opts.tables.values()))
      this.leaves.set(root, leaves);
  }

  start(): void {
    if (this.timer) return;
    let running = false;
    this.timer = setInterval(() => {
      if (running || this.halted) return;
      running = true;
      this.poll()
        .catch((err) => this.opts.log.warn({ err }, "reading blue's catalog failed; trying again"))
        .finally(() => {
          running = false;
        });
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Tables this watch is copying or refused (for status). */
  get refusedTables(): string[] {
    return [...this.refused.values()];
  }

  /** One look at blue's catalog. */
  async poll(): Promise<void> {
    if (this.opts.signal.aborted || this.halted) return;
    const known = this.opts.tables.values();
    const now = await this.classes(known.map((t) => t.oid));
    for (const t of known) {
      const row = now.get(t.oid);
      if (!row) {
        if (!this.dropped.has(t.oid))
          this.opts.log.warn(
            { table: t.name },
            'a replicated table was dropped on blue: its changes up to the drop are copied, green keeps the table',
          );
        this.dropped.add(t.oid);
        await this.followRecreated(t);
        continue;
      }
      const name = qualifiedName(row.schema, row.table);
      if (name !== t.name) {
        this.halted = true;
        this.opts.onFatal(tableRenamedError(t.name, name, this.opts.topicPrefix));
        return;
      }
    }
    await this.keepPublished(known.filter((t) => now.has(t.oid)));
    if (this.opts.mode === 'all') {
      const rows = (await this.opts.blue.query<{ oid: string }>(DEFAULT_TABLES_SQL)).rows;
      for (const r of rows) if (!this.opts.tables.oid(Number(r.oid))) await this.adopt(Number(r.oid));
    }
    await this.followPartitions();
  }

  /**
   * A replicated table someone removed from the publication (ALTER PUBLICATION ... DROP TABLE)
   * has had none of its changes in the stream since: it is added back and copied again, and the
   * gap is an error in the log (a row deleted on blue meanwhile stays in green; verify finds it).
   */
  private async keepPublished(tables: readonly TrackedTable[]): Promise<void> {
    if (tables.length === 0) return;
    const pub = await this.opts.blue.query<{ all: string }>(
      'SELECT puballtables::text AS all FROM pg_publication WHERE pubname = $1',
      [this.opts.publication],
    );
    // A publication gone stops the stream itself (TEAL_PUBLICATION_MISSING); FOR ALL TABLES has them all.
    if (pub.rows.length === 0 || pub.rows[0].all === 'true') return;
    const published = await this.opts.blue.query<{ name: string }>(
      "SELECT schemaname || '.' || tablename AS name FROM pg_publication_tables WHERE pubname = $1",
      [this.opts.publication],
    );
    const have = new Set(published.rows.map((r) => r.name));
    for (const t of tables) {
      if (have.has(t.name)) continue;
      this.opts.log.error(
        { table: t.name, publication: this.opts.publication },
        `${t.name} was removed from publication ${this.opts.publication} on blue, so its changes since were not ` +
          'streamed: teal adds it back and copies it again; rows deleted on blue meanwhile stay in green (teal verify ' +
          'lists them): delete them in green',
      );
      await ensurePublication(this.opts.blue, this.opts.publication, [t]);
      const shape = await loadTableSchema(this.opts.blue, this.opts.types, t.schema, t.table, t.keyColumns);
      const xmax = await this.currentXmax();
      this.markSnapshotPending(t);
      this.snapshotLater({ ...t, shape }, xmax);
    }
  }

  /**
   * A replicated table dropped and created again under its name is a new relation, in no
   * publication: it is adopted like a new table (copied, then streamed). The drop itself is not
   * in the stream, so green keeps the old table's rows: an error in the log says so.
   */
  private async followRecreated(t: TrackedTable): Promise<void> {
    if (this.opts.tables.named(t.name)?.oid !== t.oid) return;
    const r = await this.opts.blue.query<{ oid: string }>(
      `SELECT c.oid::int8::text AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
      [t.schema, t.table],
    );
    if (r.rows.length === 0) return;
    const adopted = await this.adopt(Number(r.rows[0].oid));
    if (!adopted) return;
    this.opts.log.error(
      { table: t.name },
      `${t.name} was dropped and created again on blue: teal copies the new table, but the drop is not in the ` +
        `stream, so green's ${t.name} keeps the old table's rows that the new one lacks: delete them in green (teal verify lists them)`,
    );
  }

  /**
   * Begins replicating the table with this oid (`tables: 'all'`): key check, registered (so
   * the stream knows it), added to the publication, snapshotted by chunk. Undefined when it
   * is not a table teal replicates or cannot be keyed yet.
   */
  adopt(oid: number): Promise<TrackedTable | undefined> {
    const running = this.adopting.get(oid);
    if (running) return running;
    const work = this.adoptNow(oid).finally(() => this.adopting.delete(oid));
    this.adopting.set(oid, work);
    return work;
  }

  private async adoptNow(oid: number): Promise<TrackedTable | undefined> {
    const existing = this.opts.tables.oid(oid);
    if (existing) return existing;
    const row = (await this.classes([oid])).get(oid);
    if (!row || row.partition === 'true' || row.persistence !== 'p' || !['r', 'p'].includes(row.relkind))
      return undefined;
    if (!isReplicatedSchema(row.schema)) return undefined;
    const { blue, log } = this.opts;
    const t = replicatedTable(row.schema, row.table, oid, row.relkind === 'p', this.opts.keyColumns);
    try {
      await checkReplicaIdentity(blue, [t]);
    } catch (err) {
      if (!(err instanceof TealError) || err.code !== 'TEAL_NO_REPLICA_IDENTITY') throw err;
      if (this.refused.get(oid) !== err.message)
        log.error(
          { err, table: t.name },
          'a table created on blue cannot be keyed: teal does not copy it until it has a primary key or replica identity (no restart needed)',
        );
      this.refused.set(oid, err.message);
      return undefined;
    }
    this.refused.delete(oid);
    const shape = await loadTableSchema(blue, this.opts.types, t.schema, t.table, t.keyColumns);
    const tracked: TrackedTable = { ...t, shape };
    // Known before it joins the publication: the stream never meets a change of it it does not know.
    this.opts.tables.add(tracked);
    if (tracked.partitioned) this.leaves.set(oid, (await this.readLeaves([tracked])).get(oid) ?? new Map());
    await ensurePublication(blue, this.opts.publication, [t]);
    const xmax = await this.currentXmax();
    this.markSnapshotPending(tracked);
    log.info(
      { table: t.name, publication: this.opts.publication },
      'table created on blue after start: added to the publication; snapshotting it while streaming',
    );
    this.snapshotLater(tracked, xmax);
    return tracked;
  }

  /** New partitions with rows: their root is snapshotted again; partitions gone: an error in the log. */
  private async followPartitions(): Promise<void> {
    const roots = this.opts.tables.values().filter((t) => t.partitioned);
    if (roots.length === 0) return;
    const current = await this.readLeaves(roots);
    for (const root of roots) {
      const seen = this.leaves.get(root.oid) ?? new Map<number, string>();
      const now = current.get(root.oid) ?? new Map<number, string>();
      const added = [...now.keys()].filter((leaf) => !seen.has(leaf));
      const gone = [...seen.keys()].filter((leaf) => !now.has(leaf));
      // New storage and no rows: a TRUNCATE of the partition itself, which PostgreSQL does not
      // publish through the root (CREATE PUBLICATION, publish_via_partition_root). Green keeps
      // those rows; nothing in the stream says so, so say it here.
      for (const [leaf, filenode] of now) {
        const before = seen.get(leaf);
        if (before === undefined || before === filenode) continue;
        const row = (await this.classes([leaf])).get(leaf);
        if (!row) continue;
        const leafName = qualifiedName(row.schema, row.table);
        const probe = `SELECT 1 FROM ONLY ${quoteTable(row.schema, row.table)} LIMIT 1`;
        const empty = (await this.opts.blue.query(probe)).rows.length === 0;
        if (empty)
          this.opts.log.error(
            { table: root.name, partition: leafName },
            `partition ${leafName} of ${root.name} was emptied on blue by a TRUNCATE of the partition, which PostgreSQL ` +
              `does not publish through the root: green's ${root.name} still has its rows. Delete them in green ` +
              `(the partition's range), and truncate partitioned tables through their root or with DELETE`,
          );
      }
      if (gone.length > 0)
        this.opts.log.error(
          { table: root.name, partitionOids: gone },
          `partition(s) of ${root.name} were detached or dropped on blue: blue's ${root.name} lost their rows without a ` +
            'DELETE in the stream, so green still has them; detach or delete the same rows in green',
        );
      let resnapshot = false;
      for (const leaf of added) {
        const rows = await this.opts.blue.query(`SELECT 1 FROM ONLY ${await this.leafName(leaf)} LIMIT 1`);
        if (rows.rows.length > 0) resnapshot = true;
      }
      if (
        resnapshot &&
        this.opts.progress.get(root.name)?.state !== 'done' &&
        this.opts.progress.has(root.name)
      ) {
        // Its snapshot is still running (it may have passed the new partition's keys): next poll.
        continue;
      }
      this.leaves.set(root.oid, now);
      if (added.length === 0) continue;
      if (!resnapshot) {
        this.opts.log.info(
          { table: root.name, partitions: added.length },
          'new partition(s): their changes flow as the root',
        );
        continue;
      }
      this.opts.log.info(
        { table: root.name },
        'a partition with rows was attached: snapshotting the root again while streaming (attaching logs no inserts)',
      );
      const shape = await loadTableSchema(
        this.opts.blue,
        this.opts.types,
        root.schema,
        root.table,
        root.keyColumns,
      );
      const xmax = await this.currentXmax();
      this.markSnapshotPending(root);
      this.snapshotLater({ ...root, shape }, xmax);
    }
  }

  /** Drain waits for a snapshot that is not `done` in green: say so at once, before the first chunk. */
  private markSnapshotPending(t: TrackedTable): void {
    this.opts.progress.set(t.name, { table: t.name, state: 'pending', rowsDone: 0, rowsEstimated: 0 });
    void this.opts.store.writeProgress({
      schema: t.schema,
      table: t.table,
      state: 'running',
      lastKey: null,
      rowsDone: 0,
      rowsEstimated: 0,
      snapshotLsn: null,
    });
  }

  private snapshotLater(t: TrackedTable, xmax: string): void {
    this.snapshots = this.snapshots
      .then(async () => {
        // A transaction that began before the table joined the publication may be decoded without
        // it (pgoutput reads the membership as the transaction saw it): wait until every such one
        // has ended, so that what it wrote is in the chunks read after.
        const since = Date.now();
        let warned = since;
        await waitFor(
          async () => {
            if (this.opts.signal.aborted) return true;
            const r = await this.opts.blue.query<{ ok: string }>(
              'SELECT (pg_snapshot_xmin(pg_current_snapshot()) >= $1::xid8)::text AS ok',
              [xmax],
            );
            if (r.rows[0].ok === 'true') return true;
            if (Date.now() - warned > 60_000) {
              warned = Date.now();
              this.opts.log.warn(
                { table: t.name, waitedMs: Date.now() - since },
                'the snapshot of a table added while streaming waits for older transactions on blue to end (a long transaction or a forgotten prepared one: pg_stat_activity, pg_prepared_xacts)',
              );
            }
            return false;
          },
          {
            what: `transactions older than ${t.name}'s addition to the publication to end`,
            timeoutMs: 7 * 24 * 3600_000,
            intervalMs: 200,
          },
        );
        if (this.opts.signal.aborted) return;
        const estimate = await estimateRows(this.opts.blue, t.schema, t.table);
        await this.opts.chunks.snapshotTable(t.shape, null, 0, estimate);
      })
      .catch((err) => {
        if (!this.opts.signal.aborted)
          this.opts.log.error({ err, table: t.name }, 'snapshot of a table added while streaming stopped');
      });
  }

  private async currentXmax(): Promise<string> {
    const r = await this.opts.blue.query<{ x: string }>(
      'SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS x',
    );
    return r.rows[0].x;
  }

  private async classes(oids: readonly number[]): Promise<Map<number, ClassRow>> {
    if (oids.length === 0) return new Map();
    const result = await this.opts.blue.query<ClassRow>(
      `SELECT c.oid::int8::text AS oid, n.nspname AS schema, c.relname AS table, c.relkind::text AS relkind,
              c.relispartition::text AS partition, c.relpersistence::text AS persistence
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = ANY($1::int8[]::oid[])`,
      [oids.map(String)],
    );
    return new Map(result.rows.map((r) => [Number(r.oid), r] as const));
  }

  private async readLeaves(tables: readonly TrackedTable[]): Promise<Map<number, Map<number, string>>> {
    const roots = tables.filter((t) => t.partitioned).map((t) => String(t.oid));
    const out = new Map<number, Map<number, string>>();
    if (roots.length === 0) return out;
    const result = await this.opts.blue.query<{ root: string; leaf: string; filenode: string }>(
      `SELECT r.oid::int8::text AS root, t.relid::int8::text AS leaf, c.relfilenode::int8::text AS filenode
         FROM unnest($1::int8[]::oid[]) AS r(oid), LATERAL pg_partition_tree(r.oid) t
         JOIN pg_class c ON c.oid = t.relid
        WHERE t.isleaf AND t.relid <> r.oid`,
      [roots],
    );
    for (const root of roots) out.set(Number(root), new Map());
    for (const r of result.rows) out.get(Number(r.root))?.set(Number(r.leaf), r.filenode);
    return out;
  }

  private async leafName(oid: number): Promise<string> {
    const row = (await this.classes([oid])).get(oid);
    if (!row) throw new Error(`partition ${oid} is gone`);
    return quoteTable(row.schema, row.table);
  }
}
