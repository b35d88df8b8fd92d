import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import type { PgText, Row, TableSchema } from '@teal/change-event';
import { compileTransforms, qualifiedName, type ResolvedConfig, type TransformSet } from '@teal/config';
import { createPool, quoteIdent } from '@teal/postgres';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { qualified } from '../apply-sql.ts';
import { GreenCatalog } from '../green-catalog.ts';
import { type GreenTable, isGenerated } from '../green-shape.ts';
import { CopyLineSplitter, formatCopyLine, parseCopyLine } from './copy-text.ts';

// The green half of the direct initial copy (docs/architecture.md, "Direct initial copy"):
// the COPY text of one range of a blue table goes into green with COPY FROM STDIN, in one
// transaction that also records the range (the caller's `record`). A table without
// transforms whose green columns take blue's as they are gets the bytes as they came; a
// table with transforms has each row parsed, run through the same compiled TransformSet the
// consumer applies to the stream (filter, rename, drop, derive), and formatted again. What
// this path cannot write exactly as the consumer would (no such green table, a missing
// column, a cast to another type than green's, rows already in green) is refused here, and
// the producer copies that table through Kafka instead.

type Queryable = Pick<pg.ClientBase, 'query'>;

export interface GreenCopyTable {
  /** 'pipe': bytes as they came; 'transform': parsed, transformed, formatted again. */
  readonly mode: 'pipe' | 'transform';
  /**
   * Writes the COPY text of `source` into green in one transaction; `record(db, rows)` runs in
   * it before COMMIT. Returns the rows written (after the filter).
   */
  write(source: Readable, record: (db: Queryable, rows: number) => Promise<void>): Promise<number>;
}

export interface GreenCopyTarget {
  /** How `table` (blue's shape, the columns the copy selects in order) is written, or why it cannot be. */
  prepare(table: TableSchema): Promise<GreenCopyTable | { refused: string }>;
  close(): Promise<void>;
}

export interface GreenCopyWriterOptions {
  /** Sessions in green: one per blue session of the copy. */
  sessions: number;
}

export function greenCopyTarget(config: ResolvedConfig, opts: GreenCopyWriterOptions): GreenCopyTarget {
  return new GreenCopyWriter(config, opts.sessions);
}

class GreenCopyWriter implements GreenCopyTarget {
  private readonly pool: pg.Pool;
  private readonly catalog: GreenCatalog;
  private readonly transforms: TransformSet;

  constructor(
    private readonly config: ResolvedConfig,
    sessions: number,
  ) {
    this.pool = createPool(config.green.url, { max: sessions + 1, applicationName: 'teal-direct-copy' });
    this.catalog = new GreenCatalog(this.pool);
    this.transforms = compileTransforms(config);
  }

  async prepare(table: TableSchema): Promise<GreenCopyTable | { refused: string }> {
    const { transforms } = this;
    const { schema, table: name } = table;
    const target = transforms.target(schema, name);
    const green = await this.catalog.table(target);
    const targetName = qualifiedName(target.schema, target.table);
    if (!green) return { refused: `green has no table ${targetName}` };
    // Green's columns in the order the copy writes them: blue's (renamed, dropped), then derived.
    const mapped = table.columns
      .map((c) => transforms.columnName(schema, name, c.name))
      .filter((c): c is string => c !== null);
    const columns = [
      ...mapped,
      ...transforms.derivedColumns(schema, name).filter((d) => !mapped.includes(d)),
    ];
    const missing = columns.filter((c) => !green.columns.has(c));
    if (missing.length > 0) return { refused: `green's ${targetName} has no column ${missing.join(', ')}` };
    const cast = await this.castsDiffer(green, schema, name, columns);
    if (cast) return { refused: `column ${cast} is cast to another type than green's` };
    const nonEmpty = await this.pool.query(`SELECT 1 FROM ${qualified(target)} LIMIT 1`);
    if (nonEmpty.rows.length > 0) return { refused: `green's ${targetName} already holds rows` };
    // Green computes its generated columns: never written (an identity ALWAYS column takes COPY's value).
    const written = columns.filter((c) => !isGenerated(green, c));
    const role = this.config.apply.sessionReplicationRole;
    const copySql = `COPY ${qualified(target)} (${written.map(quoteIdent).join(', ')}) FROM STDIN`;
    const plain = this.config.transforms[qualifiedName(schema, name)] === undefined;
    if (plain && written.length === table.columns.length)
      return { mode: 'pipe', write: (source, record) => this.run(copySql, role, source, undefined, record) };
    const blueColumns = table.columns.map((c) => c.name);
    const mapLine = (line: string): string | null => {
      const values = parseCopyLine(line);
      const row: Row = {};
      for (let i = 0; i < blueColumns.length; i++) row[blueColumns[i]] = values[i] ?? null;
      const out = transforms.applyRow(schema, name, row);
      if (out === null) return null;
      const green: PgText[] = new Array(written.length);
      for (let i = 0; i < written.length; i++) green[i] = out[written[i]] ?? null;
      return formatCopyLine(green);
    };
    return { mode: 'transform', write: (source, record) => this.run(copySql, role, source, mapLine, record) };
  }

  // A cast is exact here only when it names green's own type (COPY parses into green's type;
  // the consumer casts to the configured type first).
  private async castsDiffer(
    green: GreenTable,
    schema: string,
    table: string,
    columns: readonly string[],
  ): Promise<string | undefined> {
    for (const c of columns) {
      const to = this.transforms.castType(schema, table, c);
      const type = green.columns.get(c)?.type;
      if (to === undefined || type === undefined) continue;
      if (to.includes('(') || type.includes('(')) {
        if (to.replace(/\s+/g, '') !== type.replace(/\s+/g, '')) return c;
        continue;
      }
      const same = await this.pool.query<{ same: boolean | string }>(
        'SELECT to_regtype($1)::oid = to_regtype($2)::oid AS same',
        [to, type],
      );
      const v = same.rows[0]?.same;
      if (v !== true && v !== 't') return c;
    }
    return undefined;
  }

  private async run(
    copySql: string,
    role: string,
    source: Readable,
    mapLine: ((line: string) => string | null) | undefined,
    record: (db: Queryable, rows: number) => Promise<void>,
  ): Promise<number> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      if (role === 'replica') await client.query('SET LOCAL session_replication_role = replica');
      const sink = client.query(copyFrom(copySql));
      if (mapLine) await pipeline(source, transformLines(mapLine), sink);
      else await pipeline(source, sink);
      const rows = sink.rowCount;
      await record(client, rows);
      await client.query('COMMIT');
      return rows;
    } catch (err) {
      broken = err as Error;
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      // A session whose COPY was cut off is not reused.
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
  }
}

/** COPY text in, the mapped lines out (a filtered row writes nothing). */
function transformLines(mapLine: (line: string) => string | null) {
  return async function* (chunks: AsyncIterable<Buffer>): AsyncGenerator<string> {
    const decoder = new StringDecoder('utf8');
    const lines = new CopyLineSplitter();
    for await (const chunk of chunks) {
      let out = '';
      for (const line of lines.push(decoder.write(chunk))) {
        const mapped = mapLine(line);
        if (mapped !== null) out += mapped;
      }
      if (out !== '') yield out;
    }
    const last = lines.end() + decoder.end();
    if (last !== '') {
      const mapped = mapLine(last);
      if (mapped !== null) yield mapped;
    }
  };
}
