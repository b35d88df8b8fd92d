import { formatLsn, type Position, parseLsn, ZERO_POSITION } from '@teal/change-event';
import type pg from 'pg';

// The authoritative consumer position lives in green, written in the same transaction as
// the rows it covers (teal.applied_position). Kafka's committed offset is only advisory:
// on assignment the consumer seeks to green's kafka_offset + 1 and skips every record whose
// position is at or below green's (a replay from a restarted producer).

export interface StoredPosition {
  /** Last Kafka offset covered (applied or skipped); -1 when nothing yet. */
  readonly kafkaOffset: bigint;
  readonly position: Position;
}

export const NO_POSITION: StoredPosition = Object.freeze({ kafkaOffset: -1n, position: ZERO_POSITION });

type Queryable = Pick<pg.ClientBase, 'query'>;

export const STATE_DDL = `
  CREATE SCHEMA IF NOT EXISTS teal;
  CREATE TABLE IF NOT EXISTS teal.applied_position (
    topic text NOT NULL,
    partition int NOT NULL,
    kafka_offset bigint NOT NULL,
    lsn pg_lsn NOT NULL,
    seq bigint NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
  );
  CREATE TABLE IF NOT EXISTS teal.applied_truncate (
    topic text NOT NULL,
    lsn pg_lsn NOT NULL,
    seq bigint NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, lsn, seq)
  );
  CREATE TABLE IF NOT EXISTS teal.control (
    key text PRIMARY KEY,
    value jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
  );`;

/** Creates teal's state tables in green when missing (two processes may race: both succeed). */
export async function ensureStateTables(db: Queryable): Promise<void> {
  try {
    await db.query(STATE_DDL);
  } catch (err) {
    // 23505/42P07: a concurrent CREATE ... IF NOT EXISTS won the race on the catalog.
    const code = (err as { code?: string }).code;
    if (code !== '23505' && code !== '42P07' && code !== '42P06') throw err;
    await db.query(STATE_DDL);
  }
}

/** Stored positions of every partition of `topics`, "topic:partition" -> position. */
export async function loadPositions(
  db: Queryable,
  topics: readonly string[],
): Promise<Map<string, StoredPosition>> {
  const { rows } = await db.query<{
    topic: string;
    partition: string;
    kafka_offset: string;
    lsn: string;
    seq: string;
  }>(
    'SELECT topic, partition, kafka_offset, lsn, seq FROM teal.applied_position WHERE topic = ANY($1::text[])',
    [topics],
  );
  return new Map(rows.map((r) => [`${r.topic}:${r.partition}`, fromRow(r)]));
}

// The per-batch statements are SQL text with their values as literals, so that several run
// in one simple-query round trip (BEGIN, the lock and reads before the rows; the position and
// COMMIT after them). Topic names are escaped; every other value is a number or an LSN we format.

/** Locks the partition's position row for this transaction; read it with `positionFromRows`. */
export function lockPositionSql(topic: string, partition: number): string {
  return `SELECT kafka_offset, lsn, seq FROM teal.applied_position WHERE topic = ${literal(topic)} AND partition = ${int(partition)} FOR UPDATE`;
}

export function positionFromRows(
  rows: Array<{ kafka_offset: string; lsn: string; seq: string }>,
): StoredPosition {
  return rows.length === 0 ? NO_POSITION : fromRow(rows[0]);
}

export function savePositionSql(topic: string, partition: number, p: StoredPosition): string {
  return `INSERT INTO teal.applied_position (topic, partition, kafka_offset, lsn, seq, applied_at)
     VALUES (${literal(topic)}, ${int(partition)}, ${p.kafkaOffset.toString()}, '${formatLsn(p.position.lsn)}'::pg_lsn, ${int(p.position.seq)}, now())
     ON CONFLICT (topic, partition) DO UPDATE
       SET kafka_offset = EXCLUDED.kafka_offset, lsn = EXCLUDED.lsn, seq = EXCLUDED.seq, applied_at = EXCLUDED.applied_at`;
}

function fromRow(r: { kafka_offset: string; lsn: string; seq: string }): StoredPosition {
  return { kafkaOffset: BigInt(r.kafka_offset), position: { lsn: parseLsn(r.lsn), seq: Number(r.seq) } };
}

/** The newest truncate of a topic's table applied in green (by any partition); read with `truncateFromRows`. */
export function lastTruncateSql(topic: string): string {
  return `SELECT lsn, seq FROM teal.applied_truncate WHERE topic = ${literal(topic)} ORDER BY lsn DESC, seq DESC LIMIT 1`;
}

export function truncateFromRows(rows: Array<{ lsn: string; seq: string }>): Position | undefined {
  return rows.length === 0 ? undefined : { lsn: parseLsn(rows[0].lsn), seq: Number(rows[0].seq) };
}

export function markTruncatedSql(topic: string, p: Position): string {
  return `INSERT INTO teal.applied_truncate (topic, lsn, seq) VALUES (${literal(topic)}, '${formatLsn(p.lsn)}'::pg_lsn, ${int(p.seq)}) ON CONFLICT DO NOTHING`;
}

/** A string literal that reads the same whatever standard_conforming_strings says (as pg's escapeLiteral). */
export function literal(text: string): string {
  const quoted = `'${text.replaceAll("'", "''")}'`;
  return text.includes('\\') ? ` E${quoted.replaceAll('\\', '\\\\')}` : quoted;
}

function int(n: number): string {
  if (!Number.isSafeInteger(n)) throw new Error(`not an integer: ${n}`);
  return String(n);
}
