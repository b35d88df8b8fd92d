export * from './format.ts';
export * from './logger.ts';
export * from './metrics.ts';
export * from './retry.ts';
