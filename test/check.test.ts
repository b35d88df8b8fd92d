import { resolveConfig } from '@teal/config';
import { runCheck } from '@teal/control';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { startScratchPostgres } from '../soak/scratch-postgres.ts';
import { checkDatabases } from './support/check-databases.ts';
import { blueUrl, kafkaBrokers, uniqueName, withDatabase } from './support/env.ts';

// `teal check` (issue 12, Deliver 3) against the real blue, green and broker: each shape in
// a database of its own, each finding asserted with its severity and fix, the exit codes
// (0 nothing blocks, 1 something does, 3 a server cannot be reached) and the --json form.

interface Finding {
  severity: 'block' | 'warn' | 'info';
  check: string;
  table: string | null;
  what: string;
  teal: string;
  fix: string | null;
}

interface Report {
  ok: boolean;
  counts: Record<string, number>;
  tables: string[];
  findings: Finding[];
  skipped: string[];
}

function parse(out: string): Report {
  return JSON.parse(out) as Report;
}

function find(report: Report, check: string, table?: string | null): Finding[] {
  return report.findings.filter((f) => f.check === check && (table === undefined || f.table === table));
}

describe('teal check', () => {
  test('a database teal can replicate as it is: exit 0, NOTHING BLOCKS, --json stable', async () => {
    const ddl = 'CREATE TABLE items (id int PRIMARY KEY, v text)';
    const s = await checkDatabases('chk_clean', ddl, ddl);
    const human = await s.teal(['check']);
    expect(human.code, human.out + human.err).toBe(0);
    expect(human.out).toMatch(/1 table checked: 0 blocking/);
    expect(human.out).toMatch(/NOTHING BLOCKS: teal run can start\n$/);

    const json = await s.teal(['check', '--json']);
    expect(json.code).toBe(0);
    const report = parse(json.out);
    expect(Object.keys(report)).toEqual(['ok', 'counts', 'tables', 'findings', 'skipped']);
    expect(report).toMatchObject({ ok: true, tables: ['public.items'], skipped: [] });
    expect(report.counts.block).toBe(0);
    expect(report.findings.filter((f) => f.table !== null)).toEqual([]);
    for (const f of report.findings)
      expect(Object.keys(f)).toEqual(['severity', 'check', 'table', 'what', 'teal', 'fix']);
  });

  test('keys: none blocks (exit 1); nullable keys warn; keyColumns block without a replica identity, unless a unique index can be one', async () => {
    const ddl = `
      CREATE TABLE nokey (x int);
      CREATE TABLE full_t (a int, b text); ALTER TABLE full_t REPLICA IDENTITY FULL;
      CREATE TABLE conf (a int, b text)`;
    const s = await checkDatabases('chk_keys', ddl, ddl);
    const run = await s.teal(['check', '--json'], `{ keyColumns: { 'public.conf': ['b'] } }`);
    expect(run.code, run.err).toBe(1);
    const report = parse(run.out);
    expect(report.ok).toBe(false);
    expect(find(report, 'no-key')).toEqual([
      expect.objectContaining({
        table: 'public.nokey',
        severity: 'block',
        fix: expect.stringContaining('ALTER TABLE public.nokey ADD PRIMARY KEY'),
      }),
    ]);
    expect(find(report, 'nullable-key').map((f) => [f.table, f.severity])).toEqual([
      ['public.conf', 'warn'],
      ['public.full_t', 'warn'],
    ]);
    expect(find(report, 'nullable-key', 'public.full_t')[0].what).toContain('REPLICA IDENTITY FULL');
    expect(find(report, 'key-columns-without-identity', 'public.conf')[0]).toMatchObject({
      severity: 'block',
      fix: 'ALTER TABLE public.conf REPLICA IDENTITY FULL on blue',
    });
    // A unique index over the NOT NULL key columns: teal makes it the replica identity.
    await s.blue.query(
      'ALTER TABLE conf ALTER COLUMN b SET NOT NULL; ALTER TABLE conf ADD CONSTRAINT conf_b_key UNIQUE (b)',
    );
    const indexed = parse(
      (await s.teal(['check', '--json'], `{ keyColumns: { 'public.conf': ['b'] } }`)).out,
    );
    expect(find(indexed, 'key-columns-without-identity', 'public.conf')[0]).toMatchObject({
      severity: 'info',
      teal: expect.stringContaining('REPLICA IDENTITY USING INDEX conf_b_key'),
    });
    expect(find(indexed, 'nullable-key', 'public.conf')).toEqual([]);
    const human = await s.teal(['check'], `{ keyColumns: { 'public.conf': ['b'] } }`);
    expect(human.code).toBe(1);
    expect(human.out).toMatch(
      /\npublic\.nokey\n {2}BLOCK public\.nokey has no primary key[^\n]*\n {9}teal: [^\n]+\n {9}fix: {2}ALTER TABLE/,
    );
    expect(human.out).toMatch(/BLOCKED: teal run refuses to start/);
  });

  test('partitions, generated and identity columns', async () => {
    const s = await checkDatabases(
      'chk_parts',
      `CREATE TABLE events (id int, k int, v text, total int GENERATED ALWAYS AS (id * 2) STORED, PRIMARY KEY (id, k))
         PARTITION BY RANGE (k);
       CREATE TABLE events_a PARTITION OF events FOR VALUES FROM (0) TO (100);
       INSERT INTO events (id, k, v) VALUES (1, 1, 'x');
       CREATE TABLE logs (at int, msg text) PARTITION BY RANGE (at);
       CREATE TABLE logs_a PARTITION OF logs FOR VALUES FROM (0) TO (100)`,
      `CREATE TABLE events (id int GENERATED ALWAYS AS IDENTITY, k int, v text GENERATED ALWAYS AS ('v' || k) STORED,
         total int GENERATED ALWAYS AS (id * 2) STORED, PRIMARY KEY (id, k))`,
    );
    // With every table (the default) the partition is not a table of its own.
    const all = parse((await s.teal(['check', '--json'])).out);
    expect(all.tables).toEqual(['public.events', 'public.logs']);
    expect(find(all, 'partition-without-identity', 'public.logs')[0]).toMatchObject({
      severity: 'block',
      what: 'partitions public.logs_a of public.logs have neither a primary key nor a replica identity',
    });
    expect(find(all, 'partitioned-table', 'public.events')[0]).toMatchObject({
      severity: 'info',
      teal: expect.stringContaining('publish_via_partition_root'),
    });
    expect(find(all, 'generated-column', 'public.events')[0]).toMatchObject({
      severity: 'info',
      what: 'public.events.total is a generated column on blue',
    });
    expect(find(all, 'green-identity-always', 'public.events')[0]).toMatchObject({
      severity: 'info',
      teal: expect.stringContaining('OVERRIDING SYSTEM VALUE'),
    });
    expect(find(all, 'green-generated-column', 'public.events')[0]).toMatchObject({
      severity: 'info',
      what: 'public.events.v is a generated column in green',
    });

    const named = await s.teal(['check', '--json'], `{ tables: ['public.events', 'public.events_a'] }`);
    expect(named.code).toBe(1);
    expect(find(parse(named.out), 'partition-named', 'public.events_a')[0]).toMatchObject({
      severity: 'block',
      what: 'public.events_a is a partition of public.events',
      fix: expect.stringContaining('it is listed already: remove this one'),
    });
  });

  test("green's unique constraints, foreign keys and triggers", async () => {
    const s = await checkDatabases(
      'chk_green',
      `CREATE TABLE parent (id int PRIMARY KEY);
       CREATE TABLE child (id int PRIMARY KEY, parent_id int, email text UNIQUE, code text);
       CREATE TABLE tags (id int PRIMARY KEY, name text)`,
      `CREATE TABLE parent (id int PRIMARY KEY);
       CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent, email text UNIQUE, code text UNIQUE);
       CREATE TABLE tags (id int PRIMARY KEY, name text UNIQUE);
       CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
       CREATE TRIGGER audit_always BEFORE INSERT ON child FOR EACH ROW EXECUTE FUNCTION noop();
       ALTER TABLE child ENABLE ALWAYS TRIGGER audit_always;
       CREATE TRIGGER audit_local BEFORE INSERT ON child FOR EACH ROW EXECUTE FUNCTION noop()`,
    );
    const run = await s.teal(['check', '--json']);
    expect(run.code, run.err).toBe(0);
    const report = parse(run.out);
    // Blue's unique email orders child (one partition, commit order): green's constraints hold.
    expect(find(report, 'ordered-by-blue', 'public.child')[0]).toMatchObject({
      severity: 'info',
      what: "blue's public.child has UNIQUE child_email_key (email) besides its key",
    });
    expect(find(report, 'unique-ordered', 'public.child').map((f) => [f.severity, f.what])).toEqual([
      ['info', "green's public.child has UNIQUE child_code_key (code)"],
      ['info', "green's public.child has UNIQUE child_email_key (email), as blue does"],
    ]);
    // tags is not ordered (blue has no such index): only green's constraint is at risk.
    expect(find(report, 'unique-only-in-green', 'public.tags')).toEqual([
      expect.objectContaining({
        severity: 'warn',
        what: expect.stringContaining('tags_name_key (name)'),
        fix: 'add the same unique index on blue, or set ordered: { "public.tags": true } in teal.config.ts',
      }),
    ]);
    expect(find(report, 'green-foreign-keys', 'public.child')[0]).toMatchObject({
      severity: 'info',
      what: expect.stringContaining('child_parent_id_fkey -> public.parent'),
    });
    expect(find(report, 'green-referenced', 'public.parent')[0]).toMatchObject({
      severity: 'info',
      teal: expect.stringContaining('DELETE FROM'),
    });
    expect(find(report, 'green-trigger', 'public.child').map((f) => [f.severity, f.what])).toEqual([
      ['warn', "green's public.child has trigger audit_always (ENABLE ALWAYS)"],
      ['info', "green's public.child has trigger audit_local"],
    ]);
    expect(find(report, 'green-trigger', 'public.child')[0].fix).toContain('ENABLE TRIGGER audit_always');

    // ordered: true makes the green-only constraint safe by keeping commit order.
    const ordered = parse((await s.teal(['check', '--json'], `{ ordered: { 'public.tags': true } }`)).out);
    expect(find(ordered, 'unique-only-in-green')).toEqual([]);
    expect(find(ordered, 'unique-ordered', 'public.tags')[0].severity).toBe('info');
  });

  test("green's shape after transforms: missing tables, columns and types, changed and incompatible types", async () => {
    const s = await checkDatabases(
      'chk_shape',
      `CREATE TYPE mood AS ENUM ('happy', 'sad');
       CREATE TABLE users (id int PRIMARY KEY, name text, secret text, n int, code text, m mood);
       CREATE TABLE gone (id int PRIMARY KEY)`,
      `CREATE SCHEMA app; CREATE TABLE app.people (id int PRIMARY KEY, full_name text, n bigint, code int)`,
    );
    const transforms = `transforms: { 'public.users': {
        renameTo: 'app.people', renameColumns: { name: 'full_name' }, dropColumns: ['secret'],
        derive: { domain: (row) => row.name } } }`;
    const run = await s.teal(['check', '--json'], `{ ${transforms} }`);
    expect(run.code, run.err).toBe(1);
    const report = parse(run.out);
    expect(find(report, 'green-column-missing', 'public.users')[0]).toMatchObject({
      severity: 'block',
      what: 'green table app.people lacks columns m, domain (and type public.mood)',
      fix: 'create public.mood and the columns in green',
    });
    expect(find(report, 'type-changed', 'public.users')[0]).toMatchObject({
      severity: 'info',
      what: 'public.users.n is integer on blue, app.people.n is bigint in green',
    });
    expect(find(report, 'type-incompatible', 'public.users')[0]).toMatchObject({
      severity: 'block',
      what: 'public.users.code is text on blue, but app.people.code is integer in green',
      fix: expect.stringContaining('transforms["public.users"].cast = { "code": "integer" }'),
    });
    expect(find(report, 'green-table-missing', 'public.gone')[0]).toMatchObject({
      severity: 'block',
      fix: 'create public.gone in green, or set apply.createTables: true in teal.config.ts',
    });

    await s.green.query(`CREATE TYPE mood AS ENUM ('happy', 'sad')`);
    const fixed = await s.teal(
      ['check', '--json'],
      `{ ${transforms.replace("dropColumns: ['secret'],", "dropColumns: ['secret'], cast: { code: 'integer' },")},
         apply: { createTables: true, onMissingColumn: 'add' } }`,
    );
    const after = parse(fixed.out);
    expect(fixed.code, fixed.out).toBe(0);
    expect(find(after, 'green-column-missing', 'public.users')[0]).toMatchObject({
      severity: 'info',
      teal: expect.stringContaining('apply.onMissingColumn: add'),
    });
    expect(find(after, 'type-incompatible')).toEqual([]);
    expect(find(after, 'green-table-missing', 'public.gone')[0]).toMatchObject({
      severity: 'info',
      fix: null,
    });

    const broken = parse(
      (await s.teal(['check', '--json'], `{ transforms: { users: { dropColumns: ['nme'] } } }`)).out,
    );
    expect(find(broken, 'transform-invalid', 'public.users')[0]).toMatchObject({
      severity: 'block',
      what: expect.stringContaining('has no column "nme"; did you mean "name"?'),
    });
  });

  test('unlogged tables, large objects and sequences on blue', async () => {
    const s = await checkDatabases(
      'chk_blue',
      `CREATE TABLE items (id serial PRIMARY KEY);
       CREATE UNLOGGED TABLE cache (id int PRIMARY KEY);
       CREATE SEQUENCE invoice_no;
       SELECT lo_from_bytea(0, 'a large object')`,
      'CREATE TABLE items (id int PRIMARY KEY); CREATE TABLE cache (id int PRIMARY KEY)',
    );
    const all = parse((await s.teal(['check', '--json'])).out);
    expect(all.ok).toBe(true);
    expect(find(all, 'unlogged-table', 'public.cache')[0]).toMatchObject({
      severity: 'warn',
      fix: 'ALTER TABLE public.cache SET LOGGED on blue to replicate it, or copy it yourself',
    });
    expect(find(all, 'large-objects', null)[0]).toMatchObject({
      severity: 'warn',
      what: 'blue holds 1 large object (pg_largeobject)',
    });
    expect(find(all, 'sequences', null)[0]).toMatchObject({ severity: 'info', what: 'blue has 2 sequences' });

    const listed = await s.teal(['check', '--json'], `{ tables: ['public.cache', 'public.nosuch'] }`);
    expect(listed.code).toBe(1);
    const report = parse(listed.out);
    expect(find(report, 'unlogged-table', 'public.cache')[0].severity).toBe('block');
    expect(find(report, 'table-missing-on-blue', 'public.nosuch')[0]).toMatchObject({
      severity: 'block',
      fix: 'create public.nosuch on blue, or remove it from tables in teal.config.ts',
    });
  });

  test("rows larger than kafka.maxMessageBytes block, larger than an existing topic's max.message.bytes warn", async () => {
    const ddl = 'CREATE TABLE big (id int PRIMARY KEY, doc text)';
    const s = await checkDatabases('chk_big', ddl, ddl);
    // ~3.2 MB of incompressible text in one row.
    await s.blue.query(
      `INSERT INTO big SELECT 1, string_agg(md5(g::text || random()::text), '') FROM generate_series(1, 100000) g`,
    );
    const small = await s.teal(['check', '--json'], '{ kafka: { maxMessageBytes: 1048576 } }');
    expect(small.code).toBe(1);
    expect(find(parse(small.out), 'row-too-large', 'public.big')[0]).toMatchObject({
      severity: 'block',
      what: expect.stringMatching(
        /its largest row is ~3\.\d MiB as a change record, above kafka.maxMessageBytes \(1\.0 MiB\)/,
      ),
      fix: expect.stringContaining('raise kafka.maxMessageBytes (TEAL_KAFKA_MAX_MESSAGE_BYTES) above'),
    });
    // The default 16 MiB fits it.
    expect(find(parse((await s.teal(['check', '--json'])).out), 'row-too-large')).toEqual([]);

    // A topic created earlier with the broker's 1 MiB has its own, lower limit.
    const topic = `${s.name}.public.big`;
    const admin = new Kafka({
      brokers: kafkaBrokers(),
      clientId: s.name,
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();
    onTestFinished(async () => {
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect();
    });
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: '1048588' }] }],
    });
    // teal raises it at start (the admin's ensureTopic): a warning, with the command for a broker that refuses.
    const topicLimit = await s.teal(['check', '--json']);
    expect(topicLimit.code).toBe(0);
    expect(find(parse(topicLimit.out), 'row-too-large-for-topic', 'public.big')[0]).toMatchObject({
      severity: 'warn',
      fix: expect.stringContaining(`--entity-name ${topic} --add-config max.message.bytes=`),
    });
  });

  test("blue's role without REPLICATION, or without SELECT on or ownership of a table, blocks", async () => {
    const ddl = 'CREATE TABLE items (id int PRIMARY KEY)';
    const s = await checkDatabases('chk_role', ddl, ddl);
    const role = uniqueName('chk_role');
    const admin = new pg.Client({ connectionString: blueUrl() });
    await admin.connect();
    onTestFinished(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${s.name} WITH (FORCE)`);
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
      await admin.end();
    });
    await admin.query(`CREATE ROLE ${role} LOGIN`);
    const url = new URL(s.blueUrl);
    url.username = role;
    const run = await s.teal(['check', '--json'], '{}', { TEAL_BLUE_URL: url.toString() });
    expect(run.code, run.err).toBe(1);
    const report = parse(run.out);
    expect(find(report, 'replication-privilege', null)[0]).toMatchObject({
      severity: 'block',
      fix: `ALTER ROLE ${role} REPLICATION on blue (as a superuser)`,
    });
    expect(find(report, 'table-ownership', 'public.items')[0]).toMatchObject({
      severity: 'block',
      fix: expect.stringContaining(`ALTER TABLE public.items OWNER TO ${role}`),
    });
    expect(find(report, 'select-privilege', 'public.items')[0]).toMatchObject({
      severity: 'block',
      fix: `GRANT SELECT ON public.items TO ${role} on blue`,
    });
  });

  test('wal_level, replication slots and WAL senders of a blue that cannot replicate', async () => {
    const scratch = await startScratchPostgres({
      wal_level: 'replica',
      max_replication_slots: '0',
      max_wal_senders: '0',
      max_slot_wal_keep_size: "'1GB'",
    });
    onTestFinished(() => scratch.destroy());
    const s = await checkDatabases('chk_wal', '', '');
    const run = await s.teal(['check', '--json'], '{}', {
      TEAL_BLUE_URL: withDatabase(scratch.url, 'postgres'),
    });
    expect(run.code, run.err).toBe(1);
    const report = parse(run.out);
    expect(report.findings.filter((f) => f.severity === 'block').map((f) => f.check)).toEqual([
      'replication-slots',
      'wal-level',
      'wal-senders',
    ]);
    expect(find(report, 'wal-level')[0].fix).toBe(
      "ALTER SYSTEM SET wal_level = 'logical' on blue, then restart blue",
    );
    expect(find(report, 'max-slot-wal-keep-size')).toEqual([]);
    // The shared blue keeps WAL without bound (max_slot_wal_keep_size = -1): a warning, not a block.
    const shared = parse((await s.teal(['check', '--json'])).out);
    const keep = (
      await s.blue.query<{ setting: string }>(
        `SELECT setting FROM pg_settings WHERE name = 'max_slot_wal_keep_size'`,
      )
    ).rows[0].setting;
    expect(find(shared, 'max-slot-wal-keep-size').map((f) => f.severity)).toEqual(
      keep === '-1' ? ['warn'] : [],
    );
  });

  test("a server that cannot be reached: exit 3 naming it, password redacted; teal run's preflight checks the rest", async () => {
    const s = await checkDatabases('chk_down', '', '');
    const down = await s.teal(['check'], '{}', {
      TEAL_BLUE_URL: 'postgres://postgres:hunter2@127.0.0.1:1/app',
    });
    expect(down.code).toBe(3);
    expect(down.err).toMatch(
      /^teal check: cannot connect to blue at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/app/,
    );
    expect(down.err).not.toContain('hunter2');
    const green = await s.teal(['check', '--json'], '{}', {
      TEAL_GREEN_URL: 'postgres://postgres@127.0.0.1:1/app',
    });
    expect(green.code).toBe(3);
    expect(green.err).toContain('cannot connect to green');
    // teal run's preflight checks what it can reach and says what it could not: the producer
    // waits for green itself (contract item 16), so green away is no refusal.
    await s.blue.query('CREATE TABLE nokey (x int)');
    const preflight = await runCheck({
      preflight: true,
      config: resolveConfig(
        { slot: s.name, publication: s.name, kafka: { topicPrefix: s.name } },
        {
          env: {
            TEAL_BLUE_URL: s.blueUrl,
            TEAL_GREEN_URL: 'postgres://postgres@127.0.0.1:1/app',
            TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
          },
        },
      ),
    });
    expect(preflight.skipped).toEqual([
      expect.stringMatching(/^green's tables: cannot connect to green at /),
    ]);
    expect(preflight.findings.filter((f) => f.table !== null).map((f) => [f.check, f.severity])).toEqual([
      ['no-key', 'block'],
    ]);
    // The broker: kafkajs retries for ~20 s; teal check gives it 15 s.
    const kafka = await s.teal(['check'], '{}', { TEAL_KAFKA_BROKERS: '127.0.0.1:1' });
    expect(kafka.code).toBe(3);
    expect(kafka.err).toMatch(
      /^teal check: cannot read the broker's limits at 127\.0\.0\.1:1: .*correct TEAL_KAFKA_BROKERS/,
    );
  });
});
