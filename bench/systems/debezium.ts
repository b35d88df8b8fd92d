import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deleteTopics } from '../lib/kafka.ts';
import { query, TABLES } from '../lib/pg.ts';
import { log, type ProcRef, run, sleep, stopChild, waitUntil } from '../lib/util.ts';
import { type BenchContext, type BenchSystem, walsenderSql } from './types.ts';

const REST_PORT = Number(process.env.BENCH_CONNECT_PORT ?? 18083);

/**
 * Debezium 3.2 Postgres source (pgoutput) + Debezium JDBC sink (upsert by record key,
 * deletes on) in one Kafka Connect standalone worker, JSON converter with schemas (there
 * is no schema registry here), heap -Xmx1g. Jars come from infra/debezium/pom.xml.
 */
export class DebeziumSystem implements BenchSystem {
  readonly name = 'debezium';
  readonly usesKafka = true;
  private child?: ChildProcess;
  private prefix = '';
  private slot = '';

  private dirs(ctx: BenchContext) {
    const base = join(ctx.repoRoot, '.teal', 'debezium');
    return {
      base,
      lib: join(base, 'lib'),
      plugins: join(base, 'plugins'),
      source: join(base, 'plugins', 'debezium-connector-postgres'),
      sink: join(base, 'plugins', 'debezium-connector-jdbc'),
    };
  }

  async prepare(ctx: BenchContext): Promise<void> {
    const d = this.dirs(ctx);
    const pom = join(ctx.repoRoot, 'infra', 'debezium', 'pom.xml');
    for (const [profile, dir] of [
      ['runtime', d.lib],
      ['source', d.source],
      ['sink', d.sink],
    ] as const) {
      if (existsSync(dir) && readdirSync(dir).some((f) => f.endsWith('.jar'))) continue;
      log(`debezium: resolving ${profile} jars with Maven into ${dir}`);
      await run(
        'mvn',
        ['-q', '-B', '-f', pom, '-P', profile, 'dependency:copy-dependencies', `-DoutputDirectory=${dir}`],
        {
          timeoutMs: 600_000,
        },
      );
    }
  }

  private writeConfigs(ctx: BenchContext): string[] {
    const d = this.dirs(ctx);
    const dir = join(ctx.workDir, 'debezium');
    mkdirSync(dir, { recursive: true });
    this.prefix = `bench_dbz_${ctx.runId}`;
    this.slot = `bench_dbz_${ctx.runId}`;
    const worker = {
      'bootstrap.servers': ctx.kafkaBrokers,
      'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'key.converter.schemas.enable': 'true',
      'value.converter.schemas.enable': 'true',
      'offset.storage.file.filename': join(dir, 'offsets.dat'),
      'offset.flush.interval.ms': '1000',
      'plugin.path': d.plugins,
      listeners: `http://127.0.0.1:${REST_PORT}`,
      'connector.client.config.override.policy': 'All',
      'topic.creation.enable': 'true',
    };
    const source = {
      name: `${this.prefix}_source`,
      'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
      'tasks.max': '1',
      'plugin.name': 'pgoutput',
      'database.hostname': ctx.blue.host,
      'database.port': String(ctx.blue.port),
      'database.user': ctx.blue.user,
      'database.password': '',
      'database.dbname': ctx.blue.database,
      'topic.prefix': this.prefix,
      'slot.name': this.slot,
      'publication.name': this.slot,
      'publication.autocreate.mode': 'filtered',
      'table.include.list': TABLES.map((t) => `public.${t}`).join(','),
      'snapshot.mode': 'initial',
      // Larger batches and queue than the defaults (2048/8192), as the tuning notes advise for throughput.
      'max.batch.size': '8192',
      'max.queue.size': '32768',
      'topic.creation.default.replication.factor': '1',
      'topic.creation.default.partitions': '4',
      'producer.override.linger.ms': '20',
      'producer.override.batch.size': '524288',
      'producer.override.compression.type': 'lz4',
    };
    const sink = {
      name: `${this.prefix}_sink`,
      'connector.class': 'io.debezium.connector.jdbc.JdbcSinkConnector',
      'tasks.max': '1',
      'topics.regex': `${this.prefix.replace(/[.]/g, '\\.')}\\.public\\..*`,
      'connection.url': `jdbc:postgresql://${ctx.green.host}:${ctx.green.port}/${ctx.green.database}?reWriteBatchedInserts=true`,
      'connection.username': ctx.green.user,
      'connection.password': '',
      'insert.mode': 'upsert',
      'primary.key.mode': 'record_key',
      'delete.enabled': 'true',
      'schema.evolution': 'none',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a Debezium placeholder, not JS.
      'collection.name.format': '${source.table}',
      // The sink docs: a batch no larger than what one poll returns, and the reduction
      // buffer so several changes of one key inside a batch become one statement.
      'batch.size': '4000',
      'use.reduction.buffer': 'true',
      'consumer.override.max.poll.records': '4000',
      'consumer.override.fetch.min.bytes': '1',
      // topics.regex only sees topics that exist at a metadata refresh (default every 5 min);
      // the source creates a table's topic on its first change.
      'consumer.override.metadata.max.age.ms': '1000',
      'consumer.override.auto.offset.reset': 'earliest',
    };
    const files: string[] = [];
    for (const [name, props] of Object.entries({ worker, source, sink })) {
      const file = join(dir, `${name}.properties`);
      writeFileSync(
        file,
        Object.entries(props)
          .map(([k, v]) => `${k}=${String(v).replace(/\\/g, '\\\\')}`)
          .join('\n') + '\n',
      );
      files.push(file);
    }
    return files;
  }

