// What the default sslmode=prefer costs against a server without TLS (one SSLRequest round
// trip per connection): 5 rounds of 100 connects each with disable and prefer, alternating.
// npx tsx packages/postgres/bench/connect.ts [postgres-url]   (default: the local blue)
import { connectClient } from '../src/session.ts';

const base = process.argv[2] ?? 'postgres://postgres@127.0.0.1:5433/app';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const res: Record<string, number[]> = { disable: [], prefer: [] };
for (let round = 0; round < 5; round++)
  for (const mode of ['disable', 'prefer']) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < 100; i++) {
      const c = await connectClient(`${base}?sslmode=${mode}`, { applicationName: 'teal-connect-bench' });
      await c.end();
    }
    res[mode].push(Number(process.hrtime.bigint() - t) / 1e6 / 100);
  }
for (const [m, xs] of Object.entries(res))
  console.log(
    m,
    'ms per connect, median of 5 rounds of 100:',
    median(xs).toFixed(2),
    'range',
    Math.min(...xs).toFixed(2),
    '-',
    Math.max(...xs).toFixed(2),
  );
