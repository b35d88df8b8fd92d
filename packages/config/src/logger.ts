import { pino } from 'pino';

// One JSON logger for every part. Fields that could carry secrets are redacted by path,
// and connection strings are passed through redactUrl() before they are logged.
export const logger = pino({
  name: 'teal',
  level: process.env.TEAL_LOG_LEVEL ?? (process.env.VITEST ? 'warn' : 'info'),
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

export type Logger = typeof logger;
