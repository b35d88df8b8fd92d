// The cutover workload (issue 18), teal only: with pgbench running at --rate 500, one online
// verify pass (POST /verify {online: true}), then a cutover that verifies only the delta
// (POST /cutover), then, unfenced and under load again, the baseline: a cutover that verifies
// every row inside the window (fullVerify). Reports each fenced window and its steps, ms.
// Last workload of a run: it fences bench_blue (and unfences it at the end).
import { request } from 'node:http';
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

/** POST through node:http: fetch gives up on an answer after 300 s, an online pass at scale 80 takes longer. */
function api<T>(path: string, body: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: API_PORT,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => {
          if ((res.statusCode ?? 500) >= 300) reject(new Error(`POST ${path}: ${res.statusCode} ${text}`));
          else resolve(JSON.parse(text) as T);
        });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
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
  let online = await api<{ ok: boolean }>('/verify', { online: true });
  const onlineSeconds = (performance.now() - t0) / 1000;
  log(`teal: online verify pass ${onlineSeconds.toFixed(1)} s (ok: ${online.ok}) under ${rate} tx/s`);
  // Rounds: each re-checks only the keys changed during the one before, so they shrink. As an
  // operator would: at least two, more (up to four) while the last took over 15 s.
  const rounds: number[] = [];
  for (let i = 0; i < 4 && (i < 2 || rounds[i - 1] > 15); i++) {
    const r0 = performance.now();
    online = await api<{ ok: boolean }>('/verify', { online: true });
    rounds.push((performance.now() - r0) / 1000);
    log(`teal: online verify round ${i + 1} ${rounds[i].toFixed(1)} s (ok: ${online.ok})`);
  }
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
    onlineRoundSeconds: rounds[rounds.length - 1],
    onlineRounds: rounds.length,
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
