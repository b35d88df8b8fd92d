export * from './codes.ts';
export * from './redact.ts';
export * from './sqlstate.ts';
export * from './teal-error.ts';
