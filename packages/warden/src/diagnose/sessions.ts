/**
 * Rules about connections and sessions: how full the server is, who holds the connections, what
 * has been idle in a transaction or running too long, and what blocks what.
 */
import type { Finding } from '../finding.js';
import type { Session, Snapshot } from '../snapshot.js';
import {
  cancelAction,
  commandAction,
  formatAge,
  setAndReload,
  sqlAction,
  terminateAction,
} from './actions.js';
import type { Thresholds } from './thresholds.js';

/** How much of the trouble a finding explains: severity plus the share of connections involved. */
export function score(severity: Finding['severity'], involved: number, total: number, weight = 1): number {
  const base = severity === 'critical' ? 30 : severity === 'warning' ? 20 : 0;
  const share = total > 0 ? Math.min(1, involved / total) : 0;
  return Math.round((base + 70 * share) * weight);
}

const pct = (x: number) => `${Math.round(x * 100)}%`;

function describe(s: Session): Record<string, unknown> {
  return {
    pid: s.pid,
    backendStart: s.backendStart,
    user: s.user,
    database: s.database,
    application: s.application,
    clientAddr: s.clientAddr,
    state: s.state,
    waitEvent: s.waitEventType ? `${s.waitEventType}:${s.waitEvent}` : null,
    xactAge: formatAge(s.xactAgeSeconds),
    queryAge: formatAge(s.queryAgeSeconds),
    stateAge: formatAge(s.stateAgeSeconds),
    query: s.query,
  };
}

const CONSUMERS_SQL = `SELECT datname, usename, application_name, client_addr, state, count(*) AS connections
  FROM pg_stat_activity
 WHERE backend_type = 'client backend'
 GROUP BY 1, 2, 3, 4, 5
 ORDER BY connections DESC;`;

export function saturation(snap: Snapshot, t: Thresholds): Finding {
  const c = snap.connections;
  const severity = c.usage >= t.usageCritical ? 'critical' : c.usage >= t.usageWarning ? 'warning' : 'info';
  const server = snap.server;
  const states = Object.entries(c.byState)
    .sort((a, b) => b[1] - a[1])
    .map(([state, n]) => `${n} ${state}`)
    .join(', ');
  return {
    id: 'connections.saturation',
    severity,
    title: `${c.total} of ${c.usable} usable connections in use (${pct(c.usage)})`,
    summary:
      severity === 'info'
        ? `Connection usage is ${pct(c.usage)} of the ${c.usable} slots ordinary roles can use${states ? ` (${states})` : ''}.`
        : `The server is ${severity === 'critical' ? 'nearly out of' : 'running low on'} connections: ${c.total} of ${c.usable} usable slots (${states}). New connections will fail with "too many clients" (53300) at ${c.usable}.`,
    evidence: {
      clientBackends: c.total,
      usable: c.usable,
      usage: Math.round(c.usage * 1000) / 1000,
      byState: c.byState,
      maxConnections: server.maxConnections,
      superuserReservedConnections: server.superuserReservedConnections,
      reservedConnections: server.reservedConnections,
      otherBackends: c.otherBackends,
    },
    pids: [],
    actions: severity === 'info' ? [] : [sqlAction('connection consumers', CONSUMERS_SQL)],
    // The symptom, not a cause: it ranks below any finding that explains it.
    score: severity === 'info' ? 0 : 10,
  };
}

