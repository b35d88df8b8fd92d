// Table names in config are "schema.table" or "table" (schema public), written as Postgres
// stores them (case-sensitive, unquoted). Inside teal they are always "schema.table".

export interface TableName {
  readonly schema: string;
  readonly table: string;
}

const TABLE_NAME = /^(?:([^.\s"]+)\.)?([^.\s"]+)$/;

/** Parses "schema.table" or "table"; undefined when the text is not a table name. */
export function parseTableName(text: string): TableName | undefined {
  const match = TABLE_NAME.exec(text);
  if (!match || match[2].length > 63 || (match[1]?.length ?? 0) > 63) return undefined;
  return { schema: match[1] ?? 'public', table: match[2] };
}

export function qualifiedName(schema: string, table: string): string {
  return `${schema}.${table}`;
}

/** "public.users" for "users" or "public.users"; the text unchanged when it is not a table name. */
export function normalizeTableName(text: string): string {
  const name = parseTableName(text);
  return name ? qualifiedName(name.schema, name.table) : text;
}

/** Schemas teal never replicates: Postgres's own and teal's state schema. */
export function isReplicatedSchema(schema: string): boolean {
  return !(schema === 'teal' || schema === 'information_schema' || schema.startsWith('pg_'));
}
