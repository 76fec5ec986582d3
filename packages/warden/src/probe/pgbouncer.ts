/**
 * The PgBouncer probe: one connection to PgBouncer's admin console (the virtual database "pgbouncer")
 * as a user in admin_users or stats_users, reading SHOW POOLS, SHOW STATS and SHOW SERVERS.
 *
 * The console speaks the simple query protocol only: every query here is a plain string without
 * parameters (a parameterised or named query gets 08P01 and then a FATAL that arrives as the client's
 * 'error' event). It accepts no startup parameters but application_name (1.18 answers
 * statement_timeout with a FATAL), so the probe bounds itself with one deadline over connect, the three
 * SHOWs and the goodbye.
 */
import net from 'node:net';
import pg from 'pg';
import type { PgBouncerInfo, PgBouncerPool, PgBouncerServer } from '../snapshot.js';
import { redact } from './errors.js';

export type PgBouncerProbeErrorCode =
  | 'unreachable'
  | 'auth'
  | 'not_admin'
  | 'not_pgbouncer'
  | 'timeout'
  | 'protocol';

/** Why PgBouncer could not be probed: a stable code and one line naming the problem, never the password. */
export class PgBouncerProbeError extends Error {
  readonly code: PgBouncerProbeErrorCode;
  /** The admin URL without its password (or query string). */
  readonly target: string;

  constructor(
    code: PgBouncerProbeErrorCode,
    message: string,
    target: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PgBouncerProbeError';
    this.code = code;
    this.target = target;
  }
}

export function isPgBouncerProbeError(error: unknown): error is PgBouncerProbeError {
  return error instanceof PgBouncerProbeError;
}

export interface PgBouncerProbeOptions {
  /** Deadline for the whole probe: connect, SHOW POOLS/STATS/SERVERS, disconnect. Default 3000 ms. */
  timeoutMillis?: number;
  /** application_name of the console connection (shown in SHOW CLIENTS); default "pgwarden". */
  applicationName?: string;
}

/** PgBouncer's admin console is always this database. */
const ADMIN_DATABASE = 'pgbouncer';

interface Target {
  /** What is connected to (the URL with a database filled in). */
  connectionString: string;
  /** The URL without its password or query string, for messages. */
  display: string;
  /** host:port, for messages. */
  address: string;
  user: string;
}

function parseTarget(adminUrl: string): Target {
  let url: URL;
  try {
    url = new URL(adminUrl);
  } catch {
    // The input may hold a password: it is not repeated.
    throw new TypeError('invalid PgBouncer admin URL: expected postgres://user:password@host:port/pgbouncer');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new TypeError(
      `invalid PgBouncer admin URL: scheme ${url.protocol} is not postgres: or postgresql:`,
    );
  }
  // No database in the URL means the console (libpq would default to the user's name instead).
  if (url.pathname === '' || url.pathname === '/') url.pathname = `/${ADMIN_DATABASE}`;
  const user = decodeURIComponent(url.username);
  const address = `${url.hostname || 'localhost'}:${url.port || '5432'}`;
  // Shown without the password, and without the query string, which may carry one (?password=).
  const shown = new URL(url.href);
  shown.password = '';
  shown.search = '';
  return { connectionString: url.href, display: shown.href, address, user };
}

type Phase = 'connecting' | 'SHOW POOLS' | 'SHOW STATS' | 'SHOW SERVERS' | 'disconnecting';

/**
 * Reads PgBouncer's pools, per-database stats and server connections from its admin console
 * (`postgres://user:password@host:port/pgbouncer`, the user in admin_users or stats_users). Rows of
 * the console's own database ("pgbouncer") are left out. Throws a PgBouncerProbeError when PgBouncer
 * cannot be read, and a TypeError for a URL that is not one.
 */