export function byConsumer(snap: Snapshot, t: Thresholds): Finding {
  const total = snap.connections.total;
  const groups = new Map<
    string,
    {
      database: string | null;
      user: string | null;
      application: string;
      count: number;
      states: Record<string, number>;
    }
  >();
  for (const s of snap.sessions) {
    const key = JSON.stringify([s.database, s.user, s.application]);
    const g = groups.get(key) ?? {
      database: s.database,
      user: s.user,
      application: s.application,
      count: 0,
      states: {},
    };
    g.count++;
    g.states[s.state] = (g.states[s.state] ?? 0) + 1;
    groups.set(key, g);
  }
  const top = [...groups.values()].sort((a, b) => b.count - a.count);
  const first = top[0];
  const share = first && total > 0 ? first.count / total : 0;
  const pressured = snap.connections.usage >= t.usageWarning;
  const severity = pressured && share >= t.dominantConsumerShare ? 'warning' : 'info';
  const name = first
    ? `${first.application || '(no application_name)'} as ${first.user ?? '?'} on ${first.database ?? '?'}`
    : 'nobody';
  return {
    id: 'connections.by_consumer',
    severity,
    title: first
      ? `Top consumer: ${name} holds ${first.count} of ${total} connections`
      : 'No client connections',
    summary: first
      ? `${name} holds ${pct(share)} of the client connections${severity === 'warning' ? '; start there' : ''}.`
      : 'No client sessions besides pgwarden.',
    evidence: { consumers: top.slice(0, 10), byClient: snap.consumers.slice(0, 10) },
    pids: [],
    actions: [sqlAction('connection consumers', CONSUMERS_SQL)],
    // Names who, not why: ranks below the specific causes it overlaps with.
    score: score(severity, first?.count ?? 0, total, 0.6),
  };
}

function isIdleInTransaction(s: Session): boolean {
  return s.state === 'idle in transaction' || s.state === 'idle in transaction (aborted)';
}

export function idleInTransaction(snap: Snapshot, t: Thresholds): Finding | undefined {
  const stuck = snap.sessions
    .filter((s) => isIdleInTransaction(s) && (s.stateAgeSeconds ?? 0) >= t.idleInTransactionSeconds)
    .sort((a, b) => (b.xactAgeSeconds ?? 0) - (a.xactAgeSeconds ?? 0));
  if (stuck.length === 0) return undefined;
  const blocking = new Set(snap.locks.map((l) => l.rootPid));
  const oldest = stuck[0] as Session;
  const critical =
    (oldest.xactAgeSeconds ?? 0) >= t.terminateAfterSeconds ||
    stuck.some((s) => blocking.has(s.pid)) ||
    snap.connections.usage >= t.usageCritical;
  const severity = critical ? 'critical' : 'warning';
  const apps = [...new Set(stuck.map((s) => s.application || '(no application_name)'))]
    .slice(0, 3)
    .join(', ');
  const actions = stuck.map(terminateAction);
  if (snap.server.timeouts.idleInTransactionSessionTimeoutMs === 0) {
    actions.push(setAndReload('idle_in_transaction_session_timeout', '5min'));
  }
  return {
    id: 'sessions.idle_in_transaction',
    severity,
    title: `${stuck.length} session${stuck.length === 1 ? '' : 's'} idle in transaction (oldest ${formatAge(oldest.xactAgeSeconds)})`,
    summary: `${stuck.length} connection${stuck.length === 1 ? ' is' : 's are'} held by transactions that stopped doing anything (from ${apps}): usually a code path that never commits or releases its connection. They hold their locks and their slots until ended.`,
    evidence: { sessions: stuck.map(describe) },
    pids: stuck.map((s) => s.pid),
    actions,
    score: score(severity, stuck.length, snap.connections.total) + 5,
  };
}

