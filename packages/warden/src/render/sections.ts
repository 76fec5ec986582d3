/**
 * What each section of a doctor report shows, chosen once for every output format: which sessions
 * are long-running or idle in a transaction, the lock trees, the statements, tables and PgBouncer
 * servers worth a row. Pure data; the renderers only format it.
 */
import type { Diagnosis } from '../diagnose/index.js';
import { DEFAULT_THRESHOLDS, type Thresholds } from '../diagnose/thresholds.js';
import type { Finding, FindingId } from '../finding.js';
import type { Consumer, LockChain, PgBouncerInfo, Session, SlowQuery, Snapshot } from '../snapshot.js';

export type RenderThresholds = Pick<
  Thresholds,
  'longRunningSeconds' | 'idleInTransactionSeconds' | 'slowMeanMillis'
>;

/** The thresholds a report quotes ("No query running longer than 5m"): pass the ones diagnosis used. */
export function renderThresholds(overrides: Partial<Thresholds> = {}): RenderThresholds {
  return { ...DEFAULT_THRESHOLDS, ...overrides };
}

export function findingOf(diagnosis: Diagnosis, id: FindingId): Finding | undefined {
  return diagnosis.findings.find((f) => f.id === id);
}

function isIdleInTransaction(s: Session): boolean {
  return s.state === 'idle in transaction' || s.state === 'idle in transaction (aborted)';
}

/** Sessions a finding is about, in the finding's order; otherwise the snapshot filtered by `fallback`. */
function sessionsOf(
  snapshot: Snapshot,
  finding: Finding | undefined,
  fallback: (s: Session) => boolean,
): Session[] {
  if (finding) {
    const byPid = new Map(snapshot.sessions.map((s) => [s.pid, s]));
    return finding.pids.map((pid) => byPid.get(pid)).filter((s): s is Session => s !== undefined);
  }
  return snapshot.sessions.filter(fallback);
}

/** Active queries past the threshold, longest first (lock waiters are shown under Locks). */
export function longRunningSessions(
  snapshot: Snapshot,
  diagnosis: Diagnosis,
  t: RenderThresholds,
): Session[] {
  return sessionsOf(
    snapshot,
    findingOf(diagnosis, 'sessions.long_running'),
    (s) =>
      s.state === 'active' && (s.queryAgeSeconds ?? 0) >= t.longRunningSeconds && s.waitEventType !== 'Lock',
  ).sort((a, b) => (b.queryAgeSeconds ?? 0) - (a.queryAgeSeconds ?? 0));
}

/** Sessions idle in a transaction past the threshold, oldest transaction first. */
export function idleInTransactionSessions(
  snapshot: Snapshot,
  diagnosis: Diagnosis,
  t: RenderThresholds,
): Session[] {
  return sessionsOf(
    snapshot,
    findingOf(diagnosis, 'sessions.idle_in_transaction'),
    (s) => isIdleInTransaction(s) && (s.stateAgeSeconds ?? 0) >= t.idleInTransactionSeconds,
  ).sort((a, b) => (b.xactAgeSeconds ?? 0) - (a.xactAgeSeconds ?? 0));
}

/** The age that matters for a session: the query's when active, the transaction's when idle in one. */
export function sessionAge(s: Session): number | null {
  if (s.state === 'active') return s.queryAgeSeconds ?? s.stateAgeSeconds;
  if (isIdleInTransaction(s)) return s.xactAgeSeconds ?? s.stateAgeSeconds;
  return s.stateAgeSeconds;
}

/** A state short enough for a column. */
export function shortState(s: Session): string {
  if (s.state === 'active' && s.waitEventType === 'Lock') return `waiting (${s.waitEvent ?? 'lock'})`;
  if (s.state === 'active' && s.waitEventType) return `active (${s.waitEventType})`;
  if (s.state === 'idle in transaction') return 'idle in tx';
  if (s.state === 'idle in transaction (aborted)') return 'idle in tx (aborted)';
  return s.state;
}

export interface LockNode {
  pid: number;
  /** Undefined when the session is not among the client backends seen (a prepared transaction, …). */
  session: Session | undefined;
  /** 0 for the root blocker, 1 for what waits on it, … */
  depth: number;
  /** The pid this node waits for (null for the root). */
  holder: number | null;
  /** Already shown higher up (it waits for several holders, or the chain is a cycle). */
  repeated: boolean;
  /** Whether this is the last child of its holder (for the tree's corner). */
  last: boolean;
  /** For each ancestor level, whether a vertical line continues there (for the tree's bars). */
  bars: boolean[];
}

