import type { PgText } from '@teal/change-event';
import type { ResolvedConfig, TransformSet } from '@teal/config';

// What verify answers, table by table; the API serialises it against schemas.ts.

export type Key = Record<string, PgText>;

export interface VerifyTableReport {
  blue: string;
  green: string;
  ok: boolean;
  /** Rows read from blue, and those the filter keeps out of green. */
  blueRows: number;
  filteredRows: number;
  greenRows: number;
  chunks: number;
  mismatchedChunks: number;
  /** Green columns compared, and those the transforms produce but green lacks. */
  columns: string[];
  skippedColumns: string[];
  /** Keys use green's key column names and Postgres text values. */
  missingInGreen: Key[];
  extraInGreen: Key[];
  different: { key: Key; columns: string[] }[];
  /** Blue rows whose transform threw (the consumer dead-letters them). */
  transformFailures: { key: Key; error: string }[];
  /** More keys differ than maxKeysPerTable lets the report list. */
  truncated: boolean;
  /** Why the table could not be compared at all. */
  error?: string;
  /**
   * How this table was checked: 'full' (every row, one snapshot per side), 'online' (chunk by
   * chunk while writes flow), 'delta' (only the keys changed since its last online pass).
   */
  checked?: VerifyKind;
  /** 'delta': green keys re-checked; 'full' inside a delta verify: why the table was checked whole. */
  deltaKeys?: number;
  reason?: string;
  /** 'online': keys still differing after every re-check, with changes still in flight (neither equal nor a stable difference). */
  unsettled?: Key[];
  /** 'online', 'delta': blue's oldest WAL position the (last complete pass's) chunks were read at. */
  asOfLsn?: string | null;
  /** 'delta': blue rows its last complete online pass verified before the fence. */
  onlineRows?: number;
}

export type VerifyKind = 'full' | 'online' | 'delta';

export interface VerifyReport {
  ok: boolean;
  /** 'delta': some tables by their changed keys, the rest in full (each table says which). */
  kind?: VerifyKind;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  tables: VerifyTableReport[];
}

export interface VerifyProgress {
  table: string;
  rowsDone: number;
  rowsTotalEstimate: number;
}

export interface VerifyOptions {
  blueUrl: string;
  greenUrl: string;
  config: ResolvedConfig;
  transforms: TransformSet;
  /** Blue tables, "schema.table" or "table"; default: the config's tables. */
  tables?: string[];
  chunkRows?: number;
  maxKeysPerTable?: number;
  onProgress?: (progress: VerifyProgress) => void;
  signal?: AbortSignal;
  /** Test hook: each statement a chunk runs, before it runs (its plans are checked for index use). */
  onChunkQuery?: (side: 'blue' | 'green', query: { text: string; values: unknown[] }) => void;
}

/** A table's report before anything is compared: not ok until the run says so. */
export function emptyTableReport(blueName: string): VerifyTableReport {
  return {
    blue: blueName,
    green: blueName,
    ok: false,
    blueRows: 0,
    filteredRows: 0,
    greenRows: 0,
    chunks: 0,
    mismatchedChunks: 0,
    columns: [],
    skippedColumns: [],
    missingInGreen: [],
    extraInGreen: [],
    different: [],
    transformFailures: [],
    truncated: false,
  };
}