export function longRunning(snap: Snapshot, t: Thresholds): Finding | undefined {
  const slow = snap.sessions
    .filter(
      (s) =>
        s.state === 'active' &&
        (s.queryAgeSeconds ?? 0) >= t.longRunningSeconds &&
        s.waitEventType !== 'Lock',
    )
    .sort((a, b) => (b.queryAgeSeconds ?? 0) - (a.queryAgeSeconds ?? 0));
  if (slow.length === 0) return undefined;
  const candidates = slow.filter((s) => (s.queryAgeSeconds ?? 0) >= t.terminateAfterSeconds);
  const severity =
    candidates.length > 0 || snap.connections.usage >= t.usageCritical ? 'critical' : 'warning';
  const oldest = slow[0] as Session;
  return {
    id: 'sessions.long_running',
    severity,
    title: `${slow.length} quer${slow.length === 1 ? 'y' : 'ies'} running longer than ${formatAge(t.longRunningSeconds)} (longest ${formatAge(oldest.queryAgeSeconds)})`,
    summary: `${slow.length} active quer${slow.length === 1 ? 'y has' : 'ies have'} run past ${formatAge(t.longRunningSeconds)}${
      candidates.length > 0
        ? `; ${candidates.length} past ${formatAge(t.terminateAfterSeconds)} (termination candidates)`
        : ''
    }. Cancel first; terminate only what ignores the cancel.`,
    evidence: { sessions: slow.map(describe), terminationCandidates: candidates.map((s) => s.pid) },
    pids: slow.map((s) => s.pid),
    actions: [...slow.map(cancelAction), ...candidates.map(terminateAction)],
    score: score(severity, slow.length, snap.connections.total),
  };
}

export function blockingChains(snap: Snapshot, t: Thresholds): Finding[] {
  const byPid = new Map(snap.sessions.map((s) => [s.pid, s]));
  return snap.locks.map((chain) => {
    const root = byPid.get(chain.rootPid);
    const waiters = chain.blockedPids.map((p) => byPid.get(p)).filter((s): s is Session => s !== undefined);
    const longestWait = Math.max(0, ...waiters.map((w) => w.stateAgeSeconds ?? 0));
    const severity =
      chain.blockedPids.length >= 5 ||
      longestWait >= t.longRunningSeconds ||
      snap.connections.usage >= t.usageCritical
        ? 'critical'
        : 'warning';
    const rootDesc = root
      ? `pid ${root.pid} (${root.application || 'no application_name'}, ${root.state}${root.xactAgeSeconds !== null ? `, transaction ${formatAge(root.xactAgeSeconds)} old` : ''})`
      : `pid ${chain.rootPid} (not visible: another backend type or a prepared transaction)`;
    const actions = root
      ? isIdleInTransaction(root)
        ? [terminateAction(root)]
        : [cancelAction(root), terminateAction(root)]
      : [commandAction(`pid ${chain.rootPid}`, `SELECT * FROM pg_locks WHERE pid = ${chain.rootPid};`)];
    return {
      id: 'locks.blocking_chain' as const,
      severity,
      title: `pid ${chain.rootPid} blocks ${chain.blockedPids.length} session${chain.blockedPids.length === 1 ? '' : 's'} (chain depth ${chain.depth})`,
      summary: `Root blocker ${rootDesc} holds locks that ${chain.blockedPids.length} session${chain.blockedPids.length === 1 ? '' : 's'} wait for, longest ${formatAge(longestWait)}. Ending the root releases the whole chain.`,
      evidence: {
        root: root ? describe(root) : { pid: chain.rootPid },
        waiting: waiters.map(describe),
        edges: chain.edges,
        depth: chain.depth,
      },
      pids: [chain.rootPid, ...chain.blockedPids],
      actions,
      score: score(severity, chain.blockedPids.length + 1, snap.connections.total) + 8,
    };
  });
}

export function visibilityLimited(snap: Snapshot): Finding | undefined {
  const v = snap.visibility;
  if (v.monitor && v.hiddenSessions === 0) return undefined;
  return {
    id: 'visibility.limited',
    severity: 'info',
    title: `Role ${v.role} cannot see ${v.hiddenSessions} session${v.hiddenSessions === 1 ? '' : 's'}`,
    summary: `Without pg_monitor, other roles' sessions show no state, query or timings, so findings about them are incomplete.`,
    evidence: { role: v.role, hiddenSessions: v.hiddenSessions },
    pids: [],
    actions: [sqlAction(`role ${v.role}`, `GRANT pg_monitor TO "${v.role.replace(/"/g, '""')}";`)],
    score: 1,
  };
}
