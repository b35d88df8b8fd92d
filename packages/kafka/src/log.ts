import { type Logger, rootLogger } from '@teal/runtime';

let kafkaLog: Logger | undefined;
/** The kafka component's logger, made on first use (importing this package writes nothing). */
export function log(): Logger {
  kafkaLog ??= rootLogger().child({ component: 'kafka' });
  return kafkaLog;
}
