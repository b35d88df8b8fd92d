export * from './client.ts';
export * from './schema-topic.ts';
export * from './types.ts';
