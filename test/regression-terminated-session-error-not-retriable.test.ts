import { isRetriablePgError } from '@teal/errors';
import { createPool } from '@teal/postgres';
import { waitFor } from '@teal/runtime';
import { expect, onTestFinished, test } from 'vitest';
import { blueUrl, pgClient } from './support/env.ts';

// Found by the 300 s soak (docs/reliability.md): after a `terminate` fault on blue the producer
// stopped for good with "the replication stream failed for good: Client has encountered a
// connection error and is not queryable", raised by the current-row reader (a pooled client,
// services/producer/src/current-row-reader.ts) in the middle of its transaction. A session
// that blue ends reports the FATAL with SQLSTATE 57P01 (retriable), but the client's next
// query fails with node-postgres's "not queryable" error, which has no code. TealClient
// marks errors of a lost connection only once the socket has ended, or after an 'error'
// without a code, so that second error is not retriable and the stream gives up. Here the
// next query comes right when the session's error arrives, as it did in the reader.

test('the query after blue ended a pooled session is a retriable error', async () => {
  const admin = await pgClient(blueUrl());
  const pool = createPool(blueUrl(), { max: 1, applicationName: 'teal-regression-not-queryable' });
  pool.on('error', () => {});
  onTestFinished(() => pool.end().catch(() => {}));
  const client = await pool.connect();
  onTestFinished(() => client.release(true));
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  let next: Promise<unknown> | undefined;
  client.once('error', () => {
    // The reader's next statement, issued as soon as the session is gone.
    next = client.query('SELECT 1').then(
      () => 'no error',
      (err: unknown) => err,
    );
  });
  await admin.query('SELECT pg_terminate_backend($1)', [pid]);
  await waitFor(() => next !== undefined, { what: "the client's error for the ended session" });
  const err = await next;
  expect(err).toBeInstanceOf(Error);
  expect(isRetriablePgError(err), `${(err as Error).message} (code ${(err as { code?: string }).code})`).toBe(
    true,
  );
});
