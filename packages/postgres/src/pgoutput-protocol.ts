import { TealError } from '@teal/errors';
import type pg from 'pg';

// What teal asks of pgoutput, per blue server version: the one place that knows which
// PostgreSQL major speaks what (docs/engine-versions.md has the table). From
// src/backend/replication/pgoutput/pgoutput.c (parse_output_parameters) and the
// "Logical Replication Message Formats" chapter:
//   13  proto_version 1; no `streaming`, no `messages` option (both came in 14)
//   14  proto_version 2: streaming 'on' sends large in-progress transactions in blocks;
//       messages 'true' forwards pg_logical_emit_message
//   15  proto_version 3 adds two-phase messages, which teal never requests: 2 as on 14
//   16+ proto_version 4: streaming 'parallel', whose Stream Abort carries the abort LSN and
//       time (what the assembler logs when it drops a streamed transaction)
// 18's publish_generated_columns is a publication option teal leaves at `none`: teal's
// snapshot leaves generated columns out as well, and green computes its own.

export type StreamingMode = 'off' | 'on' | 'parallel';

export interface PgoutputProtocol {
  /** server_version_num, e.g. 170004. */
  readonly serverVersionNum: number;
  readonly major: number;
  readonly protoVersion: 1 | 2 | 3 | 4;
  readonly streaming: StreamingMode;
  /** messages 'true': logical decoding messages reach the stream (heartbeats, chunk watermarks). */
  readonly messages: boolean;
}

/** The oldest major teal streams from (wal_status, pg_current_snapshot, xid8 are 13+). */
export const OLDEST_BLUE_MAJOR = 13;

export function pgoutputProtocolFor(serverVersionNum: number): PgoutputProtocol {
  const major = Math.floor(serverVersionNum / 10000);
  if (major < OLDEST_BLUE_MAJOR) {
    throw new TealError(
      'TEAL_PGOUTPUT_UNSUPPORTED',
      `blue runs PostgreSQL ${major}; teal streams from PostgreSQL ${OLDEST_BLUE_MAJOR} to 18: upgrade blue to ${OLDEST_BLUE_MAJOR} or newer first (pg_upgrade), then stream`,
      { details: { serverVersionNum } },
    );
  }
  const base = { serverVersionNum, major };
  if (major === 13) return { ...base, protoVersion: 1, streaming: 'off', messages: false };
  if (major < 16) return { ...base, protoVersion: 2, streaming: 'on', messages: true };
  return { ...base, protoVersion: 4, streaming: 'parallel', messages: true };
}

/** The protocol for the server `db` is connected to (a simple query: walsender connections too). */
export async function readPgoutputProtocol(db: Pick<pg.ClientBase, 'query'>): Promise<PgoutputProtocol> {
  // Not SHOW: its column is named after the setting.
  const result = await db.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
  return pgoutputProtocolFor(Number(result.rows[0].v));
}

/**
 * A feature that needs logical decoding messages in the stream (pgoutput forwards them from 14):
 * the error that says so, naming the version.
 */
export function needsMessagesError(protocol: PgoutputProtocol, feature: string): TealError {
  return new TealError(
    'TEAL_PGOUTPUT_UNSUPPORTED',
    `${feature} needs PostgreSQL 14 or newer on blue (blue runs ${protocol.major}: its pgoutput does not forward logical decoding messages, which teal's snapshot chunks are bracketed by). ` +
      'Add the table before teal starts (it is then copied by the initial snapshot), or upgrade blue to 14+.',
    { details: { serverVersionNum: protocol.serverVersionNum } },
  );
}
