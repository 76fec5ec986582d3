/**
 * The PostgreSQL probe: one dedicated connection (application_name "pgwarden", its own
 * statement_timeout) and one read-only transaction per snapshot, so every view of pg_stat_activity
 * in it is the same moment. It never counts its own backend, reads only what the server's version
 * has (pg_stat_statements' columns were renamed in 13), and says what the role cannot see.
 */
import pg from 'pg';
import { findLockChains } from '../diagnose/locks.js';
import type {
  Consumer,
  ConnectionSummary,
  ServerInfo,
  Session,
  SessionState,
  Snapshot,
  StatStatements,
  TableStat,
  Visibility,
} from '../snapshot.js';
import { ProbeError, classifyConnectError } from './errors.js';

export interface ProbeOptions {
  /** The probe's own statement_timeout (default 5000 ms). */
  statementTimeoutMillis?: number;
  /** Deadline to connect (default 5000 ms). */
  connectTimeoutMillis?: number;
  /** Longest query text kept per session (default 2000 characters). */
  queryTextLimit?: number;
  /** Slowest statements read from pg_stat_statements (default 10). */
  slowQueryLimit?: number;
  /** Tables read (largest, and heaviest sequential readers; default 10 each). */
  tableLimit?: number;
  /** application_name of the probe's connection (default "pgwarden"). */
  applicationName?: string;
}

const DEFAULTS = {
  statementTimeoutMillis: 5000,
  connectTimeoutMillis: 5000,
  queryTextLimit: 2000,
  slowQueryLimit: 10,
  tableLimit: 10,
  applicationName: 'pgwarden',
};

const TIMEOUT_SETTINGS = [
  'statement_timeout',
  'idle_in_transaction_session_timeout',
  'idle_session_timeout',
  'transaction_timeout',
  'lock_timeout',
];

/** A probe that holds its connection between snapshots (the agent keeps one from start). */
export class PostgresProbe {
  private client: pg.Client | undefined;
  private readonly options: typeof DEFAULTS;
  private major = 0;

  constructor(
    private readonly connectionString: string,
    options: ProbeOptions = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  get connected(): boolean {
    return this.client !== undefined;
  }

  async connect(): Promise<void> {
    if (this.client) return;
    let config: pg.ClientConfig;
    try {
      // No statement_timeout at startup: it would hide the server's own setting from pg_settings.
      // Each snapshot sets its own with set_config(..., true) after reading the server's.
      config = {
        connectionString: this.connectionString,
        application_name: this.options.applicationName,
        connectionTimeoutMillis: this.options.connectTimeoutMillis,
      };
      parseUrl(this.connectionString);
    } catch (err) {
      throw err instanceof ProbeError ? err : new ProbeError('bad_url', 'the database URL is malformed');
    }
    const client = new pg.Client(config);
    // A server that dies between snapshots must not crash the process: the next snapshot fails instead.
    client.on('error', () => {
      if (this.client === client) this.client = undefined;
    });
    try {
      await client.connect();
    } catch (err) {
      client.end().catch(() => undefined);
      throw classifyConnectError(err, this.connectionString);
    }
    this.client = client;
    const res = await client.query<{ v: number }>("SELECT current_setting('server_version_num')::int AS v");
    this.major = Math.floor((res.rows[0]?.v ?? 0) / 10000);
  }

  /**
   * Runs one statement on the probe's own connection (remedies use it: during exhaustion a second
   * connection may not be had). Values are always bound parameters.
   */
  async execute<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values: unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    await this.connect();
    return (this.client as pg.Client).query<R>(text, values);
  }

