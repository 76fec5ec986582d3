/**
 * Rules about the server's set-up and workload: slow statements, pg_stat_statements itself,
 * tables read by sequential scans, missing timeouts, and PgBouncer's waiting clients.
 */
import type { Finding } from '../finding.js';
import type { Snapshot } from '../snapshot.js';
import { commandAction, setAndReload, sqlAction } from './actions.js';
import { score } from './sessions.js';
import type { Thresholds } from './thresholds.js';

export function slowQueries(snap: Snapshot, t: Thresholds): Finding | undefined {
  const slow = snap.statStatements.top.filter((q) => q.meanMs > t.slowMeanMillis);
  if (slow.length === 0) return undefined;
  const column = snap.server.major >= 13 ? 'mean_exec_time' : 'mean_time';
  const total = snap.server.major >= 13 ? 'total_exec_time' : 'total_time';
  const active = new Set(
    snap.sessions.filter((s) => s.state === 'active' && s.queryId).map((s) => s.queryId),
  );
  const running = slow.filter((q) => q.queryId !== null && active.has(q.queryId)).length;
  return {
    id: 'queries.slow',
    severity: 'warning',
    title: `${slow.length} statement${slow.length === 1 ? '' : 's'} average over ${t.slowMeanMillis} ms`,
    summary: `Slow statements hold their connections longer, so the same traffic needs more of them. Slowest: ${Math.round(
      slow[0]?.meanMs ?? 0,
    )} ms on average over ${slow[0]?.calls ?? 0} calls.`,
    evidence: { statements: slow, runningNow: running },
    pids: [],
    actions: [
      sqlAction(
        'pg_stat_statements',
        `SELECT query, calls, ${column}, ${total}\n  FROM pg_stat_statements\n WHERE ${column} > ${t.slowMeanMillis}\n ORDER BY ${column} DESC\n LIMIT 10;`,
      ),
      commandAction('slow statements', 'pgwarden indexes --execute   # proposes and creates missing indexes'),
    ],
    score: 15 + Math.min(15, running * 5),
  };
}

