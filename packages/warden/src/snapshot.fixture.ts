/**
 * Fake snapshots for tests (renderers, remedy planner): plain data built by hand, no server. Three scenes from
 * the runbook: a quiet server, an exhausted one (stuck transactions, a lock chain, a long query)
 * and a PgBouncer pool with clients queueing. Not part of the build (see tsconfig's exclude).
 */
import { findLockChains } from './diagnose/locks.js';
import type { Consumer, ServerInfo, Session, Snapshot } from './snapshot.js';

export const AT = '2026-01-16T10:00:00.000Z';

export function session(pid: number, fields: Partial<Session> = {}): Session {
  return {
    pid,
    backendStart: `2026-01-16T08:00:00.${String(pid).padStart(6, '0')}Z`,
    backendType: 'client backend',
    superuser: false,
    database: 'vitalstream',
    user: 'app',
    application: 'web',
    clientAddr: '10.0.0.5',
    state: 'idle',
    waitEventType: 'Client',
    waitEvent: 'ClientRead',
    query: 'SELECT 1',
    queryId: null,
    leaderPid: null,
    xactStart: null,
    queryStart: null,
    stateChange: null,
    xactAgeSeconds: null,
    queryAgeSeconds: null,
    stateAgeSeconds: 5,
    blockedBy: [],
    ...fields,
  };
}

export function active(pid: number, queryAge: number, fields: Partial<Session> = {}): Session {
  return session(pid, {
    state: 'active',
    waitEventType: null,
    waitEvent: null,
    xactAgeSeconds: queryAge,
    queryAgeSeconds: queryAge,
    stateAgeSeconds: queryAge,
    ...fields,
  });
}

export function idleInTransaction(pid: number, xactAge: number, fields: Partial<Session> = {}): Session {
  return session(pid, {
    state: 'idle in transaction',
    xactAgeSeconds: xactAge,
    stateAgeSeconds: xactAge - 5,
    ...fields,
  });
}

export function waiting(pid: number, holder: number, age: number, fields: Partial<Session> = {}): Session {
  return active(pid, age, {
    waitEventType: 'Lock',
    waitEvent: 'transactionid',
    blockedBy: [holder],
    ...fields,
  });
}

export function makeSnapshot(
  sessions: Session[],
  fields: Partial<Omit<Snapshot, 'server'>> & { server?: Partial<ServerInfo> } = {},
): Snapshot {
  const server: ServerInfo = {
    version: '18.4',
    versionNum: 180004,
    major: 18,
    maxConnections: 100,
    superuserReservedConnections: 3,
    reservedConnections: 0,
    usableConnections: 97,
    timeouts: {
      statementTimeoutMs: 30_000,
      idleInTransactionSessionTimeoutMs: 300_000,
      idleSessionTimeoutMs: 0,
      transactionTimeoutMs: 0,
      lockTimeoutMs: 0,
    },
    startedAt: '2026-01-13T06:00:00.000Z',
    uptimeSeconds: 273_600,
    sharedPreloadLibraries: ['pg_stat_statements'],
    database: 'vitalstream',
    ...fields.server,
  };
  const byState: Record<string, number> = {};
  const consumers = new Map<string, Consumer>();
  for (const s of sessions) {
    byState[s.state] = (byState[s.state] ?? 0) + 1;
    const key = JSON.stringify([s.database, s.user, s.application, s.clientAddr, s.state]);
    const group = consumers.get(key);
    if (group) group.count++;
    else consumers.set(key, { ...s, count: 1 });
  }
  const { server: _ignored, ...rest } = fields;
  return {
    at: AT,
    probeMillis: 12.5,
    server,
    visibility: { role: 'pgwarden', superuser: false, monitor: true, hiddenSessions: 0 },
    connections: {
      total: sessions.length,
      byState,
      usable: server.usableConnections,
      usage: sessions.length / server.usableConnections,
      otherBackends: 6,
    },
    consumers: [...consumers.values()]
      .map(({ database, user, application, clientAddr, state, count }) => ({
        database,
        user,
        application,
        clientAddr,
        state,
        count,
      }))
      .sort((a, b) => b.count - a.count),
    sessions,
    locks: findLockChains(sessions),
    statStatements: { installed: true, preloaded: true, error: null, top: [] },
    tables: [],
    ...rest,
  };
}