  /** The server's major version (after connect). */
  get serverMajor(): number {
    return this.major;
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  /** Takes one snapshot (connecting first when needed). */
  async snapshot(): Promise<Snapshot> {
    await this.connect();
    const client = this.client as pg.Client;
    const started = performance.now();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const server = await readServer(client);
      await client.query(
        "SELECT set_config('statement_timeout', $1, true), set_config('idle_in_transaction_session_timeout', $1, true)",
        [String(this.options.statementTimeoutMillis)],
      );
      const visibilityBase = await readVisibility(client);
      const allSessions = await readSessions(client, this.major, this.options.queryTextLimit);
      const statStatements = await readStatStatements(
        client,
        this.major,
        server.sharedPreloadLibraries,
        this.options,
      );
      const tables = await readTables(client, this.options.tableLimit);
      const at = (await client.query<{ now: Date }>('SELECT now() AS now')).rows[0]?.now ?? new Date();
      await client.query('COMMIT');
      const sessions = allSessions.filter((s) => s.backendType === 'client backend');
      const visibility: Visibility = {
        ...visibilityBase,
        hiddenSessions: sessions.filter((s) => s.state === 'unknown').length,
      };
      return {
        at: at.toISOString(),
        probeMillis: Math.round((performance.now() - started) * 10) / 10,
        server,
        visibility,
        connections: summarizeConnections(sessions, allSessions.length - sessions.length, server),
        consumers: groupConsumers(sessions),
        sessions,
        locks: findLockChains(sessions),
        statStatements,
        tables,
      };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      if (!this.client || (client as unknown as { _queryable?: boolean })._queryable === false) {
        this.client = undefined;
        throw new ProbeError(
          'connection_lost',
          `lost the connection to the server: ${(err as Error).message}`,
        );
      }
      throw err;
    }
  }
}

/** One snapshot on a connection made for it and closed after. */
export async function takeSnapshot(connectionString: string, options: ProbeOptions = {}): Promise<Snapshot> {
  const probe = new PostgresProbe(connectionString, options);
  try {
    return await probe.snapshot();
  } finally {
    await probe.close();
  }
}

/** Parses a postgres:// URL, so a malformed one fails with a clear message before any network I/O. */
export function parseUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ProbeError(
      'bad_url',
      'the database URL is malformed (expected postgres://user@host:port/database)',
    );
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new ProbeError(
      'bad_url',
      `the database URL must start with postgres:// (got ${parsed.protocol}//)`,
    );
  }
  return parsed;
}

async function readServer(client: pg.Client): Promise<ServerInfo> {
  const res = await client.query(
    `SELECT current_setting('server_version') AS version,
            current_setting('server_version_num')::int AS version_num,
            current_setting('max_connections')::int AS max_connections,
            current_setting('superuser_reserved_connections')::int AS superuser_reserved,
            coalesce(current_setting('reserved_connections', true), '0')::int AS reserved,
            -- pg_settings hides this from roles without pg_read_all_settings (NULL then)
            (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries') AS preload,
            pg_postmaster_start_time() AS started_at,
            extract(epoch FROM now() - pg_postmaster_start_time())::float8 AS uptime,
            current_database() AS database`,
  );
  const row = res.rows[0];
  const settings = await client.query<{ name: string; ms: string }>(
    'SELECT name, setting AS ms FROM pg_settings WHERE name = ANY($1::text[])',
    [TIMEOUT_SETTINGS],
  );
  const ms = new Map(settings.rows.map((r) => [r.name, Number(r.ms)]));
  const usable = row.max_connections - row.superuser_reserved - row.reserved;
  return {
    version: row.version,
    versionNum: row.version_num,
    major: Math.floor(row.version_num / 10000),
    maxConnections: row.max_connections,
    superuserReservedConnections: row.superuser_reserved,
    reservedConnections: row.reserved,
    usableConnections: usable,
    timeouts: {
      statementTimeoutMs: ms.get('statement_timeout') ?? 0,
      idleInTransactionSessionTimeoutMs: ms.get('idle_in_transaction_session_timeout') ?? 0,
      idleSessionTimeoutMs: ms.get('idle_session_timeout'),
      transactionTimeoutMs: ms.get('transaction_timeout'),
      lockTimeoutMs: ms.get('lock_timeout') ?? 0,
    },
    startedAt: new Date(row.started_at).toISOString(),
    uptimeSeconds: Math.round(row.uptime),
    sharedPreloadLibraries:
      row.preload === null
        ? null
        : String(row.preload)
            .split(',')
            .map((s) => s.trim().replace(/^"|"$/g, ''))
            .filter(Boolean),
    database: row.database,
  };
}

