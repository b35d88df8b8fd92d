import type { Command } from './command.ts';

// The help text: `teal`, `teal --help` and `teal <command> --help`, also printed after a
// usage error. The command list comes from the command table, so it cannot go stale.

export function topHelp(commands: Record<string, Command>): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'teal — stream PostgreSQL blue -> Kafka -> green, drain, verify, cut over',
    '',
    'usage: teal <command> [options]',
    '',
    'commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'options everywhere: --config FILE (default ./teal.config.ts), --log-format json|pretty, --help',
    'env: TEAL_BLUE_URL TEAL_GREEN_URL TEAL_KAFKA_BROKERS TEAL_API_HOST TEAL_API_PORT TEAL_API_TOKEN',
    '     TEAL_LOG_LEVEL TEAL_LOG_FORMAT (logs: pretty lines on a terminal, JSON otherwise)',
    'exit codes: 0 ok, 1 failure / not safe / mismatch / check blocked, 2 usage, 3 API (or, for check, a server) unreachable, 4 drain timeout',
  ].join('\n');
}

export function commandHelp(name: string, c: Command): string {
  return [
    `teal ${name}: ${c.summary}`,
    '',
    `usage: ${c.usage}`,
    ...(c.details ? ['', c.details] : []),
    '',
    'options: --config FILE, --log-format json|pretty, --help',
  ].join('\n');
}
