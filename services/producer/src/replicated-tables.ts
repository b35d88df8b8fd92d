import type { TableSchema } from '@teal/change-event';
import type { ReplicatedTable } from './publication-manager.ts';

// The tables this producer replicates, by blue oid (pgoutput's relation id, which a rename
// keeps) and by "schema.table". Shared by the stream sessions, the catalog watch and the
// snapshots; a table added while streaming is added here before it joins the publication,
// so no change of it reaches a session that does not know it.

export interface TrackedTable extends ReplicatedTable {
  /** Its shape when teal began replicating it (the snapshot's; the stream's come from Relation messages). */
  readonly shape: TableSchema;
}

export class ReplicatedTables {
  private readonly byOid = new Map<number, TrackedTable>();
  private readonly byName = new Map<string, TrackedTable>();
  /** "schema.table" -> key columns: what the transaction assembler asks for each relation. */
  readonly keys = new Map<string, readonly string[]>();

  add(table: TrackedTable): void {
    this.byOid.set(table.oid, table);
    this.byName.set(table.name, table);
    this.keys.set(table.name, table.shape.keyColumns);
  }

  oid(oid: number): TrackedTable | undefined {
    return this.byOid.get(oid);
  }

  named(name: string): TrackedTable | undefined {
    return this.byName.get(name);
  }

  values(): TrackedTable[] {
    return [...this.byOid.values()];
  }

  /** name -> shape, what the snapshots take. */
  shapes(): Map<string, TableSchema> {
    return new Map(this.values().map((t) => [t.name, t.shape] as const));
  }
}