export function quietServer(): Snapshot {
  return makeSnapshot([session(101), session(102), session(103, { application: 'cron' }), active(104, 0.2)], {
    statStatements: {
      installed: true,
      preloaded: true,
      error: null,
      top: [
        {
          queryId: '1',
          query: 'SELECT * FROM patients WHERE id = $1',
          calls: 120_000,
          meanMs: 0.4,
          totalMs: 48_000,
          rows: 120_000,
        },
      ],
    },
    tables: [
      {
        schema: 'public',
        table: 'patients',
        totalBytes: 52_428_800,
        liveRows: 40_000,
        seqScan: 3,
        seqTupRead: 120_000,
        idxScan: 99_000,
      },
    ],
  });
}

export const EVIL_QUERY =
  "\x1b[2J\rSELECT patient_id || ':' || reading FROM vitals WHERE note = '<img src=x onerror=alert(1)>'";

/** 91% of usable slots taken: 40 stuck transactions from one app, a 3-level lock chain, a long query. */
export function criticalServer(): Snapshot {
  const sessions: Session[] = [];
  for (let i = 0; i < 45; i++) sessions.push(session(1000 + i));
  for (let i = 0; i < 40; i++) {
    sessions.push(
      idleInTransaction(2000 + i, 1800 - i * 10, {
        application: 'billing-worker',
        user: 'billing',
        query: 'UPDATE accounts SET balance = balance - $1 WHERE id = $2',
      }),
    );
  }
  sessions.push(
    waiting(3001, 2000, 200, {
      application: 'ledger',
      query: 'UPDATE accounts SET frozen = true WHERE id = 7',
    }),
    waiting(3002, 3001, 150, { application: 'migrate', query: 'ALTER TABLE accounts ADD COLUMN note text' }),
    active(4001, 1300, { application: 'report', query: EVIL_QUERY }),
  );
  return makeSnapshot(sessions, {
    server: {
      timeouts: {
        statementTimeoutMs: 0,
        idleInTransactionSessionTimeoutMs: 0,
        idleSessionTimeoutMs: 0,
        transactionTimeoutMs: 0,
        lockTimeoutMs: 0,
      },
    },
    statStatements: {
      installed: true,
      preloaded: true,
      error: null,
      top: [
        {
          queryId: '9',
          query: "SELECT a | b FROM vitals WHERE taken_at > now() - interval '1 day'",
          calls: 4_200,
          meanMs: 2_500,
          totalMs: 10_500_000,
          rows: 1,
        },
      ],
    },
    tables: [
      {
        schema: 'public',
        table: 'vitals',
        totalBytes: 12 * 1024 ** 3,
        liveRows: 100_000_000,
        seqScan: 9_000,
        seqTupRead: 5e9,
        idxScan: 20,
      },
      {
        schema: 'public',
        table: 'accounts',
        totalBytes: 8_192,
        liveRows: 10,
        seqScan: 1,
        seqTupRead: 10,
        idxScan: null,
      },
    ],
  });
}

/** PgBouncer's pool is exhausted: 12 clients wait, its 20 servers are backends 5000-5019. */
export function bouncerServer(): Snapshot {
  const sessions = Array.from({ length: 20 }, (_, i) =>
    active(5000 + i, 2, { application: 'api', clientAddr: '10.0.0.9' }),
  );
  return makeSnapshot(sessions, {
    pgbouncer: {
      pools: [
        {
          database: 'vitalstream',
          user: 'app',
          clActive: 20,
          clWaiting: 12,
          svActive: 20,
          svIdle: 0,
          svUsed: 0,
          maxWaitSeconds: 8.5,
          poolMode: 'transaction',
        },
      ],
      stats: {},
      servers: sessions.map((s) => ({
        database: 'vitalstream',
        user: 'app',
        state: 'active',
        remotePid: s.pid,
        connectTime: null,
      })),
      error: null,
    },
  });
}
