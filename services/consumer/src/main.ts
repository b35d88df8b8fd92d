import { configPathFromArgv, consumerGroupFromEnv, loadConfig, logLevelFromEnv } from '@teal/config';
import { configureLogger, createMetrics, rootLogger } from '@teal/runtime';
import { Consumer } from './consumer.ts';

// `tsx services/consumer/src/main.ts [--config FILE]`: the consumer alone, config from
// teal.config.ts and TEAL_* env. TEAL_CONSUMER_GROUP overrides the group id.
configureLogger({ level: logLevelFromEnv(process.env) });
const config = await loadConfig({ configPath: configPathFromArgv(process.argv.slice(2)) });
const consumer = new Consumer(config, {
  metrics: createMetrics(),
  groupId: consumerGroupFromEnv(process.env),
});
let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  rootLogger().info({ signal }, 'consumer stopping');
  await consumer.stop();
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
await consumer.start();
