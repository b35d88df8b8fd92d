// JSON schemas of every request and answer. Fastify validates requests against them (with
// additional properties rejected, not silently removed) and serialises answers through them,
// so a field that is not declared here never leaves the API; @fastify/swagger turns them
// into the OpenAPI document at GET /docs.

const str = { type: 'string' } as const;
const nstr = { type: ['string', 'null'] } as const;
const int = { type: 'integer' } as const;
const nint = { type: ['integer', 'null'] } as const;
const num = { type: 'number' } as const;
const nnum = { type: ['number', 'null'] } as const;
const bool = { type: 'boolean' } as const;

function obj(properties: Record<string, unknown>, required: string[] = Object.keys(properties)) {
  return { type: 'object', additionalProperties: false, required, properties } as const;
}

// An object or null by type, not anyOf: the serializer picks an anyOf branch by validating
// the whole value, so one field the branch does not declare failed the answer with a 500
// (found by schemathesis on POST /cutover); by type, undeclared fields are dropped as everywhere.
function orNull<T extends { type: 'object' }>(schema: T) {
  return { ...schema, type: ['object', 'null'] } as const;
}

const errorBody = {
  ...obj({
    error: {
      type: 'object',
      additionalProperties: false,
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', description: 'Stable TEAL_* code to branch on.' },
        message: { type: 'string', description: 'What went wrong and what to change.' },
        details: { type: 'object', additionalProperties: true },
      },
    },
  }),
} as const;

export const errorSchema = { $id: 'TealErrorResponse', title: 'TealErrorResponse', ...errorBody } as const;

const errorRef = { $ref: 'TealErrorResponse#' } as const;
/** Any 4xx and 5xx in teal's error shape; routes list their statuses with `errorReplies()` instead. */
export const errorResponses = { '4xx': errorRef, '5xx': errorRef } as const;

/** Every error status the API answers with, and what it means in the OpenAPI document. */
export const ERROR_STATUSES = {
  400: 'TEAL_BAD_REQUEST: the body (or the URL) does not match this document; the message names the field and what to change.',
  401: 'TEAL_UNAUTHORIZED: no or a wrong `Authorization: Bearer <token>` (TEAL_API_TOKEN) while a token is configured.',
  409: 'The pipeline is not in a state for this: TEAL_BUSY (a drain or cutover runs), TEAL_PAUSED (resume first), TEAL_SLOT_MISSING / TEAL_SLOT_INVALIDATED, TEAL_ROLLBACK_NOT_POSSIBLE (cutover --with-rollback refused before the fence), TEAL_REVERSE_NOT_PREPARED (rollback without a prepared reverse pipeline).',
  413: 'TEAL_BODY_TOO_LARGE: the body is larger than the API accepts (64 kB by default).',
  415: 'TEAL_UNSUPPORTED_MEDIA_TYPE: a body that is not application/json.',
  500: 'TEAL_INTERNAL (a bug; the log has the stack) or TEAL_FENCE_FAILED (blue refused ALTER DATABASE: not the owner).',
  503: 'Blue, green or Kafka does not answer (TEAL_UNAVAILABLE, TEAL_NOT_READY, TEAL_VERIFY_CONNECT), refuses TLS or the login (TEAL_PG_TLS, TEAL_PG_AUTH, TEAL_KAFKA_TLS, TEAL_KAFKA_AUTH), or the process is stopping (TEAL_ABORTED).',
  504: 'TEAL_DRAIN_TIMEOUT: the drain did not finish within timeoutMs; `details` says what is behind.',
} as const;
export type ErrorStatus = keyof typeof ERROR_STATUSES;

/** The error answers of one route: each status it can return, in teal's error shape. */
export function errorReplies(...statuses: ErrorStatus[]): Record<number, object> {
  const replies: Record<number, object> = {};
  for (const status of statuses) {
    replies[status] = {
      description: ERROR_STATUSES[status],
      ...(status === 401 ? { headers: { 'WWW-Authenticate': { type: 'string' } } } : {}),
      ...errorBody,
    };
  }
  return replies;
}

export const emptyBody = { type: 'object', additionalProperties: false, properties: {} } as const;

const timeoutMs = {
  type: 'integer',
  minimum: 1_000,
  maximum: 3_600_000,
  default: 300_000,
  description: 'How long to wait, ms (1000..3600000).',
} as const;

export const drainBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    timeoutMs,
    fence: {
      type: 'boolean',
      default: false,
      description: 'Fence blue (read-only) before taking the target LSN.',
    },
  },
} as const;

export const cutoverBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    fence: { type: 'boolean', default: true },
    timeoutMs,
    verify: { type: 'boolean', default: true },
    fullVerify: {
      type: 'boolean',
      description:
        "Default false: verify only what changed since each table's online pass (a table without one in full). True: every row, inside the window.",
    },
    dryRun: {
      type: 'boolean',
      description:
        'Default false. Everything but the fence: blue stays writable; the report gives the window it would take.',
    },
    unfenceOnFailure: { type: 'boolean', default: false },
    acceptDeadLetters: {
      type: 'boolean',
      description:
        'Default false. Report safe to switch although the dead-letter topic holds records (changes green lacks). Without it, dead letters make the cutover not safe.',
    },
    withRollback: {
      type: 'boolean',
      description:
        "Default false. Prepare the way back (docs/rollback.md): refused before the fence (409 TEAL_ROLLBACK_NOT_POSSIBLE) when a transform cannot be inverted or green cannot hold a logical slot; otherwise creates the reverse publication and slot on green and records them for `teal reverse` (the report's `rollback`).",
    },
  },
} as const;

