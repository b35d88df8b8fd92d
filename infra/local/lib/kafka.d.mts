// Types for TypeScript callers (test/) of the local broker's helpers.

/** A Kafka cluster id (a 16-byte Uuid as URL-safe base64) that never starts with '-'. */
export function newKafkaClusterId(): string;
