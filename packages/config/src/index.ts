export * from './define-config.ts';
export * from './did-you-mean.ts';
export { KAFKA_CLIENTS, type KafkaClientName, kafkaClientFromEnv } from './kafka-client.ts';
export * from './load-config.ts';
export * from './process-settings.ts';
export * from './resolve-config.ts';
export * from './reverse-config.ts';
export * from './table-names.ts';
export * from './transforms.ts';