export function statStatementsMissing(snap: Snapshot): Finding | undefined {
  const pgss = snap.statStatements;
  if (pgss.installed && pgss.preloaded && pgss.error === null) return undefined;
  const libs = (snap.server.sharedPreloadLibraries ?? []).filter((l) => l !== 'pg_stat_statements');
  // A list setting: one literal per library ('a', 'b'), never one quoted string 'a,b' (that names
  // a single library called "a,b", and the server would not start).
  const preload = [...libs, 'pg_stat_statements'].map((l) => `'${l.replace(/'/g, "''")}'`).join(', ');
  const steps = [];
  if (!pgss.preloaded) {
    steps.push(
      sqlAction('shared_preload_libraries', `ALTER SYSTEM SET shared_preload_libraries = ${preload};`, 'low'),
      commandAction(
        'server',
        'restart PostgreSQL (a reload is not enough for shared_preload_libraries)',
        'medium',
      ),
    );
  }
  if (!pgss.installed)
    steps.push(sqlAction(snap.server.database, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements;', 'low'));
  return {
    id: 'extension.pg_stat_statements_missing',
    severity: 'info',
    title: 'pg_stat_statements is not available: slow statements cannot be listed',
    summary: !pgss.preloaded
      ? 'pg_stat_statements is not in shared_preload_libraries. Add it and restart, then create the extension.'
      : !pgss.installed
        ? `The library is loaded but the extension is not created in ${snap.server.database}.`
        : `pg_stat_statements could not be read: ${pgss.error}`,
    evidence: { installed: pgss.installed, preloaded: pgss.preloaded, error: pgss.error },
    pids: [],
    actions: steps,
    score: 2,
  };
}

export function seqScanHeavy(snap: Snapshot, t: Thresholds): Finding | undefined {
  const heavy = snap.tables.filter(
    (tb) => tb.seqTupRead >= t.seqScanRowsRead && tb.seqScan > (tb.idxScan ?? 0) && tb.liveRows >= 1000,
  );
  if (heavy.length === 0) return undefined;
  return {
    id: 'tables.seq_scan_heavy',
    severity: 'info',
    title: `${heavy.length} table${heavy.length === 1 ? ' is' : 's are'} read mostly by sequential scans`,
    summary: `Sequential scans of large tables make statements slow and connections busy; an index on the filtered columns usually helps (${heavy
      .slice(0, 3)
      .map((tb) => `${tb.schema}.${tb.table}`)
      .join(', ')}).`,
    evidence: { tables: heavy },
    pids: [],
    actions: [commandAction('indexes', 'pgwarden indexes   # finds filtered columns with no usable index')],
    score: 3,
  };
}

export function timeoutsMissing(snap: Snapshot): Finding | undefined {
  const tm = snap.server.timeouts;
  const missing: string[] = [];
  if (tm.idleInTransactionSessionTimeoutMs === 0) missing.push('idle_in_transaction_session_timeout');
  if (tm.statementTimeoutMs === 0) missing.push('statement_timeout');
  if (missing.length === 0) return undefined;
  const idleInTx = snap.sessions.some((s) => s.state.startsWith('idle in transaction'));
  const actions = [];
  if (tm.idleInTransactionSessionTimeoutMs === 0)
    actions.push(setAndReload('idle_in_transaction_session_timeout', '5min'));
  if (tm.statementTimeoutMs === 0) {
    const role = busiestRole(snap);
    if (role) {
      actions.push(
        sqlAction(
          `role ${role}`,
          `ALTER ROLE ${quoteIdent(role)} SET statement_timeout = '30s';  -- new sessions of that role`,
          'low',
        ),
      );
    }
  }
  return {
    id: 'config.timeouts_missing',
    severity: idleInTx ? 'warning' : 'info',
    title: `No ${missing.join(' and no ')}`,
    summary: `Without ${missing.join(' or ')}, a stuck session holds its connection (and its locks) until someone ends it by hand.`,
    evidence: { ...tm },
    pids: [],
    actions,
    score: idleInTx ? 12 : 1,
  };
}

export function pgbouncerWaiting(snap: Snapshot, t: Thresholds): Finding | undefined {
  const bouncer = snap.pgbouncer;
  if (!bouncer) return undefined;
  const waiting = bouncer.pools.filter((p) => p.clWaiting > 0);
  if (waiting.length === 0) return undefined;
  const clients = waiting.reduce((n, p) => n + p.clWaiting, 0);
  const maxWait = Math.max(...waiting.map((p) => p.maxWaitSeconds));
  const keys = new Set(waiting.map((p) => `${p.database}\u0000${p.user}`));
  const servers = bouncer.servers.filter((s) => keys.has(`${s.database}\u0000${s.user}`));
  const severity = maxWait >= t.pgbouncerMaxWaitSeconds ? 'critical' : 'warning';
  return {
    id: 'pgbouncer.clients_waiting',
    severity,
    title: `${clients} PgBouncer client${clients === 1 ? '' : 's'} waiting for a server connection (longest ${maxWait.toFixed(1)}s)`,
    summary: `PgBouncer's pool for ${waiting
      .map((p) => `${p.database}/${p.user} (${p.svActive} active servers)`)
      .join(
        ', ',
      )} is exhausted: clients queue inside PgBouncer. The server connections that hold it are backends ${servers
      .map((s) => s.remotePid)
      .slice(0, 10)
      .join(', ')}.`,
    evidence: { pools: waiting, servers },
    pids: servers.map((s) => s.remotePid),
    actions: [commandAction('pgbouncer', "psql 'postgres://<admin>@<pgbouncer>/pgbouncer' -c 'SHOW POOLS;'")],
    score: score(severity, servers.length, Math.max(1, snap.connections.total)) + 5,
  };
}

/** The role with the most client sessions (where a per-role timeout helps most). */
function busiestRole(snap: Snapshot): string | undefined {
  const counts = new Map<string, number>();
  for (const s of snap.sessions) if (s.user) counts.set(s.user, (counts.get(s.user) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
}

/** PostgreSQL's identifier quoting (the name comes from the server's catalog). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
