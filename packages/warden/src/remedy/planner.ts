/**
 * The remedy planner: which sessions to cancel or terminate, and which to refuse and why. Pure: a
 * snapshot and a request in, a plan out. The safety rules live here and in the executor's SQL:
 * never pgwarden's own backend, never a non-client backend, never a superuser (unless allowed),
 * never a protected user or application, and never more than the run's limits.
 */
import type { Session, Snapshot } from '../snapshot.js';

export type RemedyRule = 'long_running' | 'idle_in_transaction' | 'root_blocker' | 'requested';

export interface RemedyPolicy {
  /** Roles never touched. */
  protectedUsers: string[];
  /** application_names never touched ("pgwarden" always is). */
  protectedApplications: string[];
  /** Superusers' sessions are refused unless this is set. */
  allowSuperusers: boolean;
  /** At most this many sessions per run. */
  maxSessionsPerRun: number;
  /** Never more than this share of the client backends per run (0..1). */
  maxShareOfClients: number;
  /** At most this many actions per hour (counted from the audit log). */
  maxActionsPerHour: number;
  /** Wait between cancel and terminate. */
  graceMillis: number;
}

export const DEFAULT_POLICY: RemedyPolicy = {
  protectedUsers: [],
  protectedApplications: [],
  allowSuperusers: false,
  maxSessionsPerRun: 10,
  maxShareOfClients: 0.5,
  maxActionsPerHour: 60,
  graceMillis: 10_000,
};

export interface RemedyRequest {
  /** Only sessions older than this (query age when active, transaction age otherwise). */
  olderThanSeconds: number;
  /** Per rule (the agent's policy): cancel active queries older than X … */
  activeOlderThanSeconds?: number;
  /** … end sessions idle in transaction longer than Y … */
  idleInTransactionOlderThanSeconds?: number;
  /** … and the root blocker of a chain held longer than Z. Each defaults to olderThanSeconds. */
  rootBlockerOlderThanSeconds?: number;
  /** Only active queries, or only sessions idle in transaction. */
  state?: 'active' | 'idle-in-transaction';
  user?: string;
  application?: string;
  /** Only these pids (they need no rule to be guilty). */
  pids?: number[];
  /** Only the root blockers of lock chains. */
  rootBlockers?: boolean;
  /** Actions already taken in the last hour (for the hourly limit). */
  actionsInLastHour?: number;
}

/**
 * What is done to a session: always the ladder — cancel first, then, after the grace period,
 * terminate if it is still the same session and still guilty. A session idle in transaction ignores
 * a cancel (it runs nothing), so it is the terminate that ends it, unless it commits in the meantime.
 */
export interface PlannedAction {
  pid: number;
  backendStart: string;
  user: string | null;
  application: string;
  state: Session['state'];
  ageSeconds: number;
  query: string | null;
  rule: RemedyRule;
  reason: string;
  /** The session's identity and the guilt that is re-checked in the same statement. */
  guilt: { xactStart: string | null; queryStart: string | null };
}

export interface Refusal {
  pid: number;
  backendStart: string;
  user: string | null;
  application: string;
  reason: string;
  rule: RemedyRule | 'limit';
}

export interface RemedyPlan {
  actions: PlannedAction[];
  refusals: Refusal[];
  /** The cap that applied: min(maxSessionsPerRun, share of clients, hourly budget). */
  limit: number;
}

const PGWARDEN_APPLICATION = 'pgwarden';

function age(session: Session): number {
  if (session.state === 'active') return session.queryAgeSeconds ?? 0;
  return session.xactAgeSeconds ?? session.stateAgeSeconds ?? 0;
}

function isIdleInTransaction(session: Session): boolean {
  return session.state === 'idle in transaction' || session.state === 'idle in transaction (aborted)';
}

