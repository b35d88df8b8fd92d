// The cutover workload (issue 18), teal only: with pgbench running at --rate 500, one online
// verify pass (POST /verify {online: true}), then a cutover that verifies only the delta
// (POST /cutover), then, unfenced and under load again, the baseline: a cutover that verifies
// every row inside the window (fullVerify). Reports each fenced window and its steps, ms.
// Last workload of a run: it fences bench_blue (and unfences it at the end).
import { type Endpoint, pgbench } from './lib/pg.ts';
import type { Metrics } from './lib/report.ts';
import { log, sleep } from './lib/util.ts';
import { API_PORT } from './systems/teal.ts';

interface Report {
  safeToSwitch: boolean;
  steps: { name: string; ok: boolean; ms: number; details: string }[];
  window?: { ms: number; steps: { name: string; ms: number }[] };
  verification?: { afterFence: { deltaKeys: number } };
}

async function api<T>(path: string, body: unknown): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${API_PORT}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as T;
  if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** pgbench at `rate` tx/s until the fence ends its sessions (or `seconds`). */
function load(blue: Endpoint, rate: number, seconds: number): Promise<string> {
  const args = ['-b', 'tpcb-like', '--rate', String(rate), '-T', String(seconds), '-c', '4', '-j', '2'];
  // The fence terminates its sessions: pgbench ends with an error, as expected.
  return pgbench(blue, args).catch((err: Error) => err.message);
}

const stepMs = (r: Report, name: string) => r.window?.steps.find((s) => s.name === name)?.ms ?? Number.NaN;

export async function cutoverWorkload(blue: Endpoint, rate = 500): Promise<Metrics> {
  let running = load(blue, rate, 3_600);
  await sleep(5_000); // the load settles before anything is measured
  const t0 = performance.now();
  const online = await api<{ ok: boolean }>('/verify', { online: true });
  const onlineSeconds = (performance.now() - t0) / 1000;
  log(`teal: online verify ${onlineSeconds.toFixed(1)} s (ok: ${online.ok}) under ${rate} tx/s`);
  await sleep(5_000); // writes after the pass: the delta has something to re-check
  const delta = await api<Report>('/cutover', { timeoutMs: 600_000 });
  await running;
  log(`teal: delta cutover window ${delta.window?.ms} ms: ${JSON.stringify(delta.window?.steps)}`);
  if (!delta.safeToSwitch) log(`teal: delta cutover not safe: ${JSON.stringify(delta.steps)}`);

  await api('/unfence', {});
  running = load(blue, rate, 3_600);
  await sleep(10_000);
  const full = await api<Report>('/cutover', { timeoutMs: 600_000, fullVerify: true });
  await running;
  log(`teal: full-verify cutover window ${full.window?.ms} ms: ${JSON.stringify(full.window?.steps)}`);
  await api('/unfence', {});
  return {
    onlineVerifySeconds: onlineSeconds,
    onlineOk: online.ok ? 1 : 0,
    windowMs: delta.window?.ms ?? Number.NaN,
    fenceMs: stepMs(delta, 'fence'),
    drainMs: stepMs(delta, 'drain'),
    sequencesMs: stepMs(delta, 'sequences'),
    verifyMs: stepMs(delta, 'verify'),
    deltaKeys: delta.verification?.afterFence.deltaKeys ?? Number.NaN,
    safe: delta.safeToSwitch ? 1 : 0,
    fullWindowMs: full.window?.ms ?? Number.NaN,
    fullVerifyMs: stepMs(full, 'verify'),
    fullSafe: full.safeToSwitch ? 1 : 0,
  };
}
