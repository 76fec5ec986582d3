/**
 * A Snapshot is everything pgwarden saw of one server at one moment, as plain immutable data. The
 * probe makes it; diagnosis, rendering, the agent and reports only read it.
 */

export interface ServerInfo {
  /** `server_version` as the server reports it, e.g. "18.4". */
  version: string;
  /** `server_version_num`, e.g. 180004. */
  versionNum: number;
  /** Major version (12 … 18). */
  major: number;
  maxConnections: number;
  superuserReservedConnections: number;
  /** `reserved_connections` (PostgreSQL 16+); 0 before. */
  reservedConnections: number;
  /** Slots ordinary roles can use: max − superuser_reserved − reserved. */
  usableConnections: number;
  /** Timeout settings in milliseconds (0 = off); undefined when the server has no such setting. */
  timeouts: {
    statementTimeoutMs: number;
    idleInTransactionSessionTimeoutMs: number;
    idleSessionTimeoutMs: number | undefined;
    transactionTimeoutMs: number | undefined;
    lockTimeoutMs: number;
  };
  startedAt: string;
  uptimeSeconds: number;
  /** `shared_preload_libraries`; null when the role may not read it. */
  sharedPreloadLibraries: string[] | null;
  database: string;
}

export interface Visibility {
  /** The role pgwarden connected as. */
  role: string;
  superuser: boolean;
  /** Member of pg_monitor (or pg_read_all_stats): sees every session's query and state. */
  monitor: boolean;
  /** Sessions whose details the role may not see ("<insufficient privilege>"). */
  hiddenSessions: number;
}

export type SessionState =
  | 'active'
  | 'idle'
  | 'idle in transaction'
  | 'idle in transaction (aborted)'
  | 'fastpath function call'
  | 'disabled'
  | 'starting'
  | 'unknown';

export interface Session {
  pid: number;
  /** ISO time in UTC with microseconds; with `pid` it identifies a session (pids are reused). */
  backendStart: string;
  backendType: string;
  database: string | null;
  user: string | null;
  application: string;
  clientAddr: string | null;
  state: SessionState;
  waitEventType: string | null;
  waitEvent: string | null;
  /** Query text, truncated; null when the role may not see it. */
  query: string | null;
  queryId: string | null;
  /** Parallel workers point at their leader. */
  leaderPid: number | null;
  /** Times in UTC with microseconds (compared for equality when re-checking a session). */
  xactStart: string | null;
  queryStart: string | null;
  stateChange: string | null;
  /** Seconds since xact_start (a transaction's age), when in a transaction. */
  xactAgeSeconds: number | null;
  /** Seconds the current query has run: only for active sessions. */
  queryAgeSeconds: number | null;
  /** Seconds in the current state (idle time for idle sessions). */
  stateAgeSeconds: number | null;
  /** pids this session waits for (only for sessions waiting on a lock). */
  blockedBy: number[];
  /** The session's role is a superuser (remedies leave it alone unless allowed). */
  superuser: boolean;
}

export interface ConnectionSummary {
  /** Client backends, pgwarden's own excluded. */
  total: number;
  byState: Record<string, number>;
  usable: number;
  /** total / usable, 0..1 (may exceed 1 when superusers use reserved slots). */
  usage: number;
  /** Backends of other types (autovacuum, walwriter, …), for reference. */
  otherBackends: number;
}

export interface Consumer {
  database: string | null;
  user: string | null;
  application: string;
  clientAddr: string | null;
  state: string;
  count: number;
}

export interface LockChain {
  /** The session at the top of the chain: it waits for nobody and blocks others. */
  rootPid: number;
  /** Every session waiting, directly or not, on the root. */
  blockedPids: number[];
  /** Longest path length from the root (2 = root blocks one session that blocks another). */
  depth: number;
  /** Edges waiter -> holder. */
  edges: { waiter: number; holder: number }[];
}

export interface SlowQuery {
  queryId: string | null;
  query: string;
  calls: number;
  meanMs: number;
  totalMs: number;
  rows: number;
}

export interface StatStatements {
  /** Whether the extension's view exists in the connected database. */
  installed: boolean;
  /** Whether the library is in shared_preload_libraries. */
  preloaded: boolean;
  /** Why it could not be read, when it could not. */
  error: string | null;
  top: SlowQuery[];
}

export interface TableStat {
  schema: string;
  table: string;
  totalBytes: number;
  liveRows: number;
  seqScan: number;
  seqTupRead: number;
  idxScan: number | null;
}

export interface PgBouncerPool {
  database: string;
  user: string;
  clActive: number;
  clWaiting: number;
  svActive: number;
  svIdle: number;
  svUsed: number;
  maxWaitSeconds: number;
  poolMode: string;
}

export interface PgBouncerServer {
  database: string;
  user: string;
  state: string;
  /** The backend's pid on PostgreSQL (pg_stat_activity.pid). */
  remotePid: number;
  connectTime: string | null;
}

export interface PgBouncerInfo {
  pools: PgBouncerPool[];
  stats: Record<string, Record<string, number>>;
  servers: PgBouncerServer[];
  error: string | null;
}

export interface Snapshot {
  /** When the snapshot was taken (server time). */
  at: string;
  /** Wall time the probe took, in ms. */
  probeMillis: number;
  server: ServerInfo;
  visibility: Visibility;
  connections: ConnectionSummary;
  consumers: Consumer[];
  /** Client backend sessions, pgwarden's own excluded. */
  sessions: Session[];
  locks: LockChain[];
  statStatements: StatStatements;
  tables: TableStat[];
  pgbouncer?: PgBouncerInfo;
}
