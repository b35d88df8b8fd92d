import { logLevelFromEnv } from '@teal/config';
import { configureLogger } from '@teal/runtime';
import { EXIT, main } from './cli.ts';

// Entry point of `npx teal` (bin/teal.mjs). SIGINT/SIGTERM stop long-running commands
// cleanly; a second signal exits at once.
let stopRequested: ((signal: string) => void) | undefined;
const stopped = new Promise<string>((resolve) => {
  stopRequested = resolve;
});
let signals = 0;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    signals++;
    if (signals > 1) process.exit(EXIT.failure);
    stopRequested?.(signal);
  });
}

try {
  configureLogger({ level: logLevelFromEnv(process.env) });
} catch (err) {
  process.stderr.write(`teal: ${(err as Error).message}\n`);
  process.exit(EXIT.usage);
}

process.exitCode = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
  stopSignal: () => stopped,
});
// Kafka and pg clients may keep handles open after their work is done; do not wait for them.
process.exit(process.exitCode);
