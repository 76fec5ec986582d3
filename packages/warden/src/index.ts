/**
 * pgwarden as a library: the probe, the diagnosis and the renderers the CLI and the agent use.
 */
export const VERSION = '0.1.0';

export { PostgresProbe, takeSnapshot } from './probe/postgres.js';
export type { ProbeOptions } from './probe/postgres.js';
export { ProbeError, isProbeError } from './probe/errors.js';
export { diagnose, summarize, DEFAULT_THRESHOLDS, findLockChains } from './diagnose/index.js';
export type { Diagnosis, Status, Thresholds } from './diagnose/index.js';
export type * from './snapshot.js';
export type * from './finding.js';
export { renderJson, doctorReport } from './render/json.js';
export {
  planCapacity,
  PlanInputError,
  RUNBOOK_STEP2,
  renderPlanText,
  renderPlanJson,
  renderPgBouncerIni,
  renderUserlistTemplate,
} from './plan/index.js';
export type {
  CapacityInput,
  CapacityPlan,
  Figure,
  PgBouncerPlan,
  PgBouncerTarget,
  Verdict,
} from './plan/index.js';
export { runPlan } from './cli/plan.js';
export type { PlanFlags } from './cli/plan.js';
export { runPgBouncerConfig } from './cli/pgbouncer-config.js';
export type { PgBouncerConfigFlags } from './cli/pgbouncer-config.js';
export { planRemedies, DEFAULT_POLICY } from './remedy/planner.js';
export type { PlannedAction, Refusal, RemedyPlan, RemedyPolicy, RemedyRequest } from './remedy/planner.js';
export { executePlan } from './remedy/executor.js';
export { FileAuditLog, MemoryAuditLog, defaultAuditPath } from './remedy/audit.js';
export type { AuditEntry, AuditSink } from './remedy/audit.js';
export { runDoctor } from './cli/doctor.js';
export { runKill } from './cli/kill.js';
export { runIndexes } from './cli/indexes.js';
