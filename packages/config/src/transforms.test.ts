import { TealError } from '@teal/errors';
import { describe, expect, it } from 'vitest';
import { defineConfig } from './define-config.ts';
import { resolveConfig } from './resolve-config.ts';
import { compileTransforms } from './transforms.ts';

function transformsOf(config: Parameters<typeof defineConfig>[0]) {
  return compileTransforms(resolveConfig(defineConfig(config)));
}

function thrown(fn: () => unknown): TealError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TealError);
    return err as TealError;
  }
  throw new Error('expected a TealError');
}

describe('compileTransforms', () => {
  it("derives the article's email_domain from email", () => {
    const t = transformsOf({
      transforms: {
        users: { derive: { email_domain: (r) => r.email?.split('@')[1]?.toLowerCase() ?? null } },
      },
    });
    expect(t.applyRow('public', 'users', { id: '1', email: 'Ann@Example.COM' })).toEqual({
      id: '1',
      email: 'Ann@Example.COM',
      email_domain: 'example.com',
    });
    expect(t.applyRow('public', 'users', { id: '2', email: null })).toEqual({
      id: '2',
      email: null,
      email_domain: null,
    });
    expect(t.derivedColumns('public', 'users')).toEqual(['email_domain']);
    expect(t.needsFullRow('public', 'users')).toBe(true);
  });

  it('passes tables without a transform through unchanged', () => {
    const t = transformsOf({ transforms: { 'app.orders': { dropColumns: ['note'] } } });
    const row = { id: '1', note: 'x' };
    expect(t.applyRow('public', 'orders', row)).toBe(row);
    expect(t.target('public', 'orders')).toEqual({ schema: 'public', table: 'orders' });
    expect(t.columnName('public', 'orders', 'note')).toBe('note');
    expect(t.needsFullRow('public', 'orders')).toBe(false);
    expect(t.applyRow('app', 'orders', row)).toEqual({ id: '1' });
  });

  it('renames tables and columns, keys included', () => {
    const t = transformsOf({
      transforms: {
        'public.users': { renameTo: 'crm.people', renameColumns: { id: 'person_id', name: 'full_name' } },
      },
    });
    expect(t.target('public', 'users')).toEqual({ schema: 'crm', table: 'people' });
    expect(t.applyRow('public', 'users', { id: '7', name: 'Ann', age: '3' })).toEqual({
      person_id: '7',
      full_name: 'Ann',
      age: '3',
    });
    expect(t.columnName('public', 'users', 'id')).toBe('person_id');
    expect(t.columnName('public', 'users', 'age')).toBe('age');
    expect(t.blueColumn('public', 'users', 'person_id')).toBe('id');
    expect(t.blueColumn('public', 'users', 'id')).toBeUndefined();
    expect(t.needsFullRow('public', 'users')).toBe(false);
  });

  it('renames a table given without schema into public', () => {
    const t = transformsOf({ transforms: { users: { renameTo: 'members' } } });
    expect(t.target('public', 'users')).toEqual({ schema: 'public', table: 'members' });
  });

  it('drops columns and maps them to null', () => {
    const t = transformsOf({ transforms: { users: { dropColumns: ['password_hash'] } } });
    expect(t.applyRow('public', 'users', { id: '1', password_hash: 'x' })).toEqual({ id: '1' });
    expect(t.columnName('public', 'users', 'password_hash')).toBeNull();
  });

  it('marks cast columns by their green name and keeps their text', () => {
    const t = transformsOf({
      transforms: {
        users: {
          renameColumns: { balance: 'balance_cents' },
          cast: { balance: 'numeric(12,2)', score: 'int8', tag: 'text[]' },
          derive: { tag: (r) => `{${r.name}}` },
        },
      },
    });
    expect(t.castType('public', 'users', 'balance_cents')).toBe('numeric(12,2)');
    expect(t.castType('public', 'users', 'score')).toBe('int8');
    expect(t.castType('public', 'users', 'tag')).toBe('text[]');
    expect(t.castType('public', 'users', 'balance')).toBeUndefined();
    expect(t.applyRow('public', 'users', { balance: '1.5', score: '3', name: 'a' })).toEqual({
      balance_cents: '1.5',
      score: '3',
      name: 'a',
      tag: '{a}',
    });
  });

  it('gives derive and filter the blue row before renames and drops, read-only', () => {
    const seen: unknown[] = [];
    const t = transformsOf({
      transforms: {
        users: {
          renameColumns: { email: 'mail' },
          dropColumns: ['secret'],
          filter: (r) => {
            seen.push({ ...r });
            return true;
          },
          derive: {
            secret_len: (r) => String(r.secret?.length ?? 0),
            mutate: (r) => {
              (r as Record<string, string>).email = 'changed';
              return 'no';
            },
          },
        },
      },
    });
    const row = { email: 'a@b', secret: 'abc' };
    const err = thrown(() => t.applyRow('public', 'users', row));
    expect(err.code).toBe('TEAL_TRANSFORM_FAILED');
    expect(err.message).toContain('derive "mutate"');
    expect(row.email).toBe('a@b');
    expect(seen).toEqual([{ email: 'a@b', secret: 'abc' }]);
  });

  it('filters rows out', () => {
    const t = transformsOf({ transforms: { events: { filter: (r) => r.kind !== 'debug' } } });
    expect(t.applyRow('public', 'events', { id: '1', kind: 'debug' })).toBeNull();
    expect(t.applyRow('public', 'events', { id: '2', kind: 'info' })).toEqual({ id: '2', kind: 'info' });
    expect(t.hasFilter('public', 'events')).toBe(true);
  });

  it('turns a throwing derive into TEAL_TRANSFORM_FAILED naming table, transform, column and message', () => {
    const t = transformsOf({
      transforms: {
        users: {
          derive: {
            email_domain: (r) => {
              if (!r.email?.includes('@')) throw new Error(`no @ in ${r.email}`);
              return r.email.split('@')[1];
            },
          },
        },
      },
    });
    const err = thrown(() => t.applyRow('public', 'users', { id: '1', email: 'nobody' }));
    expect(err.code).toBe('TEAL_TRANSFORM_FAILED');
    expect(err.retriable).toBe(false);
    expect(err.message).toBe('transform derive "email_domain" of table public.users threw: no @ in nobody');
    expect(err.details).toEqual({ table: 'public.users', transform: 'derive', column: 'email_domain' });
    expect((err.cause as Error).message).toBe('no @ in nobody');
  });

  it('rejects a throwing filter and a filter returning a non-boolean', () => {
    const throwing = transformsOf({
      transforms: {
        users: {
          filter: () => {
            throw new RangeError('boom');
          },
        },
      },
    });
    expect(thrown(() => throwing.applyRow('public', 'users', { id: '1' })).message).toBe(
      'transform filter of table public.users threw: boom',
    );
    const sloppy = transformsOf({
      transforms: { users: { filter: ((r: { id: string }) => r.id) as never } },
    });
    expect(thrown(() => sloppy.applyRow('public', 'users', { id: '1' })).message).toContain(
      'returned string',
    );
  });

  it('rejects a derive that returns something other than text or null', () => {
    const t = transformsOf({
      transforms: { users: { derive: { n: (() => 42) as never, u: (() => undefined) as never } } },
    });
    const err = thrown(() => t.applyRow('public', 'users', { id: '1' }));
    expect(err.message).toContain('derive "n" of table public.users returned number');
  });

  it('names a column a function reads that the row does not carry (typo or unchanged TOAST)', () => {
    const t = transformsOf({ transforms: { users: { derive: { d: (r) => r.emial ?? null } } } });
    const err = thrown(() => t.applyRow('public', 'users', { id: '1', email: 'a@b' }));
    expect(err.code).toBe('TEAL_TRANSFORM_FAILED');
    expect(err.message).toContain('read column "emial" that the row does not carry (it has: id, email)');
  });

  it("checks a transform against blue's columns", () => {
    const t = transformsOf({
      transforms: {
        users: {
          renameColumns: { emial: 'mail', name: 'nick' },
          dropColumns: ['id', 'legacy_flag'],
          cast: { agee: 'int8', d: 'text' },
          derive: { d: () => null },
        },
      },
    });
    const err = thrown(() =>
      t.checkTable({
        schema: 'public',
        table: 'users',
        columns: [{ name: 'id' }, { name: 'email' }, { name: 'name' }, { name: 'nick' }, { name: 'age' }],
        keyColumns: ['id'],
      }),
    );
    expect(err.code).toBe('TEAL_CONFIG_INVALID');
    expect(err.details?.problems).toEqual([
      'transforms["public.users"].renameColumns["emial"]: blue table public.users has no column "emial"; did you mean "email"?',
      'transforms["public.users"].dropColumns[0]: "id" is a key column of public.users and cannot be dropped',
      'transforms["public.users"].dropColumns[1]: blue table public.users has no column "legacy_flag"',
      'transforms["public.users"].cast["agee"]: blue table public.users has no column "agee"; did you mean "age"?',
      'transforms["public.users"].renameColumns["name"]: green column "nick" would receive both "name" and "nick"; drop or rename the other one',
    ]);
    // A table without a transform, or one that fits, passes.
    t.checkTable({ schema: 'public', table: 'other', columns: [], keyColumns: [] });
  });
});
