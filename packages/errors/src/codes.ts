// The closed list of teal's error codes, each with what a caller may assume by default:
// whether trying again can help, and the HTTP status the control API answers with.
// A thrower may override either for one case (a drain timeout is retriable, say), never
// invent a code: `ErrorCode` is this object's keys, so a typo does not compile.
//
// Retriable means "the same call can succeed later without anyone changing anything";
// the producer's stream loop and every withRetry() act on it and on nothing else.

interface CodeInfo {
  readonly retriable: boolean;
  readonly status: number;
  /** One line for docs/api.md and `teal --help`: what the code says. */
  readonly means: string;
}

function code(retriable: boolean, status: number, means: string): CodeInfo {
  return { retriable, status, means };
}

export const errorCodes = {
  // Configuration and requests: someone has to change something.
  TEAL_CONFIG_INVALID: code(
    false,
    400,
    'teal.config.ts or a TEAL_* variable is wrong; the message says which',
  ),
  TEAL_CHECK_BLOCKED: code(false, 409, '`teal check` found something that must be fixed before a start'),
  TEAL_CONFIG_CHANGED: code(false, 400, 'the config changed in a way the running pipeline cannot take'),
  TEAL_BAD_REQUEST: code(false, 400, 'the request body or query does not match the API document'),
  TEAL_BODY_TOO_LARGE: code(false, 413, 'the request body is larger than the API accepts'),
  TEAL_UNSUPPORTED_MEDIA_TYPE: code(false, 415, 'the request body is not application/json'),
  TEAL_UNAUTHORIZED: code(
    false,
    401,
    'a bearer token is required (TEAL_API_TOKEN) or the one given is wrong',
  ),
  TEAL_API_INSECURE_BIND: code(false, 400, 'the API binds beyond loopback without TEAL_API_TOKEN'),
  TEAL_NOT_FOUND: code(false, 404, 'no such route'),
  TEAL_METHOD_NOT_ALLOWED: code(
    false,
    405,
    'the path exists but not with this method (Allow lists its methods)',
  ),
  TEAL_TABLE_NOT_FOUND: code(false, 404, 'a configured table does not exist'),

  // Control plane states.
  TEAL_BUSY: code(true, 409, 'another drain, verify or cutover is running'),
  TEAL_PAUSED: code(false, 409, 'the pipeline is paused; resume it first'),
  TEAL_NOT_READY: code(true, 503, 'the pipeline is still starting'),
  TEAL_UNAVAILABLE: code(true, 503, 'a database or the broker cannot be reached now'),
  TEAL_STOPPING: code(false, 503, 'the process is shutting down'),
  TEAL_ABORTED: code(false, 503, 'the operation was aborted because the process is stopping'),
  TEAL_DRAIN_TIMEOUT: code(true, 504, 'drain did not reach its target LSN in time'),
  TEAL_FENCE_FAILED: code(false, 500, 'blue could not be fenced or unfenced'),
  TEAL_REVERSE_NOT_PREPARED: code(
    false,
    409,
    'no reverse pipeline was prepared (teal cutover --with-rollback)',
  ),
  TEAL_ROLLBACK_NOT_POSSIBLE: code(
    false,
    409,
    'cutover --with-rollback refused before the fence: a transform cannot be inverted, or green cannot hold the reverse slot (wal_level, max_replication_slots, replica identity); the message says what to declare or change',
  ),
  TEAL_VERIFY_CONNECT: code(true, 503, 'verify could not connect to blue or green'),
  TEAL_VERIFY_ABORTED: code(false, 499, 'verify was cancelled'),
  TEAL_INTERNAL: code(false, 500, 'a bug in teal; the log has the stack'),

  // Connecting to Postgres: TLS and passwords (packages/postgres/src/connection-options.ts).
  // 503 as for a server that is away (the API's routes answer no other status for it), but
  // not retriable: the same attempt fails the same way until someone fixes the setting.
  TEAL_PG_TLS: code(
    false,
    503,
    'a TLS connection to Postgres failed (no TLS on the server, an untrusted or mismatched certificate, an unreadable cert file); the message names the server and the fix',
  ),
  TEAL_PG_AUTH: code(
    false,
    503,
    'Postgres refused the password or the user, or no password was found (URL, PGPASSWORD, passfile)',
  ),

  // Blue: slot, publication, replication stream.
  TEAL_SLOT_MISSING: code(
    false,
    409,
    'the replication slot teal streams from is gone; nothing was recreated',
  ),
  TEAL_SLOT_INVALIDATED: code(false, 409, 'the slot exists but Postgres invalidated it (wal_status lost)'),
  TEAL_SLOT_INVALID: code(false, 409, 'the slot is not a pgoutput logical slot, or its name is not valid'),
  TEAL_SLOT_IN_USE: code(true, 503, 'another walsender streams from the slot'),
  TEAL_PUBLICATION_MISSING: code(false, 409, 'the publication teal reads is gone'),
  TEAL_NO_REPLICA_IDENTITY: code(false, 400, 'a table has no primary key or replica identity'),
  TEAL_REPLICATION_CONNECTION_LOST: code(true, 503, 'the replication connection closed'),
  TEAL_REPLICATION_FAILED: code(
    false,
    500,
    'the replication stream failed with an error a retry will not fix',
  ),
  TEAL_PGOUTPUT_PROTOCOL: code(
    false,
    500,
    'the walsender sent something the pgoutput protocol does not allow',
  ),
  TEAL_PGOUTPUT_MALFORMED: code(false, 500, 'a pgoutput message could not be decoded'),
  TEAL_PGOUTPUT_UNSUPPORTED: code(false, 500, 'a pgoutput message or version teal does not support'),
  TEAL_SPILL_CORRUPT: code(false, 500, 'a spilled streamed transaction could not be read back'),
  TEAL_TABLE_RENAMED: code(false, 409, 'a replicated table was renamed on blue while teal streamed it'),
  TEAL_TABLE_KEY_CHANGED: code(
    false,
    409,
    "a replicated table's key columns or their types changed on blue while teal streamed it",
  ),
  TEAL_PRODUCER_FAILED: code(false, 500, 'the producer stopped for good'),
  TEAL_PRODUCER_THREAD_EXITED: code(false, 500, "teal run's producer thread ended"),

  // Kafka and the wire format.
  TEAL_KAFKA_ERROR: code(true, 503, 'a Kafka request failed'),
  // Not retriable, as TEAL_PG_TLS / TEAL_PG_AUTH: the same attempt fails the same way until
  // someone fixes kafka.tls / kafka.sasl (docs/kafka-security.md).
  TEAL_KAFKA_TLS: code(
    false,
    503,
    'TLS to the Kafka brokers failed (an untrusted or mismatched certificate, a TLS client on a plaintext port); the message names the brokers and the fix',
  ),
  TEAL_KAFKA_AUTH: code(
    false,
    503,
    'a Kafka broker refused the SASL login (user, password, mechanism), or the OAUTHBEARER token hook failed',
  ),
  TEAL_ROW_TOO_LARGE: code(
    false,
    413,
    'a change record is larger than kafka.maxMessageBytes or the topic accepts',
  ),
  TEAL_TOPIC_PARTITIONS_CHANGED: code(false, 409, "a topic's partition count changed while teal wrote to it"),
  TEAL_KAFKA_SEND_ABORTED: code(true, 503, 'a send queued behind a failed one was not attempted'),
  TEAL_AVRO_BAD_HEADER: code(false, 500, 'a record is not Avro single-object encoded'),
  TEAL_AVRO_UNDECODABLE: code(false, 500, 'a record does not decode with its writer schema'),
  TEAL_VALUE_UNENCODABLE: code(false, 500, 'a value cannot be encoded in its Avro type'),
  TEAL_SCHEMA_INVALID: code(false, 500, 'a writer schema is not one teal can read'),
  TEAL_SCHEMA_UNKNOWN: code(true, 503, 'a record names a writer schema not (yet) in the schema topic'),
  TEAL_SCHEMA_FINGERPRINT_MISMATCH: code(
    false,
    500,
    'a schema topic entry does not match its fingerprint key',
  ),
  TEAL_SCHEMA_LOAD_TIMEOUT: code(true, 503, 'the schema topic could not be read in time'),

  // Green: applying.
  TEAL_SCHEMA_MISMATCH: code(false, 409, "green's table lacks a column the stream carries"),
  TEAL_SCHEMA_BLOCKED: code(true, 409, 'a partition waits for an operator decision about a schema change'),
  TEAL_TRANSFORM_FAILED: code(false, 500, 'a transform threw on a row'),
  TEAL_APPLY_FAILED: code(false, 500, 'green rejected a batch'),
  TEAL_APPLY_BEHIND: code(true, 503, 'green is behind the position asked for'),
  TEAL_OFFSET_GAP: code(false, 409, 'Kafka deleted records green had not applied (retention): a gap'),
} as const satisfies Record<`TEAL_${string}`, CodeInfo>;

export type ErrorCode = keyof typeof errorCodes;

export function isErrorCode(text: unknown): text is ErrorCode {
  return typeof text === 'string' && Object.hasOwn(errorCodes, text);
}
