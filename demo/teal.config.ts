import { defineConfig } from '@teal/config';

// The demo's migration, after the article: green's users get `email_domain` derived from
// `email` in flight, and `name` becomes `full_name`. orders moves unchanged.
export default defineConfig({
  tables: ['public.users', 'public.orders'],
  transforms: {
    'public.users': {
      renameColumns: { name: 'full_name' },
      derive: {
        email_domain: (row) => row.email?.split('@')[1]?.toLowerCase() ?? null,
      },
    },
  },
  apply: {
    // orders reference users; partitions apply in parallel, so FK checks are left to blue
    // (as native logical replication does).
    sessionReplicationRole: 'replica',
    batchSize: 2000,
  },
  heartbeatMs: 2000,
});
