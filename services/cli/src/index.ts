export { type CliIo, EXIT, main } from './cli.ts';
export { formatStatus } from './render.ts';
