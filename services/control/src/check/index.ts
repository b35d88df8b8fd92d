export { assertStartable, type CheckOptions, runCheck } from './check.ts';
export type * from './check-facts.ts';
export {
  type CheckConfig,
  deriveFindings,
  type Finding,
  type Severity,
  sortFindings,
} from './check-findings.ts';
export { blockedMessage, type CheckReport, checkReport, formatCheckReport } from './check-report.ts';
