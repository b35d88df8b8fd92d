export * from './assembler.ts';
export { builtinType } from './builtin-types.ts';
export * from './decoder.ts';
export * from './file-spill-store.ts';
export * from './framing.ts';
export * from './messages.ts';
export * from './spill-store.ts';
