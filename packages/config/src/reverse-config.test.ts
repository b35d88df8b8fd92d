import { TealError } from '@teal/errors';
import { describe, expect, it } from 'vitest';
import { defineConfig, type TealConfig } from './define-config.ts';
import { resolveConfig } from './resolve-config.ts';
import { blueTypeAccepts, catalogOf, type ReverseCatalogTable, reverseConfig } from './reverse-config.ts';
import { compileTransforms } from './transforms.ts';

const users: ReverseCatalogTable = {
  blueTable: 'public.users',
  blueColumns: [
    { name: 'id', type: 'integer', key: true },
    { name: 'full_name', type: 'text' },
    { name: 'email', type: 'text' },
    { name: 'legacy_flag', type: 'boolean' },
    { name: 'score', type: 'numeric' },
  ],
  greenColumns: [
    { name: 'id', type: 'integer', key: true },
    { name: 'name', type: 'text' },
    { name: 'email', type: 'text' },
    { name: 'email_domain', type: 'text' },
    { name: 'score', type: 'bigint' },
  ],
};

const forwardConfig: TealConfig = {
  slot: 'mig',
  publication: 'mig_pub',
  kafka: { topicPrefix: 'mig' },
  transforms: {
    users: {
      renameTo: 'app.people',
      renameColumns: { full_name: 'name' },
      dropColumns: ['legacy_flag'],
      derive: { email_domain: (r) => r.email?.split('@')[1] ?? null },
      cast: { score: 'bigint' },
    },
  },
};

function plan(config: TealConfig, catalog?: ReverseCatalogTable[]) {
  return reverseConfig(resolveConfig(defineConfig(config)), catalog);
}

