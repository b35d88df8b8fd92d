import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KafkaClient } from '@teal/kafka';
import { waitFor } from '@teal/runtime';
import { beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { tealShebang } from '../bench/systems/teal.ts';
import * as helmTool from '../infra/tools/helm.mjs';
import * as kubeconformTool from '../infra/tools/kubeconform.mjs';
import * as promtoolTool from '../infra/tools/promtool.mjs';
import { checkDatabases } from './support/check-databases.ts';
import { freePort, kafkaBrokers } from './support/env.ts';
import { spawnTeal, type TealChild } from './support/teal-child.ts';

// infra/ for real deployments: the alert rules pass promtool's check and their unit tests,
// the chart lints, renders and validates against Kubernetes' schemas with the roles it must
// have, and every metric the dashboard and the rules query is one that teal's pods, started
// with the chart's own commands against the shared env, serve on /metrics.

const ROOT = join(import.meta.dirname, '..');
const RULES = join(ROOT, 'infra/prometheus/teal-alerts.yaml');
const RULE_TESTS = join(ROOT, 'infra/prometheus/teal-alerts.test.yaml');
const DASHBOARD = join(ROOT, 'infra/grafana/teal-dashboard.json');
const CHART = join(ROOT, 'infra/helm/teal');
const EXAMPLE_VALUES = join(ROOT, 'infra/helm/examples/values-example.yaml');

const run = promisify(execFile);

/** Exit code and output of a tool run (no throw on a non-zero exit). */
async function tool(bin: string, args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(bin, args, { cwd: ROOT, maxBuffer: 32 * 1024 * 1024 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
}
const rules = (): Rule[] =>
  (parse(readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

/** Every PromQL expression of the dashboard, Grafana's range variables given fixed values. */
function dashboardQueries(): string[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: { targets?: { expr: string }[] }[];
  };
  return dashboard.panels
    .flatMap((p) => p.targets ?? [])
    .map((t) => t.expr.replaceAll('$__rate_interval', '5m').replaceAll('$__range', '1h'));
}

const metricNames = (exprs: string[]): Set<string> =>
  new Set(exprs.flatMap((e) => e.match(/\bteal_[a-z0-9_]+\b/g) ?? []));

describe('Prometheus alert rules', () => {
  let promtool: string;
  beforeAll(async () => {
    promtool = await promtoolTool.ensure();
  }, 30 * 60_000);

  test('promtool check rules accepts them', async () => {
    const r = await tool(promtool, ['check', 'rules', RULES]);
    expect(r.out).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.code).toBe(0);
  });

  test('promtool test rules: each alert fires on a series that should fire it and stays quiet otherwise', async () => {
    const r = await tool(promtool, ['test', 'rules', RULE_TESTS]);
    expect(r.out, r.out).toMatch(/SUCCESS/);
    expect(r.code).toBe(0);
    // Every alert has both kinds of case in the test file.
    const cases = (
      parse(readFileSync(RULE_TESTS, 'utf8')) as {
        tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
      }
    ).tests.flatMap((t) => t.alert_rule_test);
    for (const { alert } of rules()) {
      const mine = cases.filter((c) => c.alertname === alert);
      expect(
        mine.some((c) => c.exp_alerts.length > 0),
        `${alert} fires somewhere`,
      ).toBe(true);
      expect(
        mine.some((c) => c.exp_alerts.length === 0),
        `${alert} stays quiet somewhere`,
      ).toBe(true);
    }
  });

  test('a broken rule fails the check (the check is not vacuous)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'teal-rules-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'broken.yaml');
    writeFileSync(
      file,
      readFileSync(RULES, 'utf8').replace('max(teal_slot_lag_seconds)', 'max(teal_slot_lag_seconds'),
    );
    const r = await tool(promtool, ['check', 'rules', file]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/parse error|unclosed/i);
  });

  test('every Grafana query is valid PromQL (checked as recording rules)', async () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(15);
    const dir = mkdtempSync(join(tmpdir(), 'teal-dashboard-rules-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'dashboard-queries.yaml');
    const asRules = queries.map((expr, i) => ({ record: `teal:dashboard_query_${i}`, expr }));
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules: asRules }] }));
    const r = await tool(promtool, ['check', 'rules', file]);
    expect(r.out, r.out).toMatch(new RegExp(`SUCCESS: ${queries.length} rules found`));
  });
});

