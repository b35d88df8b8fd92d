import {
  parseTableName,
  type ResolvedConfig,
  type ReversePlan,
  type ReverseProblem,
  type ReverseTable,
  reverseConfig,
  type TransformSet,
} from '@teal/config';
import { TealError } from '@teal/errors';
import {
  ensureGreenState,
  quoteIdent,
  quoteLiteral,
  quoteTable,
  readReverseState,
  writeReverseState,
} from '@teal/postgres';
import type pg from 'pg';
import { readTableShapes, type TableShape, tablesToCheck } from './check/check-reads.ts';
import type { RollbackPrepared } from './types.ts';

// `cutover --with-rollback` (issue 17): before the fence, whether the way back can be built
// (every transform invertible, green able to hold a logical slot for it); inside the window,
// the reverse publication and slot on green; after a safe verify, the record in green's
// teal.control that `teal reverse` starts from.
//
// Why there is no gap: the slot is created after the drain (blue is fenced, every blue change
// is in green) and BEFORE the verify reads green. Every green change after the slot's
// consistent point streams back; every change before it is in the state the verify then
// proves equal to blue. A change between the point and the verify is in both (blue has it
// through the proof, the stream replays it): applying it again is idempotent.

type Queryable = Pick<pg.ClientBase, 'query'>;

/** What green says about holding one more logical slot. */
export interface GreenSlotFacts {
  walLevel: string;
  maxReplicationSlots: number;
  replicationSlotsUsed: number;
  /** The reverse slot or publication already exists (a previous attempt, or another pipeline's). */
  slotExists: boolean;
  publicationExists: boolean;
}

/** One reason the way back cannot be built, and what to change. */
export interface RollbackObstacle {
  /** Blue's table, null for a green setting. */
  table: string | null;
  what: string;
  fix: string;
}

/** Why green cannot take the reverse slot now, each with the fix (pure). */
export function greenSlotProblems(
  facts: GreenSlotFacts,
  slot: string,
  publication: string,
): RollbackObstacle[] {
  const out: RollbackObstacle[] = [];
  if (facts.walLevel !== 'logical') {
    out.push({
      table: null,
      what: `green has wal_level = ${facts.walLevel}: the reverse slot needs logical`,
      fix: 'ALTER SYSTEM SET wal_level = logical on green, then restart it',
    });
  }
  if (facts.slotExists) {
    out.push({
      table: null,
      what: `replication slot "${slot}" already exists on green`,
      fix: `if no teal reverse uses it, drop it: SELECT pg_drop_replication_slot('${slot}')`,
    });
  } else if (facts.replicationSlotsUsed >= facts.maxReplicationSlots) {
    out.push({
      table: null,
      what: `green has no free replication slot (${facts.replicationSlotsUsed} of max_replication_slots = ${facts.maxReplicationSlots} used)`,
      fix: 'raise max_replication_slots on green (restart) or drop an unused slot',
    });
  }
  if (facts.publicationExists) {
    out.push({
      table: null,
      what: `publication "${publication}" already exists on green`,
      fix: `if no teal reverse uses it: DROP PUBLICATION ${publication}`,
    });
  }
  return out;
}

export async function readGreenSlotFacts(
  green: Queryable,
  slot: string,
  publication: string,
): Promise<GreenSlotFacts> {
  const { rows } = await green.query<Record<string, string>>(
    `SELECT current_setting('wal_level') AS wal_level, current_setting('max_replication_slots') AS max_slots,
            (SELECT count(*) FROM pg_replication_slots)::text AS used,
            EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)::text AS slot_exists,
            EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $2)::text AS pub_exists`,
    [slot, publication],
  );
  const r = rows[0];
  return {
    walLevel: r.wal_level,
    maxReplicationSlots: Number(r.max_slots),
    replicationSlotsUsed: Number(r.used),
    slotExists: r.slot_exists === 'true',
    publicationExists: r.pub_exists === 'true',
  };
}

/**
 * A green table in a publication that publishes updates must have a replica identity, or
 * Postgres refuses the application's UPDATE and DELETE on it (55000): never put one there.
 */
export function replicaIdentityProblem(shape: TableShape, blueTable: string): RollbackObstacle | undefined {
  if (shape.replicaIdentity === 'full' || shape.replicaIdentity === 'index') return undefined;
  if (shape.replicaIdentity === 'default' && shape.hasPrimaryKey) return undefined;
  return {
    table: blueTable,
    what: `green table ${shape.name} has no replica identity (${shape.replicaIdentity === 'nothing' ? 'REPLICA IDENTITY NOTHING' : 'no primary key'}): in the reverse publication the application's UPDATEs and DELETEs on it would fail`,
    fix: `add a primary key to green's ${shape.name}, or ALTER TABLE ${shape.name} REPLICA IDENTITY FULL`,
  };
}

/** Every obstacle to the way back: transforms, green's settings and tables (no fence, nothing written). */
export async function rollbackObstacles(
  blue: Queryable,
  green: Queryable,
  config: ResolvedConfig,
  transforms: TransformSet,
): Promise<{ plan: ReversePlan; obstacles: RollbackObstacle[] }> {
  const { plan, greenShapes, missing } = await planReverse(blue, green, config, transforms);
  const obstacles: RollbackObstacle[] = plan.problems.map((p) => ({
    table: p.table === '*' ? null : p.table,
    what: `${p.column ? `column "${p.column}": ` : ''}${p.message}`,
    fix: `declare ${p.declare}`,
  }));
  obstacles.push(
    ...greenSlotProblems(
      await readGreenSlotFacts(green, plan.config.slot, plan.config.publication),
      plan.config.slot,
      plan.config.publication,
    ),
  );
  for (const t of plan.tables) {
    const shape = greenShapes.get(t.greenTable);
    const problem = shape && replicaIdentityProblem(shape, t.blueTable);
    if (problem) obstacles.push(problem);
  }
  for (const [blueTable, greenTable] of missing) {
    obstacles.push({
      table: blueTable,
      what: `green has no table ${greenTable}, so it has no way back`,
      fix: `create ${greenTable} on green, or leave ${blueTable} out of tables`,
    });
  }
  return { plan, obstacles };
}