/** A chain as a tree, depth first: the root blocker first, each waiter under what it waits for. */
export function lockTree(chain: LockChain, sessions: readonly Session[]): LockNode[] {
  const byPid = new Map(sessions.map((s) => [s.pid, s]));
  const waitersOf = new Map<number, number[]>();
  for (const { waiter, holder } of chain.edges) {
    const list = waitersOf.get(holder) ?? [];
    if (!list.includes(waiter)) list.push(waiter);
    waitersOf.set(holder, list);
  }
  const nodes: LockNode[] = [];
  const shown = new Set<number>();
  const visit = (pid: number, depth: number, holder: number | null, last: boolean, bars: boolean[]) => {
    const repeated = shown.has(pid);
    nodes.push({ pid, session: byPid.get(pid), depth, holder, repeated, last, bars });
    if (repeated) return;
    shown.add(pid);
    const waiters = [...(waitersOf.get(pid) ?? [])].sort((a, b) => a - b);
    waiters.forEach((w, i) => {
      visit(w, depth + 1, pid, i === waiters.length - 1, depth === 0 ? [] : [...bars, !last]);
    });
  };
  visit(chain.rootPid, 0, null, true, []);
  return nodes;
}

/** "└─ ", "├─ " with "│  " bars for the levels above: the tree drawn in front of a pid. */
export function treePrefix(node: LockNode): string {
  if (node.depth === 0) return '';
  return `${node.bars.map((bar) => (bar ? '│  ' : '   ')).join('')}${node.last ? '└─ ' : '├─ '}`;
}

/** Statements averaging over the threshold (all of the top ones when `all`), slowest first. */
export function slowStatements(snapshot: Snapshot, t: RenderThresholds, all: boolean): SlowQuery[] {
  return snapshot.statStatements.top
    .filter((q) => all || q.meanMs > t.slowMeanMillis)
    .sort((a, b) => b.meanMs - a.meanMs);
}

export function consumersByCount(snapshot: Snapshot): Consumer[] {
  return [...snapshot.consumers].sort((a, b) => b.count - a.count);
}

/** Tables the seq-scan finding names, as JSON keys of [schema, table]. */
export function seqScanHeavyTables(diagnosis: Diagnosis): Set<string> {
  const tables = findingOf(diagnosis, 'tables.seq_scan_heavy')?.evidence.tables;
  const keys = new Set<string>();
  if (!Array.isArray(tables)) return keys;
  for (const t of tables as unknown[]) {
    if (t && typeof t === 'object' && 'schema' in t && 'table' in t)
      keys.add(JSON.stringify([t.schema, t.table]));
  }
  return keys;
}

export interface ServerGroup {
  database: string;
  user: string;
  state: string;
  pids: number[];
}

/** PgBouncer's server connections grouped by pool and state, with the backend pids they hold. */
export function bouncerServerGroups(bouncer: PgBouncerInfo): ServerGroup[] {
  const groups = new Map<string, ServerGroup>();
  for (const s of bouncer.servers) {
    const key = JSON.stringify([s.database, s.user, s.state]);
    const group = groups.get(key) ?? { database: s.database, user: s.user, state: s.state, pids: [] };
    group.pids.push(s.remotePid);
    groups.set(key, group);
  }
  return [...groups.values()].sort((a, b) => b.pids.length - a.pids.length);
}

/** Client backends by state, most first. */
export function statesByCount(snapshot: Snapshot): [string, number][] {
  return Object.entries(snapshot.connections.byState).sort((a, b) => b[1] - a[1]);
}

/** The timeout settings as (name, ms) pairs, in the order the runbook's fixes need them. */
export function timeoutSettings(snapshot: Snapshot): [string, number | undefined][] {
  const t = snapshot.server.timeouts;
  return [
    ['statement_timeout', t.statementTimeoutMs],
    ['idle_in_transaction_session_timeout', t.idleInTransactionSessionTimeoutMs],
    ['idle_session_timeout', t.idleSessionTimeoutMs],
    ['transaction_timeout', t.transactionTimeoutMs],
    ['lock_timeout', t.lockTimeoutMs],
  ];
}

/** Findings that need someone (warning and critical) and the ones only worth knowing, in diagnosis order. */
export function splitFindings(diagnosis: Diagnosis): { urgent: Finding[]; info: Finding[] } {
  return {
    urgent: diagnosis.findings.filter((f) => f.severity !== 'info'),
    info: diagnosis.findings.filter((f) => f.severity === 'info'),
  };
}

/** Session actions (one per pid) beyond `limit` are counted, not listed; other actions always are. */
export function visibleActions(
  finding: Finding,
  limit: number,
): { shown: Finding['actions']; hidden: number } {
  let sessionActions = 0;
  const shown = finding.actions.filter((a) => {
    if (a.kind !== 'cancel' && a.kind !== 'terminate') return true;
    sessionActions++;
    return sessionActions <= limit;
  });
  return { shown, hidden: finding.actions.length - shown.length };
}
