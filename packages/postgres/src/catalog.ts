// Catalog queries more than one part runs against blue.

/**
 * Every table teal replicates when the config does not list tables (run on blue): ordinary
 * and partitioned tables of non-system schemas, not leaf partitions (they replicate through
 * their root: the publication has publish_via_partition_root), not unlogged or temporary
 * tables (logical decoding never sees their changes). Columns: schema, table, oid, relkind.
 */
export const DEFAULT_TABLES_SQL = `
  SELECT n.nspname AS schema, c.relname AS table, c.oid::int8::text AS oid, c.relkind::text AS relkind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence = 'p'
     AND n.nspname <> 'teal' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
   ORDER BY 1, 2`;
