export * from './kafkajs-adapter.ts';
export * from './types.ts';
