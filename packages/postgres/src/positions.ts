import { formatLsn, type Position, parseLsn, ZERO_POSITION } from '@teal/change-event';
import type pg from 'pg';
import { quoteLiteral, sqlInt } from './sql.ts';

// The authoritative consumer position lives in green, written in the same transaction as
// the rows it covers (teal.applied_position). Kafka's committed offset is only advisory:
// on assignment the consumer seeks to green's kafka_offset + 1 and skips every record whose
// position is at or below green's (a replay from a restarted producer).
//
// The per-batch statements are SQL text with their values as literals, so that several run
// in one simple-query round trip (BEGIN, the lock and reads before the rows; the position and
// COMMIT after them). Topic names are escaped; every other value is a number or an LSN we format.

type Queryable = Pick<pg.ClientBase, 'query'>;

export interface StoredPosition {
  /** Last Kafka offset covered (applied or skipped); -1 when nothing yet. */
  readonly kafkaOffset: bigint;
  readonly position: Position;
}

export interface AppliedPosition extends StoredPosition {
  readonly topic: string;
  readonly partition: number;
}

export const NO_POSITION: StoredPosition = Object.freeze({ kafkaOffset: -1n, position: ZERO_POSITION });

interface PositionRow {
  kafka_offset: string;
  lsn: string;
  seq: string;
}

function fromRow(r: PositionRow): StoredPosition {
  return { kafkaOffset: BigInt(r.kafka_offset), position: { lsn: parseLsn(r.lsn), seq: Number(r.seq) } };
}

/** Every stored position, or those of `topics` only. */
export async function readAppliedPositions(
  db: Queryable,
  topics?: readonly string[],
): Promise<AppliedPosition[]> {
  const { rows } = await db.query<PositionRow & { topic: string; partition: string }>(
    `SELECT topic, partition::text AS partition, kafka_offset::text AS kafka_offset, lsn::text AS lsn, seq::text AS seq
       FROM teal.applied_position${topics ? ' WHERE topic = ANY($1::text[])' : ''}`,
    topics ? [topics] : [],
  );
  return rows.map((r) => ({ topic: r.topic, partition: Number(r.partition), ...fromRow(r) }));
}

/** Stored positions of every partition of `topics`, "topic:partition" -> position. */
export async function loadPositions(
  db: Queryable,
  topics: readonly string[],
): Promise<Map<string, StoredPosition>> {
  const rows = await readAppliedPositions(db, topics);
  return new Map(rows.map((r) => [`${r.topic}:${r.partition}`, r]));
}

/** Locks the partition's position row for this transaction; read it with `positionFromRows`. */
export function lockPositionSql(topic: string, partition: number): string {
  return `SELECT kafka_offset, lsn, seq FROM teal.applied_position WHERE topic = ${quoteLiteral(topic)} AND partition = ${sqlInt(partition)} FOR UPDATE`;
}

export function positionFromRows(rows: PositionRow[]): StoredPosition {
  return rows.length === 0 ? NO_POSITION : fromRow(rows[0]);
}

export function savePositionSql(topic: string, partition: number, p: StoredPosition): string {
  return `INSERT INTO teal.applied_position (topic, partition, kafka_offset, lsn, seq, applied_at)
     VALUES (${quoteLiteral(topic)}, ${sqlInt(partition)}, ${p.kafkaOffset.toString()}, '${formatLsn(p.position.lsn)}'::pg_lsn, ${sqlInt(p.position.seq)}, now())
     ON CONFLICT (topic, partition) DO UPDATE
       SET kafka_offset = EXCLUDED.kafka_offset, lsn = EXCLUDED.lsn, seq = EXCLUDED.seq, applied_at = EXCLUDED.applied_at`;
}

/** The newest truncate of a topic's table applied in green (by any partition); read with `truncateFromRows`. */
export function lastTruncateSql(topic: string): string {
  return `SELECT lsn, seq FROM teal.applied_truncate WHERE topic = ${quoteLiteral(topic)} ORDER BY lsn DESC, seq DESC LIMIT 1`;
}

export function truncateFromRows(rows: Array<{ lsn: string; seq: string }>): Position | undefined {
  return rows.length === 0 ? undefined : { lsn: parseLsn(rows[0].lsn), seq: Number(rows[0].seq) };
}

export function markTruncatedSql(topic: string, p: Position): string {
  return `INSERT INTO teal.applied_truncate (topic, lsn, seq) VALUES (${quoteLiteral(topic)}, '${formatLsn(p.lsn)}'::pg_lsn, ${sqlInt(p.seq)}) ON CONFLICT DO NOTHING`;
}