export async function probePgBouncer(
  adminUrl: string,
  options: PgBouncerProbeOptions = {},
): Promise<PgBouncerInfo> {
  const timeoutMillis = options.timeoutMillis ?? 3000;
  if (!(Number.isFinite(timeoutMillis) && timeoutMillis > 0)) {
    throw new RangeError(`timeoutMillis must be a positive number, got ${String(timeoutMillis)}`);
  }
  const target = parseTarget(adminUrl);
  const database = decodeURIComponent(new URL(target.connectionString).pathname.slice(1));
  if (database !== ADMIN_DATABASE) {
    throw new PgBouncerProbeError(
      'not_pgbouncer',
      `${target.display} names database "${database}", not PgBouncer's admin console: use the database "${ADMIN_DATABASE}" on PgBouncer's port`,
      target.display,
    );
  }

  // Our own socket, so that the deadline can cut a connection that hangs anywhere.
  const socket = new net.Socket();
  const client = new pg.Client({
    connectionString: target.connectionString,
    application_name: options.applicationName ?? 'pgwarden',
    stream: () => socket,
  });
  // PgBouncer ends a misused console session with a FATAL that pg emits as 'error': without a
  // listener it would kill the process. The failing query or connect reports it anyway.
  client.on('error', () => {});

  let phase: Phase = 'connecting';
  const work = (async (): Promise<PgBouncerInfo> => {
    await client.connect();
    phase = 'SHOW POOLS';
    const pools = parsePools((await client.query('SHOW POOLS')).rows);
    phase = 'SHOW STATS';
    const stats = parseStats((await client.query('SHOW STATS')).rows);
    phase = 'SHOW SERVERS';
    const servers = parseServers((await client.query('SHOW SERVERS')).rows);
    phase = 'disconnecting';
    await client.end();
    return { pools, stats, servers, error: null };
  })();

  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new PgBouncerProbeError(
          'timeout',
          `no answer from ${target.address} within ${timeoutMillis} ms (${phase}): is PgBouncer there and not stuck?`,
          target.display,
        ),
      );
    }, timeoutMillis);
  });
  try {
    return await Promise.race([work, deadline]);
  } catch (error) {
    work.catch(() => {}); // it fails too once the socket is gone
    close(client, socket, error);
    throw classify(error, target, phase, adminUrl);
  } finally {
    clearTimeout(timer);
  }
}

