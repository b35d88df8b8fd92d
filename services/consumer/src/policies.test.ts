import { TealError } from '@teal/errors';
import { describe, expect, it } from 'vitest';
import { classifyError, errorCode, errorMessage } from './error-policy.ts';
import { ddlType, decideColumns, missingTableReason } from './schema-policy.ts';

const pgError = (code: string, message = 'boom', detail?: string) =>
  Object.assign(new Error(message), { code, detail });

describe('classifyError', () => {
  it('retries connection loss, serialization failures, deadlocks and shutdowns in place', () => {
    for (const code of ['08006', '40001', '40P01', '57P01', 'ECONNRESET'])
      expect(classifyError(pgError(code))).toBe('transient');
    expect(classifyError(new Error('Connection terminated unexpectedly'))).toBe('transient');
    expect(classifyError(Object.assign(new Error('leader moved'), { retriable: true }))).toBe('transient');
  });

  it("dead-letters what is one record's fault: constraints, bad values, transforms, undecodable bytes", () => {
    for (const code of ['23505', '23514', '23502', '22P02', '22003', '42804']) {
      expect(classifyError(pgError(code))).toBe('permanent');
    }
    expect(classifyError(new TealError('TEAL_TRANSFORM_FAILED', 'x'))).toBe('permanent');
    expect(classifyError(new TealError('TEAL_AVRO_UNDECODABLE', 'x'))).toBe('permanent');
  });

  it('reloads the catalog on a missing table or column instead of dead-lettering', () => {
    expect(classifyError(pgError('42703'))).toBe('transient');
    expect(classifyError(pgError('42P01'))).toBe('transient');
  });

  it('blocks (never dead-letters the whole stream) on errors that are not the record: permissions, unknown types', () => {
    expect(classifyError(pgError('42501'))).toBe('blocked');
    expect(classifyError(pgError('42704'))).toBe('blocked');
    expect(classifyError(new TealError('TEAL_SCHEMA_BLOCKED', 'x', { retriable: true }))).toBe('blocked');
  });

  it("blocks on green refusing a session's TLS or login (a rotated password must not dead-letter the stream)", () => {
    expect(classifyError(pgError('28P01'))).toBe('blocked');
    expect(classifyError(new TealError('TEAL_PG_AUTH', 'x'))).toBe('blocked');
    expect(classifyError(new TealError('TEAL_PG_TLS', 'x'))).toBe('blocked');
  });

  it('names the error by SQLSTATE or teal code, with the detail', () => {
    expect(errorCode(pgError('23514'))).toBe('23514');
    expect(errorCode(new TealError('TEAL_TRANSFORM_FAILED', 'x'))).toBe('TEAL_TRANSFORM_FAILED');
    expect(errorMessage(pgError('23514', 'violates check', 'Failing row contains (2)'))).toBe(
      'violates check (Failing row contains (2))',
    );
  });
});

describe('decideColumns', () => {
  const t = { schema: 'public', table: 'users' };
  const green = new Map([
    ['id', 'integer'],
    ['name', 'text'],
  ]);

  it('passes rows whose columns green has', () => {
    expect(decideColumns(t, t, green, ['id', 'name'], 'fail')).toEqual({ kind: 'ok' });
  });

  it('fail names the table, the column and the config key to change', () => {
    const d = decideColumns(t, t, green, ['id', 'name', 'email'], 'fail');
    expect(d.kind).toBe('block');
    const reason = (d as { reason: string }).reason;
    expect(reason).toContain('public.users');
    expect(reason).toContain('"email"');
    expect(reason).toContain('apply.onMissingColumn');
  });

  it('ignore drops and add adds exactly the missing columns', () => {
    expect(decideColumns(t, t, green, ['id', 'email', 'age', 'email'], 'ignore')).toEqual({
      kind: 'ignore',
      drop: ['email', 'age'],
    });
    expect(decideColumns(t, t, green, ['id', 'email'], 'add')).toEqual({ kind: 'add', add: ['email'] });
  });

  it('a missing table points at apply.createTables', () => {
    expect(missingTableReason(t, { schema: 'public', table: 'old' })).toMatch(
      /public\.users.*public\.old.*apply\.createTables/,
    );
  });
});

describe('ddlType', () => {
  const col = (name: string, typmod = -1) => ({
    name: 'c',
    type: { oid: 0, name, kind: 'base' as const },
    typmod,
    isKey: false,
  });
  it('renders typmods of varchar, numeric and timestamps, and keeps arrays and user types', () => {
    expect(ddlType(col('varchar', 14))).toBe('varchar(10)');
    expect(ddlType(col('numeric', ((12 << 16) | 2) + 4))).toBe('numeric(12,2)');
    expect(ddlType(col('timestamptz', 3))).toBe('timestamptz(3)');
    expect(ddlType(col('int4[]'))).toBe('int4[]');
    expect(ddlType(col('public.mood'))).toBe('public.mood');
    expect(ddlType(col('numeric'))).toBe('numeric');
  });
});
