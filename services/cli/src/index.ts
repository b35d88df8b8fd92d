export { type CliIo, EXIT, main } from './cli.ts';
export { table } from './format.ts';
export { TableProgress } from './progress.ts';
export { formatStatus } from './render.ts';
export { createReverse, prepareReverse } from './reverse.ts';
