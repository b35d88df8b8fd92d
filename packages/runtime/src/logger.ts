import { type Logger as PinoLogger, pino } from 'pino';

// One JSON logger for every part, created on first use (importing a package never opens
// stdout or reads the environment). Fields that could carry secrets are redacted by path;
// connection strings pass through redactUrl() (@teal/errors) before they are logged.
// The level comes from the entry point (TEAL_LOG_LEVEL, read by @teal/config).
export type Logger = PinoLogger;

let root: Logger | undefined;
let level: string | undefined;

/** Sets the level of the root logger (and of the one created later); called by entry points. */
export function configureLogger(options: { level?: string }): void {
  if (options.level === undefined) return;
  level = options.level;
  if (root) root.level = level;
}

export function rootLogger(): Logger {
  root ??= pino({
    name: 'teal',
    level: level ?? (process.env.VITEST ? 'warn' : 'info'),
    redact: {
      paths: [
        'password',
        '*.password',
        'token',
        '*.token',
        'authorization',
        '*.authorization',
        'headers.authorization',
      ],
      censor: '***',
    },
  });
  return root;
}
