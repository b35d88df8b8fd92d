import { tableTopic } from '@teal/change-event';
import { compileTransforms, parseTableName, type ResolvedConfig, type TransformSet } from '@teal/config';
import { redactSecrets, redactUrl, TealError } from '@teal/errors';
import { type BrokerLimits, KafkaClient, readBrokerLimits } from '@teal/kafka';
import { connectClient, readReverseState } from '@teal/postgres';
import type pg from 'pg';
import { type RollbackObstacle, rollbackObstacles } from '../rollback-prepare.ts';
import type { BrokerFacts, CheckFacts, GreenTableFacts } from './check-facts.ts';
import { deriveFindings, type Finding, sortFindings } from './check-findings.ts';
import {
  readBlueServer,
  readBlueTables,
  readGreenTables,
  readGreenTypes,
  tablesToCheck,
} from './check-reads.ts';
import { blockedMessage, type CheckReport, checkReport } from './check-report.ts';

// `teal check` and teal run's preflight: connect to blue, green and the broker, read the
// facts (check-reads.ts), derive the findings (check-findings.ts, pure). This file owns the
// connections and what an unreachable server means: an error for `teal check` (exit 3),
// a part left unchecked for teal run, whose components wait for that server themselves.

export interface CheckOptions {
  readonly config: ResolvedConfig;
  readonly transforms?: TransformSet;
  /**
   * teal run's preflight: a server that cannot be reached is listed in `skipped` instead of
   * failing the check (the producer waits for green and Kafka, and reports blue's error).
   */
  readonly preflight?: boolean;
  /** How long the broker may take to answer, ms (default 15000). */
  readonly brokerTimeoutMs?: number;
  /**
   * `teal check --with-rollback`: what would make `cutover --with-rollback` refuse blocks
   * (otherwise `teal check` warns about it, and teal run's preflight does not read it).
   */
  readonly withRollback?: boolean;
}

/** Reads blue and green's connect timeout (ms). */
const CONNECT_TIMEOUT_MS = 10_000;

class Unreachable extends Error {}

