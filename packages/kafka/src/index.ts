export * from './broker-limits.ts';
export * from './client.ts';
export { RECORD_BATCH_OVERHEAD, recordBytes } from './record-size.ts';
export * from './schema-topic.ts';
export * from './types.ts';