interface K8sObject {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
}
interface Container {
  name: string;
  command: string[];
  args: string[];
  env: { name: string; value?: string }[];
  envFrom: { secretRef?: { name: string } }[];
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  livenessProbe: { httpGet: { path: string } };
  readinessProbe: { httpGet: { path: string } };
  startupProbe: { httpGet: { path: string } };
}
interface DeploymentSpec {
  replicas: number;
  strategy: { type: string };
  template: { spec: { containers: Container[] } };
}

async function helmTemplate(helm: string, args: string[]): Promise<K8sObject[]> {
  const r = await tool(helm, ['template', 'teal', CHART, ...args]);
  if (r.code !== 0) throw new Error(`helm template failed:\n${r.out}`);
  return parseAllDocuments(r.out)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

const deployment = (objects: K8sObject[], component: string) => {
  const d = objects.find(
    (o) => o.kind === 'Deployment' && o.metadata.labels?.['app.kubernetes.io/component'] === component,
  );
  if (!d) throw new Error(`no ${component} Deployment rendered`);
  return d.spec as unknown as DeploymentSpec;
};

describe('Helm chart', () => {
  let helm: string;
  let kubeconform: string;
  let rendered: string;
  beforeAll(async () => {
    [helm, kubeconform] = await Promise.all([helmTool.ensure(), kubeconformTool.ensure()]);
    const dir = mkdtempSync(join(tmpdir(), 'teal-chart-'));
    rendered = join(dir, 'rendered.yaml');
    const r = await tool(helm, ['template', 'teal', CHART, '-f', EXAMPLE_VALUES]);
    expect(r.code, r.out).toBe(0);
    writeFileSync(rendered, r.out);
    return () => rmSync(dir, { recursive: true, force: true });
  }, 30 * 60_000);

  test('helm lint passes (strict) with the example values', async () => {
    const r = await tool(helm, ['lint', '--strict', CHART, '-f', EXAMPLE_VALUES]);
    expect(r.out, r.out).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(r.code).toBe(0);
  });

  test('kubeconform (strict, Kubernetes schemas from kubernetes-validate) accepts every rendered manifest', async () => {
    const r = await tool(kubeconform, [
      '-strict',
      '-summary',
      '-kubernetes-version',
      kubeconformTool.kubernetesVersion,
      '-schema-location',
      kubeconformTool.schemaLocation,
      rendered,
    ]);
    expect(r.out, r.out).toMatch(/Valid: [1-9]\d*, Invalid: 0, Errors: 0, Skipped: 0/);
    expect(r.code).toBe(0);
    // The schemas are real: a misspelt field is refused.
    const bad = `${rendered}.bad.yaml`;
    writeFileSync(bad, readFileSync(rendered, 'utf8').replace('readinessProbe:', 'readynessProbe:'));
    const refused = await tool(kubeconform, [
      '-strict',
      '-kubernetes-version',
      kubeconformTool.kubernetesVersion,
      '-schema-location',
      kubeconformTool.schemaLocation,
      bad,
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.out).toMatch(/readynessProbe/);
  });

  test('one producer replaced with Recreate, scalable consumers, the API behind a Service; probes, Secret, resources', async () => {
    const objects = await helmTemplate(helm, ['-f', EXAMPLE_VALUES, '--set', 'consumer.replicas=5']);
    const producer = deployment(objects, 'producer');
    const consumer = deployment(objects, 'consumer');
    const api = deployment(objects, 'api');
    expect(producer.replicas).toBe(1);
    expect(producer.strategy.type).toBe('Recreate');
    expect(consumer.replicas).toBe(5);
    expect(consumer.strategy.type).toBe('RollingUpdate');
    const [p] = producer.template.spec.containers;
    const [c] = consumer.template.spec.containers;
    const [a] = api.template.spec.containers;
    expect(p.args.slice(0, 2)).toEqual(['producer', '--api']);
    expect(c.args.slice(0, 2)).toEqual(['consumer', '--api']);
    expect(a.args[0]).toBe('api');
    for (const k of [p, c, a]) {
      expect(k.livenessProbe.httpGet.path).toBe('/healthz');
      expect(k.startupProbe.httpGet.path).toBe('/healthz');
      expect(k.readinessProbe.httpGet.path).toBe('/readyz');
      expect(k.envFrom).toEqual([{ secretRef: { name: 'teal-env' } }]);
      expect(k.resources.requests?.memory).toMatch(/Mi$/);
      expect(k.resources.limits?.memory).toMatch(/i$/);
      expect(k.args.slice(-2)).toEqual(['--config', '/app/config/teal.config.ts']);
    }
    const service = objects.find((o) => o.kind === 'Service');
    expect(service?.spec).toMatchObject({
      selector: { 'app.kubernetes.io/component': 'api' },
      ports: [{ port: 8080, targetPort: 'api' }],
    });
    expect(objects.find((o) => o.kind === 'ConfigMap')?.metadata.name).toBe('teal-config');
    // No replicas setting can make two producers.
    const two = await helmTemplate(helm, ['-f', EXAMPLE_VALUES, '--set', 'producer.replicas=2']);
    expect(deployment(two, 'producer').replicas).toBe(1);
  });

  test("the chart starts node as bin/teal.mjs's shebang does: the same V8 flags and environment", async () => {
    // The pods run node directly (no npx), so the shebang's flags and environment are theirs to set.
    const { flags, env } = tealShebang(ROOT);
    const assignments = Object.entries(env);
    expect(flags.length).toBeGreaterThan(0);
    expect(assignments.map(([name]) => name)).toContain('MALLOC_ARENA_MAX');
    const objects = await helmTemplate(helm, ['--set', 'secret.existingSecret=teal-env']);
    for (const component of ['producer', 'consumer', 'api']) {
      const [k] = deployment(objects, component).template.spec.containers;
      expect(k.command, component).toEqual(['node', ...flags, 'bin/teal.mjs']);
      for (const [name, value] of assignments) expect(k.env, component).toContainEqual({ name, value });
    }
  });

  test('without a Secret the chart refuses to render, saying what to set', async () => {
    const r = await tool(helm, ['template', 'teal', CHART]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/secret\.existingSecret/);
    const partial = await tool(helm, [
      'template',
      'teal',
      CHART,
      '--set',
      'secret.create=true',
      '--set',
      'secret.values.TEAL_BLUE_URL=postgres://blue/app',
    ]);
    expect(partial.code).not.toBe(0);
    expect(partial.out).toMatch(/secret\.values\.TEAL_GREEN_URL is required/);
    const made = await helmTemplate(helm, [
      '--set',
      'secret.create=true',
      ...[
        'TEAL_BLUE_URL',
        'TEAL_GREEN_URL',
        'TEAL_KAFKA_BROKERS',
        'TEAL_API_TOKEN',
        'TEAL_KAFKA_SASL_PASSWORD',
      ].flatMap((k) => ['--set', `secret.values.${k}=x-${k}`]),
    ]);
    const secret = made.find((o) => o.kind === 'Secret') as unknown as { stringData: Record<string, string> };
    expect(Object.keys(secret.stringData)).toContain('TEAL_KAFKA_SASL_PASSWORD');
    expect(deployment(made, 'producer').template.spec.containers[0].envFrom).toEqual([
      { secretRef: { name: 'teal' } },
    ]);
  });
});

describe('the dashboard and the rules query only what teal serves', () => {
  test("the chart's producer, consumer and api pods, run against the shared env, serve every metric queried; teal_state says stopped without a producer", async () => {
    const helm = await helmTool.ensure();
    // Blue and green databases of the test's own; the slot (named as they are) dropped at the end.
    const db = await checkDatabases(
      'deploy_files',
      'CREATE TABLE items (id int PRIMARY KEY, v text)',
      'CREATE TABLE items (id int PRIMARY KEY, v text)',
    );
    const name = db.name;
    const token = `t-${name}`;
    const dir = mkdtempSync(join(tmpdir(), `teal-${name}-`));
    onTestFinished(async () => {
      const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: name });
      const admin = kafka.admin();
      await admin.deleteTopics(await admin.listTopics(`${name}.`)).catch(() => {});
      await kafka.close();
      rmSync(dir, { recursive: true, force: true });
    });
    await db.blue.query("INSERT INTO items SELECT g, 'snap' || g FROM generate_series(1, 20) g");
    writeFileSync(
      join(dir, 'teal.config.ts'),
      "export default { tables: ['public.items'], kafka: { partitions: 2 }, heartbeatMs: 500 };\n",
    );

    // The roles as the chart runs them: its args (less --config: this test's config is in cwd).
    const objects = await helmTemplate(helm, ['--set', 'secret.existingSecret=teal-env']);
    const children: { component: string; child: TealChild; url: string }[] = [];
    for (const component of ['producer', 'consumer', 'api']) {
      const container = deployment(objects, component).template.spec.containers[0];
      const plainEnv = Object.fromEntries(container.env.map((e) => [e.name, e.value ?? '']));
      const port = await freePort();
      const child = spawnTeal(container.args, {
        cwd: dir,
        dropEnv: ['TEAL_', 'PG'],
        env: {
          ...plainEnv,
          // The pod's Secret, and loopback instead of the pod's 0.0.0.0 on this shared machine.
          TEAL_BLUE_URL: db.blueUrl,
          TEAL_GREEN_URL: db.greenUrl,
          TEAL_KAFKA_BROKERS: kafkaBrokers().join(','),
          TEAL_API_TOKEN: token,
          TEAL_SLOT: name,
          TEAL_PUBLICATION: name,
          TEAL_TOPIC_PREFIX: name,
          TEAL_CONSUMER_GROUP: name,
          TEAL_API_HOST: '127.0.0.1',
          TEAL_API_PORT: String(port),
        },
      });
      children.push({ component, child, url: `http://127.0.0.1:${port}` });
    }
    for (const { component, child, url } of children) {
      await waitFor(
        async () => {
          if (child.proc.exitCode !== null) throw new Error(`${component} exited:\n${child.output()}`);
          return (await fetch(`${url}/healthz`).catch(() => undefined))?.ok || undefined;
        },
        { what: `${component}: /healthz`, timeoutMs: 120_000 },
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${component}'s output:\n${child.output()}`);
      });
    }
    await db.blue.query("INSERT INTO items VALUES (101, 'one'), (102, 'two')");
    await waitFor(
      async () => (await db.green.query('SELECT count(*)::int AS n FROM items')).rows[0].n === 22,
      { what: 'snapshot and streamed rows in green', timeoutMs: 90_000 },
    );

    const served = new Set<string>();
    for (const { component, url } of children) {
      // What the probes ask, without the token; /readyz answers 200 once blue, green and Kafka do.
      expect((await fetch(`${url}/readyz`)).status, `${component} /readyz`).toBe(200);
      const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status, `${component} /metrics`).toBe(200);
      const text = await res.text();
      for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
        served.add(m[1]);
        if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) served.add(m[1] + s);
      }
      for (const m of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/gm)) served.add(m[1]);
      if (component === 'consumer') expect(text).toMatch(/^teal_events_applied_total\{[^}]*\} [1-9]/m);
      if (component === 'producer') expect(text).toMatch(/^teal_events_produced_total\{[^}]*\} [1-9]/m);
    }
    // TealProducerNotAttached reads teal_state: a pod without a producer says `stopped` once
    // no producer reports through green, and not while one does.
    const auth = { headers: { authorization: `Bearer ${token}` } };
    const state = async (url: string) =>
      (await (await fetch(`${url}/metrics`, auth)).text()).match(/^teal_state\{state="(\w+)"\} 1$/m)?.[1];
    const [producerPod, , apiPod] = children;
    expect(await state(producerPod.url)).toBe('streaming');
    // The api pod reads the producer's state from its status row in green, written on a timer:
    // it follows the producer pod's own answer within one write.
    await waitFor(async () => (await state(apiPod.url)) === 'streaming', {
      what: 'the api pod says streaming',
      timeoutMs: 30_000,
    });
    await producerPod.child.stop();
    await waitFor(async () => (await state(apiPod.url)) === 'stopped', {
      what: "the api pod's teal_state is stopped once the producer is gone",
      timeoutMs: 60_000,
    });

    const queried = metricNames([...dashboardQueries(), ...rules().map((r) => r.expr)]);
    expect(queried.size).toBeGreaterThan(10);
    const missing = [...queried].filter((n) => !served.has(n)).sort();
    expect(missing, `queried but not served by any teal pod: ${missing.join(', ')}`).toEqual([]);
  });
});
