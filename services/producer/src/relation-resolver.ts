import { isReplicatedSchema, qualifiedName } from '@teal/config';
import { TealError } from '@teal/errors';
import type { Logger } from '@teal/runtime';
import type pg from 'pg';
import type { ReplicatedTables, TrackedTable } from './replicated-tables.ts';

// What a Relation message of the stream is to teal. pgoutput names a relation by its oid
// (the relation id) and its name *as of the change* (decoding reads the catalog as it was),
// so the oid decides, never the name alone:
// - a known oid under its known name: replicated;
// - a known oid under another name, while blue's catalog still has the known name: a change
//   from before a rename teal already follows (e.g. the config was changed to the new name):
//   replicated under the known name;
// - a known oid whose name blue's catalog changed: renamed while streaming. teal stops before
//   the first change under the new name (TEAL_TABLE_RENAMED): which topic and green table the
//   renamed table goes to is the operator's choice, and nothing after the stop is confirmed;
// - an unknown oid that is a partition of a known root (a change logged before the publication
//   had publish_via_partition_root): replicated as the root;
// - with `tables: 'all'`, an unknown table of a replicated schema (the publication has it
//   before the catalog watch noticed it): adopted now, snapshotted while the stream runs;
// - anything else is a table the config does not name (an operator may add tables to the
//   publication): not copied, said once in the log.

export type RelationTarget =
  | { readonly kind: 'replicated'; readonly table: TrackedTable }
  | { readonly kind: 'ignored' };

export interface RelationResolverOptions {
  blue: Pick<pg.Pool, 'query'>;
  tables: ReplicatedTables;
  mode: 'all' | 'listed';
  /** Topic prefix, for the advice of a rename. */
  topicPrefix: string;
  log: Logger;
  /** `tables: 'all'`: begins replicating a table the stream met first; undefined when it cannot be. */
  adopt?(oid: number): Promise<TrackedTable | undefined>;
}

interface RelationRow {
  schema: string;
  table: string;
  relkind: string;
  root_oid: string | null;
}

export class RelationResolver {
  private readonly told = new Set<string>();

  constructor(private readonly opts: RelationResolverOptions) {}

  async resolve(relationId: number, schema: string, table: string): Promise<RelationTarget> {
    const { tables, log } = this.opts;
    const named = qualifiedName(schema, table);
    const known = tables.oid(relationId);
    if (known) {
      if (known.name === named) return { kind: 'replicated', table: known };
      const now = await this.relation(relationId);
      const current = now ? qualifiedName(now.schema, now.table) : undefined;
      if (current !== undefined && current !== known.name)
        throw tableRenamedError(known.name, current, this.opts.topicPrefix);
      this.once(`old:${relationId}:${named}`, () =>
        log.info(
          { table: known.name, loggedAs: named },
          'changes logged under an earlier name of the table: replicated as the table it is now',
        ),
      );
      return { kind: 'replicated', table: known };
    }
    const row = await this.relation(relationId);
    if (row?.root_oid) {
      const root = tables.oid(Number(row.root_oid));
      if (root) {
        this.once(`leaf:${relationId}`, () =>
          log.info(
            { partition: named, root: root.name },
            'changes of a partition logged before the publication published through the root: replicated as the root',
          ),
        );
        return { kind: 'replicated', table: root };
      }
    }
    const sameName = tables.named(named);
    if (sameName) {
      // Another table of that name (dropped and created again, say): the name is what the config means.
      this.once(`name:${relationId}`, () =>
        log.warn(
          { table: named, relationId, knownOid: sameName.oid },
          'a relation with the name of a replicated table but another oid (dropped and created again?): replicated under that name',
        ),
      );
      return { kind: 'replicated', table: sameName };
    }
    if (
      this.opts.mode === 'all' &&
      row &&
      !row.root_oid &&
      isReplicatedSchema(row.schema) &&
      this.opts.adopt
    ) {
      const adopted = await this.opts.adopt(relationId);
      if (adopted) return { kind: 'replicated', table: adopted };
    }
    this.once(`ignored:${relationId}`, () =>
      log.info(
        { table: named, relationId },
        'the publication carries a table teal does not replicate (not in `tables`): its changes are not copied',
      ),
    );
    return { kind: 'ignored' };
  }

  private async relation(oid: number): Promise<RelationRow | undefined> {
    const result = await this.opts.blue.query<RelationRow>(
      `SELECT n.nspname AS schema, c.relname AS table, c.relkind::text AS relkind,
              CASE WHEN c.relispartition THEN pg_partition_root(c.oid)::int8::text END AS root_oid
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::int8::oid`,
      [String(oid)],
    );
    return result.rows[0];
  }

  private once(key: string, say: () => void): void {
    if (this.told.has(key)) return;
    this.told.add(key);
    say();
  }
}

/** A replicated table's name changed on blue while teal streamed it. */
export function tableRenamedError(from: string, to: string, topicPrefix: string): TealError {
  return new TealError(
    'TEAL_TABLE_RENAMED',
    `table ${from} was renamed to ${to} on blue while teal replicated it. teal stopped before the first change ` +
      `under the new name, so nothing after the rename is lost: the slot is confirmed only up to the changes ` +
      `already in Kafka (topic ${topicPrefix}.${from}). To go on: (1) let the consumer apply what is in Kafka ` +
      `(teal status shows no lag); (2) rename the table in green too (ALTER TABLE ${from} RENAME TO ...), or keep ` +
      `green's name with a transform; (3) in teal.config.ts replace ${from} by ${to} in \`tables\` (and in ` +
      `\`transforms\`, \`keyColumns\`, \`ordered\`), or nothing with \`tables\` left out; (4) restart teal: it ` +
      `copies ${to} again into topic ${topicPrefix}.${to} while streaming, and its changes flow from where it stopped.`,
    { details: { table: from, renamedTo: to } },
  );
}
