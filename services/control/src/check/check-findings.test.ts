import { compileTransforms, resolveConfig } from '@teal/config';
import { describe, expect, test } from 'vitest';
import type {
  BlueServerFacts,
  BlueTableFacts,
  CheckFacts,
  ColumnFacts,
  GreenTableFacts,
} from './check-facts.ts';
import { deriveFindings, type Finding } from './check-findings.ts';
import { blockedMessage, checkReport, formatCheckReport } from './check-report.ts';

// The rules of `teal check` from hand-written facts: no server. test/check.test.ts reads
// the same facts from real catalogs.

const col = (name: string, type = 'integer', extra: Partial<ColumnFacts> = {}): ColumnFacts => ({
  name,
  type,
  baseType: type.replace(/\(.*\)$/, ''),
  userType: null,
  notNull: true,
  generated: false,
  identity: null,
  ...extra,
});

const pk = (columns: string[]) => ({
  name: 'pk',
  columns,
  primary: true,
  replicaIdentity: false,
  partialOrExpression: false,
  immediate: true,
  exclusion: false,
});

function blueTable(name: string, extra: Partial<BlueTableFacts> = {}): BlueTableFacts {
  return {
    name,
    kind: 'table',
    partitionRoot: null,
    leavesWithoutIdentity: [],
    unlogged: false,
    selectable: true,
    owned: true,
    replicaIdentity: 'default',
    columns: [col('id'), col('v', 'text', { notNull: false })],
    uniqueIndexes: [pk(['id'])],
    largestRowBytes: 100,
    rowSizeSampled: false,
    ...extra,
  };
}

function greenTable(name: string, extra: Partial<GreenTableFacts> = {}): GreenTableFacts {
  return {
    name,
    columns: [col('id'), col('v', 'text', { notNull: false })],
    uniqueIndexes: [pk(['id'])],
    foreignKeys: [],
    referencedBy: [],
    triggers: [],
    ...extra,
  };
}

const server: BlueServerFacts = {
  serverVersion: '15.8',
  walLevel: 'logical',
  maxReplicationSlots: 10,
  replicationSlotsUsed: 1,
  maxWalSenders: 10,
  walSendersUsed: 1,
  maxSlotWalKeepSizeMb: 10240,
  role: { name: 'teal', superuser: false, replication: true },
  ownSlotExists: false,
  database: 'app',
  canCreateInDatabase: true,
  publication: null,
  largeObjects: 0,
  sequences: 0,
  unloggedTables: [],
};

function facts(
  blue: BlueTableFacts[],
  green: GreenTableFacts[] | null = blue.map((b) => greenTable(b.name)),
  more: Partial<CheckFacts> = {},
): CheckFacts {
  return {
    tables: blue.map((b) => ({ name: b.name, blue: b })),
    green: green ? new Map(green.map((g) => [g.name, g])) : null,
    greenTypes: new Set(),
    server,
    broker: { messageMaxBytes: 1_048_588, socketRequestMaxBytes: 104_857_600, topics: new Map() },
    ...more,
  };
}

function findings(f: CheckFacts, config: Record<string, unknown> = {}): Finding[] {
  const resolved = resolveConfig({ tables: f.tables.map((t) => t.name), ...config });
  return deriveFindings(f, resolved, compileTransforms(resolved));
}

const pick = (list: Finding[], check: string) => list.filter((f) => f.check === check);

