import { describe, expect, it } from 'vitest';
import { isRetriablePgError, sqlState } from './sqlstate.ts';
import { TealError } from './teal-error.ts';

describe('sqlState and isRetriablePgError', () => {
  it('reads a SQLSTATE only from a Postgres error, never from a Node system error', () => {
    expect(sqlState({ code: '40P01', severity: 'ERROR' })).toBe('40P01');
    // Regression: "write EPIPE" (five capitals) was read as SQLSTATE EPIPE, judged permanent,
    // and a replication session whose server stopped was not restarted.
    expect(
      sqlState(Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32, syscall: 'write' })),
    ).toBe(undefined);
    expect(sqlState({ code: 'EPERM' })).toBe(undefined);
    expect(sqlState({ code: 'ECONNRESET' })).toBe(undefined);
  });

  it('retries connection, serialization, deadlock and shutdown errors, and socket errors', () => {
    for (const code of ['08006', '40001', '40P01', '55P03', '57P01', '53300'])
      expect(isRetriablePgError({ code }), code).toBe(true);
    for (const code of ['23505', '42P01', '22P02', '0A000'])
      expect(isRetriablePgError({ code }), code).toBe(false);
    expect(
      isRetriablePgError(Object.assign(new Error('write EPIPE'), { code: 'EPIPE', syscall: 'write' })),
    ).toBe(true);
    expect(isRetriablePgError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe(true);
  });

  it('knows a lost connection by its mark, not by its message', () => {
    expect(isRetriablePgError(new Error('Connection terminated unexpectedly'))).toBe(false);
    expect(isRetriablePgError(Object.assign(new Error('anything'), { connectionLost: true }))).toBe(true);
  });

  it("takes a TealError's own retriable, which defaults from its code", () => {
    expect(isRetriablePgError(new TealError('TEAL_REPLICATION_CONNECTION_LOST', 'gone'))).toBe(true);
    expect(isRetriablePgError(new TealError('TEAL_SLOT_MISSING', 'gone'))).toBe(false);
    expect(isRetriablePgError(new TealError('TEAL_SLOT_MISSING', 'gone', { retriable: true }))).toBe(true);
  });
});