describe('reverseConfig', () => {
  it('swaps blue and green and suffixes the topic prefix, slot and publication', () => {
    const forward = resolveConfig(
      defineConfig({
        ...forwardConfig,
        blue: { url: 'postgres://b@h:1/a' },
        green: { url: 'postgres://g@h:2/a' },
      }),
    );
    const { config } = reverseConfig(forward, [users]);
    expect(config.blue.url).toBe('postgres://g@h:2/a');
    expect(config.green.url).toBe('postgres://b@h:1/a');
    expect(config.kafka.topicPrefix).toBe('mig_reverse');
    expect(config.slot).toBe('mig_reverse');
    expect(config.publication).toBe('mig_pub_reverse');
    expect(config.api.port).toBe(forward.api.port);
    expect(config.tables).toEqual(['app.people']);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('maps a renamed table and column back, does not write derived columns, keeps dropped ones as blueOnly', () => {
    const { tables, problems, config } = plan(forwardConfig, [users]);
    expect(problems).toEqual([]);
    expect(tables).toEqual([
      {
        greenTable: 'app.people',
        blueTable: 'public.users',
        columns: { id: 'id', name: 'full_name', email: 'email', score: 'score' },
        notWrittenBack: ['email_domain'],
        blueOnly: ['legacy_flag'],
        derivedBack: [],
      },
    ]);
    // The reverse transform turns green's row into blue's.
    const t = compileTransforms(config);
    expect(t.target('app', 'people')).toEqual({ schema: 'public', table: 'users' });
    expect(
      t.applyRow('app', 'people', {
        id: '1',
        name: 'Ann',
        email: 'a@x.org',
        email_domain: 'x.org',
        score: '7',
      }),
    ).toEqual({ id: '1', full_name: 'Ann', email: 'a@x.org', score: '7' });
  });

  it('names a cast blue cannot take back, and accepts the declared reverse derive', () => {
    // Blue's numeric takes green's bigint back (forwardConfig), and text takes anything.
    const fine = plan(
      {
        ...forwardConfig,
        transforms: { users: { ...forwardConfig.transforms?.users, cast: { full_name: 'integer' } } },
      },
      [
        {
          ...users,
          greenColumns: users.greenColumns.map((c) => (c.name === 'name' ? { ...c, type: 'integer' } : c)),
        },
      ],
    );
    expect(fine.problems).toEqual([]);
    const narrowed = plan(
      {
        ...forwardConfig,
        transforms: { users: { ...forwardConfig.transforms?.users, cast: { score: 'text' } } },
      },
      [
        {
          ...users,
          greenColumns: users.greenColumns.map((c) => (c.name === 'score' ? { ...c, type: 'text' } : c)),
        },
      ],
    );
    expect(narrowed.problems).toHaveLength(1);
    expect(narrowed.problems[0]).toMatchObject({ table: 'public.users', column: 'score' });
    expect(narrowed.problems[0].message).toContain("blue's numeric to green's text");
    expect(narrowed.problems[0].declare).toContain('transforms["public.users"].reverse');
    expect(narrowed.problems[0].declare).toContain('derive');

    const declared = plan(
      {
        ...forwardConfig,
        transforms: {
          users: {
            ...forwardConfig.transforms?.users,
            cast: { score: 'text' },
            reverse: {
              derive: { score: (g) => (g.score === null ? null : String(Math.trunc(Number(g.score)))) },
            },
          },
        },
      },
      [
        {
          ...users,
          greenColumns: users.greenColumns.map((c) => (c.name === 'score' ? { ...c, type: 'text' } : c)),
        },
      ],
    );
    expect(declared.problems).toEqual([]);
    expect(declared.tables[0].derivedBack).toEqual(['score']);
    expect(declared.tables[0].notWrittenBack).toContain('score');
    const t = compileTransforms(declared.config);
    expect(
      t.applyRow('app', 'people', { id: '1', name: 'A', email: null, email_domain: null, score: '7.9' }),
    ).toEqual({
      id: '1',
      full_name: 'A',
      email: null,
      score: '7',
    });
  });

  it('a derive that replaced a blue column cannot be inverted without reverse.derive or reverse.keep', () => {
    const config: TealConfig = {
      transforms: { users: { derive: { email: (r) => r.email?.toLowerCase() ?? null } } },
    };
    const catalog: ReverseCatalogTable[] = [
      {
        blueTable: 'public.users',
        blueColumns: [
          { name: 'id', type: 'integer', key: true },
          { name: 'email', type: 'text' },
        ],
        greenColumns: [
          { name: 'id', type: 'integer', key: true },
          { name: 'email', type: 'text' },
        ],
      },
    ];
    const { problems } = plan(config, catalog);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ table: 'public.users', column: 'email' });
    expect(problems[0].declare).toMatch(/keep: \["email"\]/);

    const kept = plan(
      { transforms: { users: { ...config.transforms?.users, reverse: { keep: ['email'] } } } },
      catalog,
    );
    expect(kept.problems).toEqual([]);
    expect(kept.tables[0]).toMatchObject({
      columns: { id: 'id' },
      blueOnly: ['email'],
      notWrittenBack: ['email'],
    });
  });

  it('a filter is a problem until the table is declared reverse.ignore, and an ignored table is not streamed back', () => {
    const filtered: TealConfig = {
      tables: ['users', 'orders'],
      transforms: { users: { filter: (r) => r.id !== '0' } },
    };
    const { problems } = plan(filtered);
    expect(problems).toEqual([
      expect.objectContaining({ table: 'public.users', declare: expect.stringContaining('ignore: true') }),
    ]);
    const ignored = plan({
      tables: ['users', 'orders'],
      transforms: { users: { filter: (r) => r.id !== '0', reverse: { ignore: true } } },
    });
    expect(ignored.problems).toEqual([]);
    expect(ignored.ignored).toEqual(['public.users']);
    expect(ignored.config.tables).toEqual(['public.orders']);
  });

  it('key columns cannot be derived back; keyColumns and ordered follow the green names', () => {
    const { problems, config } = plan(
      {
        keyColumns: { users: ['full_name'] },
        ordered: { users: true },
        transforms: { users: { renameColumns: { full_name: 'name' }, reverse: { keep: ['full_name'] } } },
      },
      [users],
    );
    expect(problems).toEqual([
      expect.objectContaining({ column: 'full_name', message: expect.stringContaining('key column') }),
    ]);
    expect(config.keyColumns).toEqual({ 'public.users': ['name'] });
    expect(config.ordered).toEqual({ 'public.users': true });
  });

  it('without a catalog: the configured tables map by name, and catalogOf(tables) plans the same again', () => {
    const noCatalog = plan({ tables: ['users'], transforms: forwardConfig.transforms });
    expect(noCatalog.config.tables).toEqual(['app.people']);
    expect(noCatalog.tables[0].columns).toEqual({ name: 'full_name', score: 'score' });
    expect(plan({}).config.tables).toBe('all');

    const exact = plan(forwardConfig, [users]);
    const again = plan(forwardConfig, catalogOf(exact.tables));
    expect(again.tables).toEqual(exact.tables);
    expect(again.config.transforms).toEqual(exact.config.transforms);
  });

  it('a reverse entry is validated like the rest of the config', () => {
    let err: unknown;
    try {
      resolveConfig({ transforms: { users: { reverse: { kep: ['a'], ignore: 1, derive: { a: 'x' } } } } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TealError);
    const message = (err as TealError).message;
    expect(message).toContain('transforms["users"].reverse.kep: unknown key; did you mean "keep"?');
    expect(message).toContain('transforms["users"].reverse.ignore: expected true');
    expect(message).toContain('transforms["users"].reverse.derive.a: expected a function');
    expect(() =>
      compileTransforms(
        resolveConfig({ transforms: { users: { reverse: { keep: ['emial'] } } } }),
      ).checkTable({
        schema: 'public',
        table: 'users',
        columns: [{ name: 'id' }, { name: 'email' }],
        keyColumns: ['id'],
      }),
    ).toThrow(/reverse\.keep\[0\]: blue table public\.users has no column "emial"; did you mean "email"\?/);
  });

  it('knows which type pairs blue takes back', () => {
    expect(blueTypeAccepts('text', 'numeric(12,2)')).toBe(true);
    expect(blueTypeAccepts('bigint', 'integer')).toBe(true);
    expect(blueTypeAccepts('integer', 'bigint')).toBe(false);
    expect(blueTypeAccepts('numeric', 'bigint')).toBe(true);
    expect(blueTypeAccepts('numeric(10,2)', 'numeric(12,2)')).toBe(false);
    expect(blueTypeAccepts('numeric(14,4)', 'numeric(12,2)')).toBe(true);
    expect(blueTypeAccepts('character varying(20)', 'character varying(10)')).toBe(true);
    expect(blueTypeAccepts('timestamp without time zone', 'timestamp with time zone')).toBe(false);
  });
});
