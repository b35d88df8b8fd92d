// Identifier and literal quoting for SQL text that teal builds itself (DDL, the batched
// simple-query statements of the apply path, replication commands).

/** Double-quotes an identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function quoteTable(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}

/**
 * A string literal that reads the same whatever standard_conforming_strings says (as
 * node-postgres's escapeLiteral): a backslash makes it an E'' literal with doubled backslashes.
 */
export function quoteLiteral(text: string): string {
  const quoted = `'${text.replaceAll("'", "''")}'`;
  return text.includes('\\') ? ` E${quoted.replaceAll('\\', '\\\\')}` : quoted;
}

/** A safe integer as SQL text; throws on anything else (never interpolate an unchecked number). */
export function sqlInt(n: number): string {
  if (!Number.isSafeInteger(n)) throw new Error(`not an integer: ${n}`);
  return String(n);
}

/**
 * A string in a replication command (START_REPLICATION ... (publication_names '...')): the
 * walsender's own scanner (src/backend/replication/repl_scanner.l) takes '...' with doubled
 * quotes only, no E'' form, so quoteLiteral() does not fit there.
 */
export function replicationLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}