  private async rest(method: string, path: string): Promise<unknown> {
    const res = await fetch(`http://127.0.0.1:${REST_PORT}${path}`, { method });
    const text = await res.text();
    if (!res.ok) throw new Error(`Connect REST ${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  }

  private async state(connector: string): Promise<string> {
    try {
      const s = (await this.rest('GET', `/connectors/${connector}/status`)) as {
        connector: { state: string };
        tasks: { state: string; trace?: string }[];
      };
      const failed = s.tasks.find((t) => t.state === 'FAILED');
      if (failed)
        throw new Error(`${connector} task FAILED: ${failed.trace?.split('\n').slice(0, 3).join(' ')}`);
      return s.tasks.length && s.connector.state === 'RUNNING' ? s.tasks[0].state : s.connector.state;
    } catch (err) {
      if ((err as Error).message.includes('FAILED')) throw err;
      return 'UNREACHABLE';
    }
  }

  async start(ctx: BenchContext): Promise<void> {
    const d = this.dirs(ctx);
    const [worker, source, sink] = this.writeConfigs(ctx);
    const logFile = join(ctx.workDir, 'debezium', 'connect.log');
    const out = openSync(logFile, 'a');
    const log4j = join(ctx.workDir, 'debezium', 'log4j.properties');
    writeFileSync(
      log4j,
      'log4j.rootLogger=INFO, file\nlog4j.appender.file=org.apache.log4j.FileAppender\n' +
        `log4j.appender.file.File=${logFile}\nlog4j.appender.file.layout=org.apache.log4j.PatternLayout\n` +
        'log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n',
    );
    this.child = spawn(
      'java',
      [
        '-Xmx1g',
        '-XX:+UseG1GC',
        `-Dlog4j.configuration=file:${log4j}`,
        '-cp',
        `${d.lib}/*`,
        'org.apache.kafka.connect.cli.ConnectStandalone',
        worker,
        source,
        sink,
      ],
      { stdio: ['ignore', out, out] },
    );
    this.child.once('exit', (code, signal) => {
      if (code !== null && code !== 0 && code !== 143)
        log(`debezium: Connect exited ${code ?? signal}; see ${logFile}`);
    });
    log(`debezium: Connect standalone pid ${this.child.pid}, log ${logFile}`);
    await this.waitRunning();
  }

  private async waitRunning(): Promise<void> {
    for (const c of [`${this.prefix}_source`, `${this.prefix}_sink`]) {
      await waitUntil(
        `${c} RUNNING`,
        async () => {
          if (this.child?.exitCode !== null) throw new Error('Kafka Connect exited; see connect.log');
          return (await this.state(c)) === 'RUNNING';
        },
        // Under a load average of 25 here, Connect took more than 2 min to start its source.
        300_000,
        500,
      );
    }
  }

  async pause(ctx: BenchContext): Promise<void> {
    await this.rest('PUT', `/connectors/${this.prefix}_source/pause`);
    await waitUntil(
      'debezium source PAUSED',
      async () => (await this.state(`${this.prefix}_source`)) === 'PAUSED',
      30_000,
    );
    await waitUntil(
      'debezium walsender to stop',
      async () => (await query(ctx.blue, walsenderSql, [this.slot])).length === 0,
      3_000,
    ).catch(() => log('debezium: source paused but its replication connection stays open (WAL is not read)'));
  }

  async resume(): Promise<void> {
    await this.rest('PUT', `/connectors/${this.prefix}_source/resume`);
  }

  async processes(): Promise<ProcRef[]> {
    return this.child?.pid && this.child.exitCode === null
      ? [{ label: 'connect (jvm)', pid: this.child.pid, kind: 'own' }]
      : [];
  }

  async smoke(ctx: BenchContext): Promise<string> {
    const t0 = performance.now();
    await this.start(ctx);
    // A sink task reports RUNNING before it opens its session factory: look again a little later.
    await sleep(5000);
    await this.waitRunning();
    return `Connect up, source and sink RUNNING after ${((performance.now() - t0) / 1000).toFixed(1)} s`;
  }

  async teardown(ctx: BenchContext): Promise<void> {
    await stopChild(this.child, 20_000);
    this.child = undefined;
    if (this.slot) {
      await sleep(300);
      await query(
        ctx.blue,
        'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1',
        [this.slot],
      ).catch((err) => log(`debezium: could not drop slot ${this.slot}: ${(err as Error).message}`));
      await query(ctx.blue, `DROP PUBLICATION IF EXISTS ${this.slot}`).catch(() => {});
    }
    if (this.prefix) await deleteTopics(ctx.kafkaBrokers, (t) => t.startsWith(`${this.prefix}.`));
    this.prefix = '';
    this.slot = '';
  }
}