/** The reverse plan against both catalogs: every replicated table with its columns on each side. */
export async function planReverse(
  blue: Queryable,
  green: Queryable,
  config: ResolvedConfig,
  transforms: TransformSet,
): Promise<{ plan: ReversePlan; greenShapes: Map<string, TableShape>; missing: Map<string, string> }> {
  const names = await tablesToCheck(blue, config.tables);
  const blueShapes = await readTableShapes(blue, names);
  const targets = new Map<string, string>();
  for (const name of names) {
    const p = parseTableName(name);
    if (!p) continue;
    const t = transforms.target(p.schema, p.table);
    targets.set(name, `${t.schema}.${t.table}`);
  }
  const greenShapes = await readTableShapes(green, [...targets.values()]);
  // Blue tables (present on blue) whose green table is missing -> that green name.
  const missing = new Map<string, string>();
  const catalog = names.flatMap((name) => {
    const b = blueShapes.get(name);
    const g = greenShapes.get(targets.get(name) ?? name);
    if (b && !g) missing.set(name, targets.get(name) ?? name);
    if (!b || !g) return [];
    const keyed = (shape: TableShape) =>
      shape.columns
        .filter((c) => !c.generated)
        .map((c) => ({ name: c.name, type: c.type, key: shape.key.includes(c.name) }));
    return [{ blueTable: name, blueColumns: keyed(b), greenColumns: keyed(g) }];
  });
  return { plan: reverseConfig(config, catalog), greenShapes, missing };
}

/**
 * Refuses, before anything is fenced, a cutover whose way back could not be built: throws
 * TEAL_ROLLBACK_NOT_POSSIBLE listing every transform to declare and every green setting to change.
 */
export async function preflightRollback(
  blue: Queryable,
  green: Queryable,
  config: ResolvedConfig,
  transforms: TransformSet,
): Promise<ReversePlan> {
  const { plan, obstacles } = await rollbackObstacles(blue, green, config, transforms);
  const reasons = obstacles.map((o) => `${o.table ? `${o.table}: ` : ''}${o.what}; ${o.fix}`);
  if (await readReverseState(green, config.kafka.topicPrefix)) {
    reasons.push(
      `green already records a prepared reverse pipeline for topic prefix "${config.kafka.topicPrefix}" (teal.control reverse:${config.kafka.topicPrefix}): roll back with it, or delete that row and its slot first`,
    );
  }
  if (reasons.length > 0) {
    throw new TealError(
      'TEAL_ROLLBACK_NOT_POSSIBLE',
      `cutover --with-rollback refused before fencing blue (nothing was changed):\n  - ${reasons.join('\n  - ')}`,
      { status: 409, details: { problems: plan.problems as ReverseProblem[], reasons } },
    );
  }
  return plan;
}

/**
 * The reverse publication (green's mapped tables) and then its slot: the publication must
 * exist before the slot's point so that every change after it is decoded as published.
 */
export async function createReverseSlot(green: Queryable, plan: ReversePlan): Promise<RollbackPrepared> {
  const { slot, publication } = plan.config;
  const tables = plan.tables.map((t) => {
    const p = parseTableName(t.greenTable);
    if (!p) throw new TealError('TEAL_INTERNAL', `not a table name: ${t.greenTable}`);
    return quoteTable(p.schema, p.table);
  });
  await green.query(
    tables.length > 0
      ? `CREATE PUBLICATION ${quoteIdent(publication)} FOR TABLE ${tables.join(', ')} WITH (publish_via_partition_root = true)`
      : `CREATE PUBLICATION ${quoteIdent(publication)} WITH (publish_via_partition_root = true)`,
  );
  try {
    const { rows } = await green.query<{ lsn: string }>(
      `SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot(${quoteLiteral(slot)}, 'pgoutput')`,
    );
    return {
      slot,
      publication,
      lsn: rows[0].lsn,
      topicPrefix: plan.config.kafka.topicPrefix,
      tables: plan.tables,
    };
  } catch (err) {
    await green.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(publication)}`).catch(() => {});
    throw err;
  }
}

/** Undoes createReverseSlot (a cutover that ended not safe to switch leaves nothing on green). */
export async function dropReverseSlot(
  green: Queryable,
  prepared: Pick<RollbackPrepared, 'slot' | 'publication'>,
): Promise<void> {
  await green.query(
    `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ${quoteLiteral(prepared.slot)}`,
  );
  await green.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(prepared.publication)}`);
}

/** The record `teal reverse` starts from: green's teal.control `reverse:<forward prefix>`. */
export async function recordReverse(
  green: Queryable,
  forwardTopicPrefix: string,
  prepared: RollbackPrepared,
): Promise<void> {
  await ensureGreenState(green);
  await writeReverseState<ReverseTable>(green, forwardTopicPrefix, {
    slot: prepared.slot,
    publication: prepared.publication,
    topicPrefix: prepared.topicPrefix,
    lsn: prepared.lsn,
    createdAt: new Date().toISOString(),
    tables: prepared.tables,
  });
}