export const rollbackBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    timeoutMs,
    unfenceBlue: {
      type: 'boolean',
      default: true,
      description: 'Unfence blue once it is proven to hold everything green had (false: leave it fenced).',
    },
    unfenceOnFailure: {
      type: 'boolean',
      default: false,
      description: 'A rollback that fails unfences green again (default: green stays fenced).',
    },
    acceptDeadLetters: {
      type: 'boolean',
      description:
        "Default false. Safe to switch back although the reverse dead-letter topic holds records (green's changes blue lacks).",
    },
  },
} as const;

export const verifyBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    tables: {
      type: 'array',
      maxItems: 1000,
      uniqueItems: true,
      // No space, quote or control character (Postgres refuses a NUL in any text: a 500, found by schemathesis).
      items: { type: 'string', minLength: 1, maxLength: 200, pattern: '^[^\\s"\\x00-\\x1f\\x7f]+$' },
      description: 'Blue tables ("schema.table" or "table"); default: every replicated table.',
    },
    online: {
      type: 'boolean',
      description:
        "Default false. Chunk by chunk while the pipeline runs, each chunk re-checked until equal or stably different, kept in green for cutover's delta.",
    },
  },
} as const;

const partitionProgress = obj({ topic: str, partition: int, end: int, appliedOffset: nint, behind: int });

const deadLetterCounts = obj({
  total: {
    type: 'integer',
    description: 'Records ever written to <prefix>._dlq (since the pipeline started).',
  },
  tables: {
    type: 'array',
    description:
      'Per source table (header teal.source.topic); "(expired from the topic)" for records retention deleted.',
    items: obj({ table: str, count: int }),
  },
});

export const drainResponse = obj({
  drained: { type: 'boolean', const: true },
  clean: {
    type: 'boolean',
    description: 'False when the dead-letter topic holds records: green lacks those changes.',
  },
  deadLetters: deadLetterCounts,
  lsn: { type: 'string', description: 'Everything committed on blue up to this LSN is applied in green.' },
  targetLsn: str,
  confirmedLsn: str,
  partitions: { type: 'array', items: partitionProgress },
  waitedMs: int,
  fenced: bool,
});

const preparedTransaction = obj({ gid: str, owner: str, prepared: str });
const unfencedSession = obj({
  pid: int,
  usename: nstr,
  applicationName: str,
  backendType: str,
  backendStart: str,
});
const fenceHoles = {
  preparedTransactions: {
    type: 'array',
    description: "Blue's prepared transactions: COMMIT PREPARED works on a fenced blue.",
    items: preparedTransaction,
  },
  sessions: {
    type: 'array',
    description:
      'Backends that started before the fence, are not teal-control sessions of this process and may still write.',
    items: unfencedSession,
  },
} as const;

export const fenceResponse = obj({
  fenced: bool,
  database: str,
  terminatedSessions: int,
  fencedAt: { type: ['string', 'null'], description: 'When the fence took effect (ISO); null for unfence.' },
  ...fenceHoles,
});
export const pausedResponse = obj({ paused: bool });
export const healthResponse = obj({ ok: bool });

export const metricsResponse = {
  description: 'Prometheus text exposition format 0.0.4 (every teal_* metric; README lists them).',
  content: { 'text/plain; version=0.0.4': { schema: { type: 'string' } } },
} as const;
export const docsResponse = {
  description: 'This document (OpenAPI 3.0).',
  type: 'object',
  additionalProperties: true,
  required: ['openapi', 'info', 'paths'],
  properties: {
    openapi: str,
    info: { type: 'object', additionalProperties: true },
    paths: { type: 'object', additionalProperties: true },
  },
} as const;

const readyCheck = obj({ ok: bool, error: nstr });
export const readyResponse = obj({
  ready: bool,
  checks: obj({ blue: readyCheck, green: readyCheck, kafka: readyCheck }),
});

const keyRow = { type: 'object', additionalProperties: { type: ['string', 'null'] } } as const;
const keyRows = { type: 'array', items: keyRow } as const;

const verifyTable = {
  type: 'object',
  additionalProperties: false,
  required: [
    'blue',
    'green',
    'ok',
    'blueRows',
    'greenRows',
    'mismatchedChunks',
    'missingInGreen',
    'extraInGreen',
    'different',
    'truncated',
  ],
  properties: {
    blue: str,
    green: str,
    ok: bool,
    blueRows: num,
    filteredRows: num,
    greenRows: num,
    chunks: num,
    mismatchedChunks: num,
    columns: { type: 'array', items: str },
    skippedColumns: { type: 'array', items: str },
    missingInGreen: keyRows,
    extraInGreen: keyRows,
    different: { type: 'array', items: obj({ key: keyRow, columns: { type: 'array', items: str } }) },
    transformFailures: { type: 'array', items: obj({ key: keyRow, error: str }) },
    truncated: bool,
    error: str,
    checked: { type: 'string', enum: ['full', 'online', 'delta'] },
    deltaKeys: int,
    reason: str,
    unsettled: keyRows,
    asOfLsn: nstr,
    onlineRows: int,
  },
} as const;

