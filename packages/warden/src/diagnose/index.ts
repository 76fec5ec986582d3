/**
 * Diagnosis: pure functions from a snapshot to findings, ranked so that the first one is the most
 * likely cause of the trouble (not merely the first rule that matched).
 */
import type { Finding, Severity } from '../finding.js';
import type { Snapshot } from '../snapshot.js';
import {
  pgbouncerWaiting,
  seqScanHeavy,
  slowQueries,
  statStatementsMissing,
  timeoutsMissing,
} from './server.js';
import {
  blockingChains,
  byConsumer,
  idleInTransaction,
  longRunning,
  saturation,
  visibilityLimited,
} from './sessions.js';
import { DEFAULT_THRESHOLDS, type Thresholds } from './thresholds.js';

export type Status = 'healthy' | 'warning' | 'critical';

export interface Diagnosis {
  status: Status;
  /** One sentence: the state and the most likely cause. */
  headline: string;
  /** The finding most likely to explain the trouble, when something is wrong. */
  cause: Finding | undefined;
  /** Every finding, most likely cause first. */
  findings: Finding[];
}

const RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };

export function diagnose(snapshot: Snapshot, thresholds: Partial<Thresholds> = {}): Diagnosis {
  const t: Thresholds = { ...DEFAULT_THRESHOLDS, ...thresholds };
  const candidates: (Finding | undefined)[] = [
    saturation(snapshot, t),
    byConsumer(snapshot, t),
    idleInTransaction(snapshot, t),
    longRunning(snapshot, t),
    ...blockingChains(snapshot, t),
    slowQueries(snapshot, t),
    statStatementsMissing(snapshot),
    seqScanHeavy(snapshot, t),
    timeoutsMissing(snapshot),
    pgbouncerWaiting(snapshot, t),
    visibilityLimited(snapshot),
  ];
  const findings = candidates
    .filter((f): f is Finding => f !== undefined)
    .sort((a, b) => b.score - a.score || RANK[b.severity] - RANK[a.severity]);
  return summarize(findings, snapshot);
}

/** Status, cause and headline from ranked findings. */
export function summarize(findings: Finding[], snapshot?: Snapshot): Diagnosis {
  const worst = findings.reduce((max, f) => Math.max(max, RANK[f.severity]), 0);
  const status: Status = worst === 2 ? 'critical' : worst === 1 ? 'warning' : 'healthy';
  const cause = status === 'healthy' ? undefined : findings.find((f) => f.severity !== 'info');
  const usage = snapshot
    ? `${snapshot.connections.total} of ${snapshot.connections.usable} usable connections in use (${Math.round(snapshot.connections.usage * 100)}%)`
    : '';
  let headline: string;
  if (!cause) headline = `healthy: ${usage || 'nothing needs attention'}`;
  else if (cause.id === 'connections.saturation') headline = `${status}: ${cause.title}`;
  else headline = `${status}: ${usage ? `${usage}; ` : ''}most likely cause: ${lowerFirst(cause.title)}`;
  return { status, headline, cause, findings };
}

function lowerFirst(text: string): string {
  return /^[A-Z][a-z]/.test(text) ? text[0]?.toLowerCase() + text.slice(1) : text;
}

export { DEFAULT_THRESHOLDS, type Thresholds } from './thresholds.js';
export { findLockChains } from './locks.js';
