export { type CliIo, EXIT, formatStatus, main } from './cli.ts';
