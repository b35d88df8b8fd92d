export * from './applier.ts';
export * from './apply-plan.ts';
export * from './apply-sql.ts';
export * from './consumer.ts';
export * from './dead-letter.ts';
export * from './error-policy.ts';
export * from './green-catalog.ts';
export * from './schema-policy.ts';