/** After a failure: say goodbye when the session still works, and cut the socket when it does not. */
function close(client: pg.Client, socket: net.Socket, error: unknown): void {
  if (
    error instanceof PgBouncerProbeError ||
    !(error instanceof pg.DatabaseError) ||
    error.severity === 'FATAL'
  ) {
    socket.destroy();
    return;
  }
  client.end().catch(() => {});
  // A server that never closes its side must not keep this process alive.
  const timer = setTimeout(() => socket.destroy(), 1000);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

const UNREACHABLE: Record<string, string> = {
  ECONNREFUSED: 'connection refused (is PgBouncer running, and is this its port?)',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  ENOENT: 'no such Unix socket',
  EACCES: 'permission denied',
};

function classify(error: unknown, target: Target, phase: Phase, adminUrl: string): PgBouncerProbeError {
  if (error instanceof PgBouncerProbeError) return error;
  const at = target.address;
  if (error instanceof ShapeError) {
    return new PgBouncerProbeError(
      'protocol',
      `unexpected answer from PgBouncer at ${at}: ${error.message}`,
      target.display,
    );
  }
  const err = error as { code?: unknown; message?: unknown };
  const code = typeof err?.code === 'string' ? err.code : '';
  const said = firstLine(redact(typeof err?.message === 'string' ? err.message : String(error), adminUrl));
  const make = (kind: PgBouncerProbeErrorCode, message: string) =>
    new PgBouncerProbeError(kind, redact(message, adminUrl), target.display, { cause: error });

  if (phase === 'connecting' && UNREACHABLE[code]) {
    return make('unreachable', `cannot reach PgBouncer at ${at}: ${UNREACHABLE[code]} (${code})`);
  }
  if (
    code === '28P01' ||
    code === '28000' ||
    /authentication failed|password must be a string|no password/i.test(said)
  ) {
    return make(
      'auth',
      `PgBouncer at ${at} refused user "${target.user}": wrong password, or a user not in its auth_file (${said})`,
    );
  }
  if (/^not allowed$|admin access needed/i.test(said)) {
    return make(
      'not_admin',
      `user "${target.user}" may not use the admin console of PgBouncer at ${at}: it is in neither admin_users nor stats_users (PgBouncer said "${said}")`,
    );
  }
  if (code === '3D000' || /database "pgbouncer" does not exist/i.test(said)) {
    return make('not_pgbouncer', `${at} has no database "${ADMIN_DATABASE}": it is not PgBouncer (${said})`);
  }
  if (phase !== 'connecting' && code === '42704') {
    // PostgreSQL reads SHOW POOLS as a setting named "pools".
    return make(
      'not_pgbouncer',
      `${at} is not PgBouncer's admin console: it answered ${phase} like PostgreSQL (${said})`,
    );
  }
  const sqlState = /^[0-9A-Z]{5}$/.test(code) ? `, SQLSTATE ${code}` : '';
  return make('protocol', `unexpected answer from PgBouncer at ${at} (${phase}): ${said}${sqlState}`);
}

function firstLine(text: string): string {
  const line = text.split('\n', 1)[0] ?? '';
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

// ---------------------------------------------------------------------------------------------------
// Parsing. Column types vary across versions (int4, int8 or numeric, which pg returns as strings).

type Row = Record<string, unknown>;

class ShapeError extends Error {}

function column(row: Row, name: string, command: string): unknown {
  if (!(name in row)) throw new ShapeError(`${command} has no column ${name}`);
  return row[name];
}

/** A number from int4 (number), int8 or numeric (string) columns; NaN for anything else. */
function toNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  return typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
}

function num(row: Row, name: string, command: string): number {
  const value = column(row, name, command);
  const n = toNumber(value);
  if (!Number.isFinite(n))
    throw new ShapeError(`${command}.${name} is not a number: ${JSON.stringify(value)}`);
  return n;
}

function text(row: Row, name: string, command: string): string {
  const value = column(row, name, command);
  return value === null || value === undefined ? '' : String(value);
}

function ownRows(rows: Row[], command: string): Row[] {
  return rows.filter((row) => text(row, 'database', command) !== ADMIN_DATABASE);
}

export function parsePools(rows: Row[]): PgBouncerPool[] {
  const command = 'SHOW POOLS';
  return ownRows(rows, command).map((row) => ({
    database: text(row, 'database', command),
    user: text(row, 'user', command),
    clActive: num(row, 'cl_active', command),
    clWaiting: num(row, 'cl_waiting', command),
    svActive: num(row, 'sv_active', command),
    svIdle: num(row, 'sv_idle', command),
    svUsed: num(row, 'sv_used', command),
    // maxwait is whole seconds, maxwait_us the microseconds on top (1.8+).
    maxWaitSeconds:
      num(row, 'maxwait', command) + ('maxwait_us' in row ? num(row, 'maxwait_us', command) / 1e6 : 0),
    poolMode: text(row, 'pool_mode', command),
  }));
}

/** Per database, every numeric SHOW STATS column under PgBouncer's own name (total_xact_count, …). */
export function parseStats(rows: Row[]): Record<string, Record<string, number>> {
  const stats: Record<string, Record<string, number>> = {};
  for (const row of ownRows(rows, 'SHOW STATS')) {
    const values: Record<string, number> = {};
    for (const [name, value] of Object.entries(row)) {
      const n = toNumber(value);
      if (name !== 'database' && Number.isFinite(n)) values[name] = n;
    }
    stats[String(row.database)] = values;
  }
  return stats;
}

export function parseServers(rows: Row[]): PgBouncerServer[] {
  const command = 'SHOW SERVERS';
  return ownRows(rows, command).map((row) => ({
    database: text(row, 'database', command),
    user: text(row, 'user', command),
    state: text(row, 'state', command),
    remotePid: num(row, 'remote_pid', command),
    connectTime: pgBouncerTime(text(row, 'connect_time', command)),
  }));
}

/**
 * PgBouncer prints times as "2024-05-01 12:00:00 UTC" in its own time zone: UTC (or GMT) becomes ISO
 * 8601; another zone's abbreviation cannot be resolved, so that text is kept as it is.
 */
function pgBouncerTime(value: string): string | null {
  if (value === '') return null;
  const utc = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?) (?:UTC|GMT)$/.exec(value);
  return utc ? `${utc[1]}T${utc[2]}Z` : value;
}
