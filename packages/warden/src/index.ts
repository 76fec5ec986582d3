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