/** Why a session matches the request, or undefined when it does not. */
function guiltOf(
  session: Session,
  request: RemedyRequest,
  roots: Set<number>,
): { rule: RemedyRule; reason: string } | undefined {
  if (request.pids && !request.pids.includes(session.pid)) return undefined;
  if (request.user !== undefined && session.user !== request.user) return undefined;
  if (request.application !== undefined && session.application !== request.application) return undefined;
  const older = age(session) >= request.olderThanSeconds;
  const past = (threshold: number | undefined) => age(session) >= (threshold ?? request.olderThanSeconds);
  if (request.rootBlockers) {
    if (!roots.has(session.pid) || !past(request.rootBlockerOlderThanSeconds)) return undefined;
    return { rule: 'root_blocker', reason: `root blocker of a lock chain, ${Math.round(age(session))}s old` };
  }
  if (request.state === 'active' && session.state !== 'active') return undefined;
  if (request.state === 'idle-in-transaction' && !isIdleInTransaction(session)) return undefined;
  if (session.state === 'active' && past(request.activeOlderThanSeconds)) {
    return { rule: 'long_running', reason: `query running ${Math.round(age(session))}s` };
  }
  if (isIdleInTransaction(session) && past(request.idleInTransactionOlderThanSeconds)) {
    return {
      rule: 'idle_in_transaction',
      reason: `idle in transaction, transaction ${Math.round(age(session))}s old`,
    };
  }
  if (request.pids && older && !request.state) return { rule: 'requested', reason: 'named with --pid' };
  return undefined;
}

/** Why a matching session must be left alone, or undefined when it may be acted on. */
export function protection(session: Session, policy: RemedyPolicy, ownPid?: number): string | undefined {
  if (ownPid !== undefined && session.pid === ownPid) return "pgwarden's own backend";
  if (session.backendType !== 'client backend') return `not a client backend (${session.backendType})`;
  if (session.application === PGWARDEN_APPLICATION) return "pgwarden's own connection";
  if (session.superuser && !policy.allowSuperusers) return 'superuser session (allow with --allow-superuser)';
  if (session.user !== null && policy.protectedUsers.includes(session.user))
    return `protected user ${session.user}`;
  if (policy.protectedApplications.includes(session.application))
    return `protected application ${session.application}`;
  if (session.state === 'unknown') return 'cannot see this session (role lacks pg_monitor)';
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/.test(session.backendStart))
    return 'no backend_start to check its identity';
  return undefined;
}

export function planRemedies(
  snapshot: Snapshot,
  request: RemedyRequest,
  policy: RemedyPolicy = DEFAULT_POLICY,
  ownPid?: number,
): RemedyPlan {
  const roots = new Set(snapshot.locks.map((l) => l.rootPid));
  const refusals: Refusal[] = [];
  const eligible: PlannedAction[] = [];
  for (const session of snapshot.sessions) {
    const guilt = guiltOf(session, request, roots);
    if (!guilt) continue;
    const base = {
      pid: session.pid,
      backendStart: session.backendStart,
      user: session.user,
      application: session.application,
    };
    const protectedBecause = protection(session, policy, ownPid);
    if (protectedBecause) {
      refusals.push({ ...base, reason: protectedBecause, rule: guilt.rule });
      continue;
    }
    eligible.push({
      ...base,
      state: session.state,
      ageSeconds: age(session),
      query: session.query,
      rule: guilt.rule,
      reason: guilt.reason,
      guilt: { xactStart: session.xactStart, queryStart: session.queryStart },
    });
  }
  // Blockers first (they free others), then the oldest.
  eligible.sort((a, b) => Number(roots.has(b.pid)) - Number(roots.has(a.pid)) || b.ageSeconds - a.ageSeconds);
  const shareCap = Math.floor(policy.maxShareOfClients * snapshot.connections.total);
  const hourly = Math.max(0, policy.maxActionsPerHour - (request.actionsInLastHour ?? 0));
  const limit = Math.max(0, Math.min(policy.maxSessionsPerRun, shareCap, hourly));
  const actions = eligible.slice(0, limit);
  for (const skipped of eligible.slice(limit)) {
    const which =
      limit === hourly
        ? `hourly limit of ${policy.maxActionsPerHour} actions reached`
        : limit === shareCap
          ? `at most ${Math.round(policy.maxShareOfClients * 100)}% of ${snapshot.connections.total} client backends per run`
          : `at most ${policy.maxSessionsPerRun} sessions per run`;
    refusals.push({
      pid: skipped.pid,
      backendStart: skipped.backendStart,
      user: skipped.user,
      application: skipped.application,
      reason: which,
      rule: 'limit',
    });
  }
  return { actions, refusals, limit };
}