async function connect(what: 'blue' | 'green', url: string): Promise<pg.Client> {
  try {
    const client = await connectClient(url, {
      applicationName: 'teal-check',
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    // A catalog read or a size sample that hangs must not hold a start for ever.
    await client.query("SET statement_timeout = '120s'");
    return client;
  } catch (err) {
    // A refused TLS or login (TEAL_PG_TLS, TEAL_PG_AUTH) is not a server that is away: the
    // same start fails the same way, so it is said as it is, also by teal run's preflight.
    if (err instanceof TealError && !err.retriable)
      throw new TealError(err.code, `cannot connect to ${what}: ${err.message}`, {
        cause: err,
        retriable: false,
      });
    throw new Unreachable(
      `cannot connect to ${what} at ${redactUrl(url)}: ${redactSecrets((err as Error).message ?? String(err))}`,
      { cause: err },
    );
  }
}

function unavailable(err: Unreachable): TealError {
  return new TealError('TEAL_UNAVAILABLE', `${err.message}; start it or correct the URL`, {
    cause: err.cause,
  });
}

export async function runCheck(opts: CheckOptions): Promise<CheckReport> {
  const { config } = opts;
  const transforms = opts.transforms ?? compileTransforms(config);
  const skipped: string[] = [];
  let blue: pg.Client;
  try {
    blue = await connect('blue', config.blue.url);
  } catch (err) {
    if (!(err instanceof Unreachable)) throw err;
    if (!opts.preflight) throw unavailable(err);
    return checkReport([], [], [`everything: ${err.message}`]);
  }
  let green: pg.Client | undefined;
  try {
    try {
      green = await connect('green', config.green.url);
    } catch (err) {
      if (!(err instanceof Unreachable)) throw err;
      if (!opts.preflight) throw unavailable(err);
      skipped.push(`green's tables: ${err.message}`);
    }
    const names = await tablesToCheck(blue, config.tables);
    const blueTables = await readBlueTables(blue, names);
    const server = await readBlueServer(blue, config.slot, config.publication, config.tables === 'all');
    let greenTables: Map<string, GreenTableFacts> | null = null;
    let greenTypes = new Set<string>();
    if (green) {
      const targets = names.map((n) => {
        const p = parseTableName(n)!;
        const t = transforms.target(p.schema, p.table);
        return `${t.schema}.${t.table}`;
      });
      greenTables = await readGreenTables(green, targets);
      const userTypes = new Set<string>();
      for (const t of blueTables.values())
        for (const c of t?.columns ?? []) if (c.userType) userTypes.add(c.userType);
      greenTypes = await readGreenTypes(green, [...userTypes]);
    }
    let broker: BrokerFacts | null = null;
    try {
      broker = await readBroker(config, names, opts.brokerTimeoutMs ?? 15_000);
    } catch (err) {
      const message = `cannot read the broker's limits at ${config.kafka.brokers.join(',')}: ${redactSecrets((err as Error).message)}`;
      if (!opts.preflight) {
        throw new TealError('TEAL_UNAVAILABLE', `${message}; start it or correct TEAL_KAFKA_BROKERS`, {
          cause: err,
        });
      }
      skipped.push(`row sizes against Kafka's limits: ${message}`);
    }
    const facts: CheckFacts = {
      tables: names.map((name) => ({ name, blue: blueTables.get(name) ?? null })),
      green: greenTables,
      greenTypes,
      server,
      broker,
    };
    const findings = deriveFindings(facts, config, transforms);
    if (green) {
      const recorded = await readReverseState<{ slot: string }>(green, config.kafka.topicPrefix);
      if (recorded) findings.push(reverseRecordedFinding(config, recorded.slot));
    }
    if (green && (!opts.preflight || opts.withRollback)) {
      try {
        const { obstacles } = await rollbackObstacles(blue, green, config, transforms);
        findings.push(...rollbackFindings(obstacles, opts.withRollback === true));
      } catch (err) {
        skipped.push(`green's readiness for a rollback: ${redactSecrets((err as Error).message)}`);
      }
    }
    return checkReport(names, sortFindings(findings), skipped);
  } finally {
    await blue.end().catch(() => {});
    await green?.end().catch(() => {});
  }
}

/**
 * After `cutover --with-rollback` the forward pipeline must not run again: its producer would
 * stream teal reverse's writes on blue back into green, and round again.
 */
export function reverseRecordedFinding(
  config: Pick<ResolvedConfig, 'kafka' | 'publication'>,
  slot: string,
): Finding {
  const prefix = config.kafka.topicPrefix;
  return {
    severity: 'block',
    check: 'reverse-recorded',
    table: null,
    what: `green records a prepared way back for topic prefix "${prefix}" (teal.control reverse:${prefix}, slot ${slot} on green): the cutover to green was made with --with-rollback`,
    teal: "teal run does not start: its producer would stream teal reverse's writes on blue back into green",
    fix: `run teal reverse (and teal rollback) instead; to give the way back up, or after a rollback: stop teal reverse, then on green SELECT pg_drop_replication_slot('${slot}'); DROP PUBLICATION ${config.publication}_reverse; DELETE FROM teal.control WHERE key = 'reverse:${prefix}' (docs/rollback.md)`,
  };
}

/** What would make `cutover --with-rollback` refuse, as findings: blocking only when asked for. */
export function rollbackFindings(obstacles: readonly RollbackObstacle[], block: boolean): Finding[] {
  return obstacles.map((o) => ({
    severity: block ? 'block' : 'warn',
    check: 'rollback',
    table: o.table,
    what: o.what,
    teal: block
      ? 'cutover --with-rollback refuses before the fence (docs/rollback.md)'
      : 'only cutover --with-rollback needs it: it would refuse before the fence (teal check --with-rollback makes this block)',
    fix: o.fix,
  }));
}

async function readBroker(
  config: ResolvedConfig,
  names: readonly string[],
  timeoutMs: number,
): Promise<BrokerFacts> {
  const kafka = new KafkaClient({
    brokers: [...config.kafka.brokers],
    clientId: 'teal-check',
    client: config.kafka.client,
    tls: config.kafka.tls,
    sasl: config.kafka.sasl,
  });
  const topics = names.map((n) => {
    const p = parseTableName(n)!;
    return tableTopic(config.kafka.topicPrefix, p.schema, p.table);
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const limits: BrokerLimits = await Promise.race([
      readBrokerLimits(kafka, topics),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return limits;
  } finally {
    clearTimeout(timer);
    await kafka.close();
  }
}

/**
 * teal run's preflight: the same checks as `teal check`; throws TEAL_CHECK_BLOCKED listing
 * every blocking finding. Returns the report (its warnings are for the log).
 */
export async function assertStartable(opts: Omit<CheckOptions, 'preflight'>): Promise<CheckReport> {
  const report = await runCheck({ ...opts, preflight: true });
  if (!report.ok) {
    throw new TealError('TEAL_CHECK_BLOCKED', blockedMessage(report), {
      details: { findings: report.findings.filter((f) => f.severity === 'block') },
    });
  }
  return report;
}
