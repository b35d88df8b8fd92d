export { type BuildOptions, build, DEFAULT_BODY_LIMIT } from './app.ts';
export { bearerToken, tokenMatches } from './auth.ts';
export { type ControlBackend, type StatusSource, TealControl, type TealControlDeps } from './backend.ts';
export * from './check/index.ts';
export { runCutover } from './cutover.ts';
export { drain } from './drain.ts';
export {
  fence,
  installReverseGuard,
  isFenced,
  newReverseWriterToken,
  REVERSE_WRITER_SETTING,
  removeReverseGuard,
  unfence,
} from './fence.ts';
export { type RollbackOptions, runRollback } from './rollback.ts';
export { type RollbackObstacle, rollbackObstacles } from './rollback-prepare.ts';
export { copySequences } from './sequences.ts';
export { assertSafeBind, isLoopback, startApi } from './server.ts';
export type { Direction } from './status-derive.ts';
export * from './types.ts';
export { type VerifyProgress, verifyTables } from './verify.ts';
