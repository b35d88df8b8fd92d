import { configPathFromArgv, loadConfig, logLevelFromEnv } from '@teal/config';
import { configureLogger, createMetrics, rootLogger } from '@teal/runtime';
import { Producer } from './producer.ts';

// `tsx services/producer/src/main.ts [--config FILE]`: the producer alone, configured by
// teal.config.ts and TEAL_* env. Stops cleanly on SIGINT/SIGTERM; exits 1 when it fails.
configureLogger({ level: logLevelFromEnv(process.env) });
const config = await loadConfig({ configPath: configPathFromArgv(process.argv.slice(2)) });
const producer = new Producer(config, { metrics: createMetrics() });
producer.on('error', (err) => {
  rootLogger().error({ err }, 'producer failed');
  void producer.stop().finally(() => process.exit(1));
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void producer.stop().finally(() => process.exit(0)));
}
try {
  await producer.start();
  rootLogger().info({ status: producer.status() }, 'producer running');
} catch (err) {
  rootLogger().error({ err }, 'producer could not start');
  await producer.stop().catch(() => {});
  process.exit(1);
}