async function readVisibility(client: pg.Client): Promise<Omit<Visibility, 'hiddenSessions'>> {
  const res = await client.query(
    `SELECT current_user AS role,
            coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) AS superuser,
            pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS monitor`,
  );
  const row = res.rows[0];
  return { role: row.role, superuser: row.superuser, monitor: row.superuser || row.monitor };
}

const STATES = new Set<SessionState>([
  'active',
  'idle',
  'idle in transaction',
  'idle in transaction (aborted)',
  'fastpath function call',
  'disabled',
  'starting',
]);

async function readSessions(client: pg.Client, major: number, textLimit: number): Promise<Session[]> {
  // Columns that only some versions have are chosen here, by version, never from user input.
  const leader = major >= 13 ? 'leader_pid' : 'NULL::int';
  const queryId = major >= 14 ? 'query_id::text' : 'NULL::text';
  const res = await client.query(
    `SELECT pid, to_char(backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS backend_start,
            backend_type, datname, usename, coalesce(application_name, '') AS application,
            client_addr::text AS client_addr, state, wait_event_type, wait_event,
            left(query, $1) AS query, ${leader} AS leader_pid, ${queryId} AS query_id,
            to_char(xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS xact_start,
            to_char(query_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS query_start,
            to_char(state_change AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS state_change,
            extract(epoch FROM now() - xact_start)::float8 AS xact_age,
            CASE WHEN state = 'active' THEN extract(epoch FROM now() - query_start)::float8 END AS query_age,
            extract(epoch FROM now() - state_change)::float8 AS state_age,
            CASE WHEN wait_event_type = 'Lock' THEN pg_blocking_pids(pid) END AS blocked_by,
            coalesce((SELECT rolsuper FROM pg_roles r WHERE r.oid = a.usesysid), false) AS superuser
       FROM pg_stat_activity a
      WHERE pid <> pg_backend_pid()
      ORDER BY backend_start`,
    [textLimit],
  );
  return res.rows.map((r) => {
    // A role without pg_read_all_stats sees other roles' sessions with NULL backend_type and state.
    // One with a database and a user is a client connection (background workers have neither).
    const hidden = r.backend_type === null && r.datname !== null && r.usename !== null;
    const backendType: string = r.backend_type ?? (hidden ? 'client backend' : 'unknown');
    const state: SessionState = STATES.has(r.state) ? r.state : 'unknown';
    const blockedBy = Array.isArray(r.blocked_by)
      ? [...new Set<number>(r.blocked_by.map(Number))].filter((p) => p !== 0)
      : [];
    return {
      pid: r.pid,
      // Microseconds kept: (pid, backend_start) is compared for equality when acting on a session.
      backendStart: r.backend_start ?? '',
      backendType,
      database: r.datname,
      user: r.usename,
      application: r.application,
      clientAddr: r.client_addr,
      state,
      waitEventType: r.wait_event_type,
      waitEvent: r.wait_event,
      query: hidden || r.query === '<insufficient privilege>' ? null : r.query,
      queryId: r.query_id,
      leaderPid: r.leader_pid,
      xactStart: r.xact_start,
      queryStart: r.query_start,
      stateChange: r.state_change,
      xactAgeSeconds: round(r.xact_age),
      queryAgeSeconds: round(r.query_age),
      stateAgeSeconds: round(r.state_age),
      blockedBy,
      superuser: r.superuser === true,
    };
  });
}

function round(value: number | null): number | null {
  return value === null || value === undefined ? null : Math.round(value * 10) / 10;
}

