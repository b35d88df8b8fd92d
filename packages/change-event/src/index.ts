export * from './event.ts';
export * from './lsn.ts';
export * from './position.ts';
