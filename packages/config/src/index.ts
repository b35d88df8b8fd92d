export * from './errors.ts';
export * from './logger.ts';
export * from './retry.ts';
export * from './metrics.ts';