async function readStatStatements(
  client: pg.Client,
  major: number,
  preload: string[] | null,
  options: typeof DEFAULTS,
): Promise<StatStatements> {
  // Unknown when the role may not read shared_preload_libraries: then reading the view tells.
  let preloaded = preload === null ? true : preload.includes('pg_stat_statements');
  const ext = await client.query<{ schema: string }>(
    "SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
  );
  const schema = ext.rows[0]?.schema;
  if (schema === undefined) return { installed: false, preloaded, error: null, top: [] };
  // Renamed in 13: total_time/mean_time became total_exec_time/mean_exec_time.
  const mean = major >= 13 ? 'mean_exec_time' : 'mean_time';
  const total = major >= 13 ? 'total_exec_time' : 'total_time';
  const view = `${client.escapeIdentifier(schema)}.pg_stat_statements`;
  await client.query('SAVEPOINT pgwarden_pgss');
  try {
    const res = await client.query(
      `SELECT queryid::text AS query_id, left(query, $1) AS query, calls, ${mean} AS mean_ms,
              ${total} AS total_ms, rows
         FROM ${view}
        WHERE calls > 0 AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        ORDER BY ${mean} DESC
        LIMIT $2`,
      [options.queryTextLimit, options.slowQueryLimit],
    );
    await client.query('RELEASE SAVEPOINT pgwarden_pgss');
    return {
      installed: true,
      preloaded,
      error: null,
      top: res.rows.map((r) => ({
        queryId: r.query_id,
        query: r.query,
        calls: Number(r.calls),
        meanMs: Number(r.mean_ms),
        totalMs: Number(r.total_ms),
        rows: Number(r.rows),
      })),
    };
  } catch (err) {
    await client.query('ROLLBACK TO SAVEPOINT pgwarden_pgss');
    const message = (err as Error).message;
    if (/shared_preload_libraries/.test(message)) preloaded = false;
    return { installed: true, preloaded, error: message, top: [] };
  }
}

async function readTables(client: pg.Client, limit: number): Promise<TableStat[]> {
  await client.query('SAVEPOINT pgwarden_tables');
  try {
    const res = await client.query(
      `WITH t AS (
         SELECT schemaname, relname, pg_total_relation_size(relid) AS total_bytes, n_live_tup,
                seq_scan, seq_tup_read, idx_scan
           FROM pg_stat_user_tables)
       (SELECT * FROM t ORDER BY total_bytes DESC LIMIT $1)
       UNION
       (SELECT * FROM t ORDER BY seq_tup_read DESC LIMIT $1)
       ORDER BY total_bytes DESC`,
      [limit],
    );
    await client.query('RELEASE SAVEPOINT pgwarden_tables');
    return res.rows.map((r) => ({
      schema: r.schemaname,
      table: r.relname,
      totalBytes: Number(r.total_bytes),
      liveRows: Number(r.n_live_tup),
      seqScan: Number(r.seq_scan),
      seqTupRead: Number(r.seq_tup_read),
      idxScan: r.idx_scan === null ? null : Number(r.idx_scan),
    }));
  } catch {
    // A table dropped while we read sizes: report none rather than fail the snapshot.
    await client.query('ROLLBACK TO SAVEPOINT pgwarden_tables');
    return [];
  }
}

export function summarizeConnections(
  sessions: Session[],
  otherBackends: number,
  server: ServerInfo,
): ConnectionSummary {
  const byState: Record<string, number> = {};
  for (const s of sessions) byState[s.state] = (byState[s.state] ?? 0) + 1;
  const usable = server.usableConnections;
  return {
    total: sessions.length,
    byState,
    usable,
    usage: usable > 0 ? sessions.length / usable : 1,
    otherBackends,
  };
}

export function groupConsumers(sessions: Session[]): Consumer[] {
  const groups = new Map<string, Consumer>();
  for (const s of sessions) {
    const key = JSON.stringify([s.database, s.user, s.application, s.clientAddr, s.state]);
    const group = groups.get(key);
    if (group) group.count++;
    else
      groups.set(key, {
        database: s.database,
        user: s.user,
        application: s.application,
        clientAddr: s.clientAddr,
        state: s.state,
        count: 1,
      });
  }
  return [...groups.values()].sort((a, b) => b.count - a.count);
}
