import { configureLogger } from '@teal/runtime';
import { type CliIo, EXIT, UsageError, type Values } from '../command.ts';
import { TableProgress } from '../progress.ts';

// `teal demo`: the demo lives with its own config in demo/ at the repository root, and a
// checkout without it still has a working CLI. It tells its own story on stdout; teal's log
// says only warnings (unless TEAL_LOG_LEVEL asks for more), as readable lines (cli.ts).

const DEMO = new URL('../../../../demo/run.ts', import.meta.url);

interface DemoModule {
  runDemo?: (opts: {
    print?: boolean;
    envUp?: boolean;
    users?: number;
    orders?: number;
    workloadMs?: number;
    rollback?: boolean;
    greenWritesMs?: number;
    onSnapshotProgress?: (tables: Array<{ table: string; done: number; total: number }>) => void;
  }) => Promise<{
    cutover?: { safeToSwitch?: boolean };
    rollback?: { rollback: { safeToSwitch: boolean }; digests: Array<{ same: boolean }> };
  }>;
}

function count(v: unknown, name: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return n;
}

export async function runDemo(v: Values, io: CliIo): Promise<number> {
  const users = count(v.users, 'users', 1);
  const orders = count(v.orders, 'orders', 1);
  const workloadSeconds = count(v['workload-seconds'], 'workload-seconds', 1);
  const greenSeconds = count(v['green-writes-seconds'], 'green-writes-seconds', 1);
  const rollback = v.rollback === true;
  if (greenSeconds !== undefined && !rollback)
    throw new UsageError('--green-writes-seconds needs --rollback');
  let mod: DemoModule;
  try {
    mod = await import(DEMO.href);
  } catch {
    throw new Error('demo not available: demo/run.ts is missing from this checkout');
  }
  if (typeof mod.runDemo !== 'function') throw new Error('demo not available: demo/run.ts has no runDemo()');
  if (!io.env.TEAL_LOG_LEVEL) configureLogger({ level: 'warn' });
  // Pointed at servers of its own (all three given), the demo leaves the local environment alone.
  const own = ['TEAL_BLUE_URL', 'TEAL_GREEN_URL', 'TEAL_KAFKA_BROKERS'].every((k) => io.env[k]);
  if (own)
    io.stdout.write(
      '[env] TEAL_BLUE_URL, TEAL_GREEN_URL and TEAL_KAFKA_BROKERS given: not starting the local environment\n',
    );
  const progress = new TableProgress(io.stdout);
  let drawing = true;
  try {
    const summary = await mod.runDemo({
      print: true,
      envUp: !own,
      users,
      orders,
      workloadMs: workloadSeconds === undefined ? undefined : workloadSeconds * 1000,
      ...(rollback
        ? { rollback, greenWritesMs: greenSeconds === undefined ? undefined : greenSeconds * 1000 }
        : {}),
      onSnapshotProgress: (tables) => {
        if (!drawing) return;
        for (const t of tables) progress.update(t.table, t.done, t.total);
        if (tables.every((t) => t.done >= t.total)) {
          drawing = false;
          progress.stop();
        }
      },
    });
    if (summary?.cutover?.safeToSwitch === false) return EXIT.failure;
    // --rollback: blue must hold every write green took, else the demo failed.
    const back = summary?.rollback;
    if (rollback && (!back?.rollback.safeToSwitch || !back.digests.every((d) => d.same))) return EXIT.failure;
    return EXIT.ok;
  } finally {
    if (drawing) progress.stop();
  }
}