describe('teal check findings', () => {
  test('a plain keyed table that green matches: only the broker note', () => {
    const list = findings(facts([blueTable('public.t')]));
    expect(list.map((f) => f.check)).toEqual(['broker-message-size']);
    expect(list[0].severity).toBe('info');
  });

  test('no usable key blocks; keyColumns or REPLICA IDENTITY FULL make one, nullable columns warn', () => {
    const nokey = blueTable('public.nokey', { uniqueIndexes: [] });
    const full = blueTable('public.full', { uniqueIndexes: [], replicaIdentity: 'full' });
    const configured = blueTable('public.conf', { uniqueIndexes: [] });
    const list = findings(facts([nokey, full, configured]), { keyColumns: { 'public.conf': ['v'] } });
    expect(pick(list, 'no-key')).toEqual([
      expect.objectContaining({
        table: 'public.nokey',
        severity: 'block',
        fix: expect.stringMatching(/ADD PRIMARY KEY/),
      }),
    ]);
    expect(pick(list, 'nullable-key').map((f) => [f.table, f.severity])).toEqual([
      ['public.conf', 'warn'],
      ['public.full', 'warn'],
    ]);
    expect(pick(list, 'key-columns-without-identity')).toEqual([
      expect.objectContaining({
        table: 'public.conf',
        severity: 'block',
        fix: expect.stringMatching(/REPLICA IDENTITY FULL/),
      }),
    ]);
  });

  test('keyColumns over a unique index of NOT NULL columns: teal sets it as replica identity (info)', () => {
    const t = blueTable('public.conf', {
      columns: [col('a'), col('b', 'text')],
      uniqueIndexes: [{ ...pk(['b']), name: 'conf_b_key', primary: false }],
    });
    const list = findings(facts([t]), { keyColumns: { 'public.conf': ['b'] } });
    expect(pick(list, 'key-columns-without-identity')[0]).toMatchObject({
      severity: 'info',
      teal: expect.stringContaining('REPLICA IDENTITY USING INDEX conf_b_key'),
    });
  });

  test('a partitioned root whose leaves have no replica identity blocks', () => {
    const root = blueTable('public.events', {
      kind: 'partitioned',
      leavesWithoutIdentity: ['public.events_a'],
    });
    expect(pick(findings(facts([root])), 'partition-without-identity')[0]).toMatchObject({
      severity: 'block',
      what: expect.stringContaining('public.events_a'),
    });
  });

  test('a partitioned root is info, a leaf partition in tables blocks naming its root', () => {
    const root = blueTable('public.events', { kind: 'partitioned' });
    const leaf = blueTable('public.events_2026', { kind: 'partition', partitionRoot: 'public.events' });
    const list = findings(facts([root, leaf]));
    expect(pick(list, 'partitioned-table')[0]).toMatchObject({
      table: 'public.events',
      severity: 'info',
      teal: expect.stringContaining('does not publish a TRUNCATE of one partition alone'),
      fix: expect.stringContaining('TRUNCATE public.events as a whole'),
    });
    expect(pick(list, 'partition-named')[0]).toMatchObject({
      table: 'public.events_2026',
      severity: 'block',
      fix: expect.stringContaining('public.events'),
    });
  });

  test('generated columns on blue and green, identity ALWAYS in green: info, a generated blue column plain in green warns', () => {
    const blue = blueTable('public.g', {
      columns: [
        col('id'),
        col('total', 'numeric', { generated: true }),
        col('v', 'text'),
        col('w', 'text', { generated: true }),
      ],
    });
    const green = greenTable('public.g', {
      columns: [
        col('id', 'integer', { identity: 'always' }),
        col('total', 'numeric', { generated: true }),
        col('v', 'text', { generated: true }),
        col('w', 'text'),
      ],
    });
    const list = findings(facts([blue], [green]));
    expect(pick(list, 'generated-column').map((f) => f.severity)).toEqual(['info', 'info']);
    expect(pick(list, 'green-identity-always')[0]).toMatchObject({
      severity: 'info',
      teal: expect.stringContaining('OVERRIDING SYSTEM VALUE'),
    });
    expect(pick(list, 'green-generated-column')[0]).toMatchObject({
      severity: 'info',
      what: expect.stringContaining('.v '),
    });
    expect(pick(list, 'generated-column-plain-in-green')[0]).toMatchObject({ severity: 'warn' });
  });

  test("green's unique constraints: ordered when blue has the same, warn when only green has it or ordered is off", () => {
    const unique = (name: string, columns: string[]) => ({
      name,
      columns,
      primary: false,
      replicaIdentity: false,
      partialOrExpression: false,
      immediate: true,
      exclusion: false,
    });
    const blue = blueTable('public.u', {
      columns: [col('id'), col('email', 'text'), col('code', 'text')],
      uniqueIndexes: [pk(['id']), unique('u_email', ['email'])],
    });
    const green = greenTable('public.u', {
      columns: blue.columns,
      uniqueIndexes: [pk(['id']), unique('g_email', ['email']), unique('g_code', ['code'])],
    });
    // Blue's own unique index orders the table (the producer's rule): green's are safe then.
    const list = findings(facts([blue], [green]));
    expect(pick(list, 'ordered-by-blue')[0]).toMatchObject({
      severity: 'info',
      what: "blue's public.u has UNIQUE u_email (email) besides its key",
    });
    expect(pick(list, 'unique-ordered').map((f) => [f.severity, f.what])).toEqual([
      ['info', "green's public.u has UNIQUE g_email (email), as blue does"],
      ['info', "green's public.u has UNIQUE g_code (code)"],
    ]);
    expect(pick(list, 'unique-only-in-green')).toEqual([]);

    // Without it, a unique index only green has is at risk: warn, fix ordered: true.
    const plainBlue = { ...blue, uniqueIndexes: [pk(['id'])] };
    const greenOnly = findings(facts([plainBlue], [green]));
    expect(pick(greenOnly, 'ordered-by-blue')).toEqual([]);
    expect(pick(greenOnly, 'unique-only-in-green').map((f) => f.severity)).toEqual(['warn', 'warn']);
    expect(pick(greenOnly, 'unique-only-in-green')[0].fix).toContain('ordered: { "public.u": true }');
    const forced = findings(facts([plainBlue], [green]), { ordered: { 'public.u': true } });
    expect(pick(forced, 'unique-only-in-green')).toEqual([]);
    expect(pick(forced, 'unique-ordered')).toHaveLength(2);
    const off = findings(facts([blue], [green]), { ordered: { 'public.u': false } });
    expect(pick(off, 'ordered-by-blue')).toEqual([]);
    expect(pick(off, 'unique-not-ordered').map((f) => f.severity)).toEqual(['warn', 'warn']);
    // Partial and exclusion indexes order a table too; a plain one over the key does not.
    const exclusion = { ...unique('no_overlap', ['code']), exclusion: true };
    const partial = { ...unique('u_partial', ['email']), partialOrExpression: true };
    const special = findings(facts([{ ...plainBlue, uniqueIndexes: [pk(['id']), exclusion, partial] }]));
    expect(pick(special, 'ordered-by-blue')[0].what).toBe(
      "blue's public.u has EXCLUDE no_overlap (code), UNIQUE u_partial (partial or on expressions) besides its key",
    );
  });

  test('foreign keys and triggers in green', () => {
    const green = greenTable('public.child', {
      foreignKeys: [{ name: 'child_parent_fk', table: 'public.parent' }],
      triggers: [
        { name: 'audit', enabled: 'O' },
        { name: 'always', enabled: 'A' },
        { name: 'off', enabled: 'D' },
      ],
    });
    const parent = greenTable('public.parent', {
      referencedBy: [{ name: 'child_parent_fk', table: 'public.child' }],
    });
    const list = findings(facts([blueTable('public.child'), blueTable('public.parent')], [green, parent]));
    expect(pick(list, 'green-foreign-keys')[0]).toMatchObject({
      severity: 'info',
      teal: expect.stringContaining('replica'),
    });
    expect(pick(list, 'green-referenced')[0]).toMatchObject({
      table: 'public.parent',
      severity: 'info',
      teal: expect.stringContaining('DELETE FROM'),
    });
    expect(pick(list, 'green-trigger').map((f) => [f.what.match(/trigger (\w+)/)?.[1], f.severity])).toEqual([
      ['always', 'warn'],
      ['audit', 'info'],
    ]);
    const origin = findings(facts([blueTable('public.child'), blueTable('public.parent')], [green, parent]), {
      apply: { sessionReplicationRole: 'origin' },
    });
    expect(pick(origin, 'green-foreign-keys')[0].severity).toBe('warn');
    expect(pick(origin, 'green-trigger').map((f) => f.severity)).toEqual(['warn', 'warn']);
  });

  test('missing green table, columns and types; incompatible and widened types; transforms are followed', () => {
    const blue = blueTable('public.s', {
      columns: [
        col('id'),
        col('name', 'text'),
        col('secret', 'text'),
        col('n', 'integer'),
        col('code', 'text'),
        col('mood', 'mood', { userType: 'public.mood' }),
      ],
    });
    const green = greenTable('app.s2', {
      columns: [
        col('id'),
        col('full_name', 'text'),
        col('n', 'bigint'),
        col('code', 'integer'),
        col('mood', 'text'),
      ],
    });
    const transforms = {
      'public.s': {
        renameTo: 'app.s2',
        renameColumns: { name: 'full_name' },
        dropColumns: ['secret'],
        derive: { domain: () => null },
      },
    };
    const list = findings(facts([blue], [green]), { transforms });
    expect(pick(list, 'green-column-missing')[0]).toMatchObject({
      severity: 'block',
      what: expect.stringMatching(/app\.s2 lacks column domain$/),
    });
    expect(pick(list, 'type-changed')[0]).toMatchObject({
      severity: 'info',
      what: expect.stringContaining('public.s.n'),
    });
    expect(pick(list, 'type-incompatible').map((f) => f.what.match(/public\.s\.(\w+)/)?.[1])).toEqual([
      'code',
      'mood',
    ]);
    expect(pick(list, 'type-incompatible')[0].fix).toContain('cast');
    const cast = findings(facts([blue], [green]), {
      transforms: { 'public.s': { ...transforms['public.s'], cast: { code: 'integer', mood: 'text' } } },
      apply: { onMissingColumn: 'add' },
    });
    expect(pick(cast, 'type-incompatible')).toEqual([]);
    expect(pick(cast, 'green-column-missing')[0].severity).toBe('info');

    const none = findings(facts([blue], []));
    expect(pick(none, 'green-table-missing')[0]).toMatchObject({
      severity: 'block',
      fix: expect.stringContaining('createTables'),
    });
    const created = findings(facts([blue], []), { apply: { createTables: true } });
    expect(pick(created, 'green-table-missing')[0]).toMatchObject({
      severity: 'block',
      what: expect.stringContaining('public.mood'),
    });
    const withType = findings(facts([blue], [], { greenTypes: new Set(['public.mood']) }), {
      apply: { createTables: true },
    });
    expect(pick(withType, 'green-table-missing')[0].severity).toBe('info');
  });

  test('modifiers: a longer varchar, more digits at the same scale, finer time widen; others warn', () => {
    const pairs: Array<[string, string, string, string]> = [
      ['character varying(20)', 'character varying', 'character varying(40)', 'type-changed'],
      ['character varying(40)', 'character varying', 'character varying(20)', 'type-modifier-changed'],
      ['numeric(10,2)', 'numeric', 'numeric(12,2)', 'type-changed'],
      ['numeric(10,2)', 'numeric', 'numeric(12,4)', 'type-modifier-changed'],
      [
        'timestamp(3) with time zone',
        'timestamp with time zone',
        'timestamp(6) with time zone',
        'type-changed',
      ],
      ['character(5)', 'character', 'character(10)', 'type-modifier-changed'],
    ];
    for (const [blueType, base, greenType, check] of pairs) {
      const blue = blueTable('public.m', { columns: [col('id'), col('c', blueType, { baseType: base })] });
      const green = greenTable('public.m', { columns: [col('id'), col('c', greenType, { baseType: base })] });
      const list = findings(facts([blue], [green])).filter((f) => f.check.startsWith('type-'));
      expect(
        list.map((f) => f.check),
        `${blueType} -> ${greenType}`,
      ).toEqual([check]);
    }
  });

  test('a transform that does not fit blue blocks with its own message', () => {
    const list = findings(facts([blueTable('public.t')]), {
      transforms: { 'public.t': { dropColumns: ['nope'] } },
    });
    expect(pick(list, 'transform-invalid')[0]).toMatchObject({
      severity: 'block',
      what: expect.stringContaining('"nope"'),
    });
  });

  test("blue's settings", () => {
    const bad: BlueServerFacts = {
      ...server,
      walLevel: 'replica',
      replicationSlotsUsed: 10,
      walSendersUsed: 10,
      maxSlotWalKeepSizeMb: -1,
      role: { name: 'app', superuser: false, replication: false },
      largeObjects: 2,
      sequences: 3,
    };
    const list = findings(facts([], [], { server: bad }));
    const bySeverity = Object.fromEntries(list.map((f) => [f.check, f.severity]));
    expect(bySeverity).toMatchObject({
      'wal-level': 'block',
      'replication-slots': 'block',
      'wal-senders': 'block',
      'max-slot-wal-keep-size': 'warn',
      'replication-privilege': 'block',
      'large-objects': 'warn',
      sequences: 'info',
    });
    expect(pick(list, 'replication-privilege')[0].fix).toBe(
      'ALTER ROLE app REPLICATION on blue (as a superuser)',
    );
    // A restart reuses teal's own slot: no free one is needed.
    const restart = findings(facts([], [], { server: { ...bad, ownSlotExists: true } }));
    expect(pick(restart, 'replication-slots')).toEqual([]);
  });

  test('a role that may not create the publication or publish a table it does not own blocks', () => {
    const role: BlueServerFacts = {
      ...server,
      role: { name: 'app', superuser: false, replication: true },
      canCreateInDatabase: false,
    };
    const t = blueTable('public.t', { owned: false });
    const list = findings(facts([t], undefined, { server: role }));
    expect(pick(list, 'publication-privilege')[0]).toMatchObject({
      severity: 'block',
      fix: expect.stringContaining('GRANT CREATE ON DATABASE app TO app'),
    });
    expect(pick(list, 'table-ownership')[0]).toMatchObject({
      table: 'public.t',
      severity: 'block',
      fix: expect.stringContaining('ALTER PUBLICATION teal_pub ADD TABLE public.t'),
    });
    // A publication that has the table already (created by its owner) needs neither.
    const published = findings(
      facts([t], undefined, { server: { ...role, publication: { allTables: false, tables: ['public.t'] } } }),
    );
    expect(pick(published, 'publication-privilege')).toEqual([]);
    expect(pick(published, 'table-ownership')).toEqual([]);
  });

  test('a green table without a unique index over the key is applied keyless (info)', () => {
    const list = findings(facts([blueTable('public.t')], [greenTable('public.t', { uniqueIndexes: [] })]));
    expect(pick(list, 'green-keyless')[0]).toMatchObject({
      severity: 'info',
      what: expect.stringContaining('(id)'),
    });
  });

  test('unlogged tables: warn when found by "all", block when listed (the publication refuses them)', () => {
    const t = blueTable('public.cache', { unlogged: true });
    expect(pick(findings(facts([t])), 'unlogged-table')[0].severity).toBe('block');
    const all = facts([t]);
    const resolved = resolveConfig({});
    expect(
      pick(deriveFindings(all, resolved, compileTransforms(resolved)), 'unlogged-table')[0].severity,
    ).toBe('warn');
  });

  test('row sizes against kafka.maxMessageBytes and the topic limit', () => {
    const big = blueTable('public.big', { largestRowBytes: 3 * 1024 ** 2 });
    const tooBig = findings(facts([big]), { kafka: { maxMessageBytes: 1024 ** 2 } });
    expect(pick(tooBig, 'row-too-large')[0]).toMatchObject({
      severity: 'block',
      fix: expect.stringContaining('TEAL_KAFKA_MAX_MESSAGE_BYTES'),
    });
    const topicSmall = findings(
      facts([big], undefined, {
        broker: {
          messageMaxBytes: 1_048_588,
          socketRequestMaxBytes: null,
          topics: new Map([['teal.public.big', 1_048_588]]),
        },
      }),
    );
    expect(pick(topicSmall, 'row-too-large-for-topic')[0]).toMatchObject({
      severity: 'warn',
      fix: expect.stringContaining('--entity-name teal.public.big --add-config max.message.bytes='),
    });
    expect(pick(findings(facts([big])), 'row-too-large')).toEqual([]);
    const sampled = blueTable('public.big', { largestRowBytes: 9 * 1024 ** 2, rowSizeSampled: true });
    expect(pick(findings(facts([sampled])), 'row-size-near-limit')[0].severity).toBe('warn');
  });

  test('without green (teal run with green away) green checks are left out, blue ones stay', () => {
    const list = findings(facts([blueTable('public.nokey', { uniqueIndexes: [] })], null));
    expect(list.map((f) => f.check)).toEqual(['broker-message-size', 'no-key']);
  });

  test('report: ok, counts, grouping, and the refusal message', () => {
    const list = findings(facts([blueTable('public.nokey', { uniqueIndexes: [] }), blueTable('public.ok')]));
    const report = checkReport(['public.nokey', 'public.ok'], list);
    expect(report).toMatchObject({ ok: false, counts: { block: 1, warn: 0, info: 1 } });
    const text = formatCheckReport(report);
    expect(text).toMatch(/^settings \(blue, Kafka\)\n {2}info {2}/);
    expect(text).toMatch(/\npublic\.nokey\n {2}BLOCK public\.nokey has no primary key/);
    expect(text).toMatch(/BLOCKED: teal run refuses to start/);
    expect(blockedMessage(report)).toMatch(/TEAL_CHECK_BLOCKED[\s\S]*- public\.nokey: .*fix: ALTER TABLE/);
    expect(formatCheckReport(checkReport(['public.ok'], []))).toMatch(/NOTHING BLOCKS/);
  });
});