export const verifyResponse = {
  type: 'object',
  additionalProperties: false,
  required: ['ok', 'durationMs', 'tables'],
  properties: {
    ok: bool,
    startedAt: str,
    finishedAt: str,
    durationMs: num,
    tables: { type: 'array', items: verifyTable },
    kind: { type: 'string', enum: ['full', 'online', 'delta'] },
  },
} as const;

/** `o` with more properties that are not required (answers that fakes of the backend may lack). */
function withOptional<T extends { properties: object }>(o: T, more: Record<string, unknown>) {
  return { ...o, properties: { ...o.properties, ...more } } as const;
}

const stepName = {
  type: 'string',
  enum: ['fence', 'drain', 'sequences', 'reverse-slot', 'verify', 'rollback', 'release', 'unfence'],
} as const;

const reverseTable = obj({
  greenTable: str,
  blueTable: str,
  columns: { type: 'object', additionalProperties: str },
  notWrittenBack: { type: 'array', items: str },
  blueOnly: { type: 'array', items: str },
  derivedBack: { type: 'array', items: str },
});

/** What cutover --with-rollback prepared on green (the record teal reverse starts from). */
const rollbackPrepared = obj({
  slot: str,
  publication: str,
  lsn: str,
  topicPrefix: str,
  tables: { type: 'array', items: reverseTable },
});

export const cutoverResponse = withOptional(
  obj({
    safeToSwitch: bool,
    fenced: bool,
    drainLsn: nstr,
    deadLetters: orNull(deadLetterCounts),
    fenceHoles: orNull(obj({ ...fenceHoles })),
    steps: {
      type: 'array',
      items: obj({
        name: stepName,
        ok: bool,
        ms: int,
        details: str,
      }),
    },
    sequences: { type: 'array', items: obj({ blue: str, green: nstr, value: nstr, ok: bool, note: nstr }) },
    verify: orNull(verifyResponse),
    warnings: { type: 'array', items: str },
  }),
  {
    dryRun: bool,
    window: obj({
      fenced: bool,
      ms: int,
      steps: { type: 'array', items: obj({ name: stepName, ms: int }) },
    }),
    verification: obj({
      kind: { type: 'string', enum: ['delta', 'full', 'none'] },
      beforeFence: obj({ tables: { type: 'array', items: str }, rows: int, asOfLsn: nstr }),
      afterFence: obj({
        deltaTables: { type: 'array', items: str },
        deltaKeys: int,
        fullTables: { type: 'array', items: obj({ table: str, reason: str }) },
      }),
    }),
    rollback: orNull(rollbackPrepared),
    direction: { type: 'string', enum: ['forward', 'rollback'] },
  },
);

export const statusResponse = withOptional(
  obj({
    state: {
      type: 'string',
      enum: ['starting', 'snapshotting', 'streaming', 'paused', 'draining', 'drained', 'failed', 'stopped'],
    },
    paused: bool,
    fenced: bool,
    slot: orNull(
      obj({
        name: str,
        exists: bool,
        active: bool,
        walStatus: nstr,
        currentLsn: nstr,
        confirmedLsn: nstr,
        restartLsn: nstr,
        lagBytes: nnum,
        retainedWalBytes: nnum,
        lagSeconds: nnum,
        level: { type: 'string', enum: ['ok', 'warn', 'critical'] },
      }),
    ),
    producer: orNull(
      obj({
        source: { type: 'string', enum: ['in-process', 'green'] },
        state: str,
        confirmedLsn: nstr,
        lastShippedPosition: nstr,
        lastCommitTimeUs: nstr,
        updatedAt: nstr,
        snapshot: {
          type: 'array',
          items: obj({ table: str, state: str, rowsDone: num, rowsEstimated: nnum }),
        },
        error: nstr,
      }),
    ),
    consumer: obj({
      state: nstr,
      partitions: {
        type: 'array',
        items: obj({
          topic: str,
          partition: int,
          appliedOffset: nint,
          appliedPosition: nstr,
          end: int,
          lag: int,
          blocked: nstr,
        }),
      },
      lagRecords: int,
      deadLetters: int,
      blocked: { type: 'array', items: obj({ topic: str, partition: int, reason: str }) },
      error: nstr,
    }),
    warnings: { type: 'array', items: str },
    checkedAt: str,
  }),
  {
    direction: { type: 'string', enum: ['forward', 'reverse'] },
    onlineVerify: obj({
      running: bool,
      tables: int,
      tablesComplete: int,
      chunksVerified: int,
      chunksTotal: int,
      asOfLsn: nstr,
      recheckPending: int,
      mismatches: int,
    }),
  },
);
