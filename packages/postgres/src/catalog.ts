// Catalog queries more than one part runs against blue.

/** Every table teal replicates when the config does not list tables (run on blue). */
export const DEFAULT_TABLES_SQL = `
  SELECT n.nspname AS schema, c.relname AS table
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
     AND n.nspname <> 'teal' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
   ORDER BY 1, 2`;
