/**
 * pgbouncer.ini and a userlist.txt template from a capacity plan. Pure: text out, no I/O.
 *
 * The ini never holds a password (clients and PgBouncer's own server logins use auth_file), and the
 * userlist template holds only user names with commented-out placeholders: deployed unedited, it
 * lets nobody in, rather than letting anyone in with a placeholder password.
 */
import type { CapacityPlan, Figure } from './capacity.js';

export interface PgBouncerTarget {
  /** The PostgreSQL server PgBouncer forwards to. */
  host: string;
  port: number;
  database: string;
  /** Users the app connects as (from --url). */
  users: string[];
  listenAddr: string;
  listenPort: number;
  /** Path of userlist.txt as PgBouncer will read it. */
  authFile: string;
  /** admin_users: may SHOW, PAUSE, RELOAD, SHUTDOWN on the console. */
  adminUsers: string[];
  /** stats_users: may SHOW only (what `pgwarden doctor --pgbouncer` needs). */
  statsUsers: string[];
}

/** A value that cannot be written into pgbouncer.ini safely. */
export class IniValueError extends Error {
  /** What the value is ("the database name", "--admin-user"). */
  readonly what: string;

  constructor(what: string, message: string) {
    super(message);
    this.name = 'IniValueError';
    this.what = what;
  }
}

/** Plain names only: anything else (quotes, commas, spaces, line breaks) could change the file's meaning. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@-]*$/;
const HOST = /^[A-Za-z0-9_.:-]+$/;

function checkName(what: string, value: string): string {
  if (!NAME.test(value)) {
    throw new IniValueError(
      what,
      `${what} ${JSON.stringify(value)} is not a plain name (letters, digits, _ . @ -): write it into the files by hand`,
    );
  }
  return value;
}

function checkHost(what: string, value: string): string {
  if (!HOST.test(value))
    throw new IniValueError(what, `${what} ${JSON.stringify(value)} is not a host name or address`);
  return value;
}

function checkPort(what: string, value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new IniValueError(what, `${what} must be a port (1 to 65535), got ${value}`);
  }
  return value;
}

function unique(list: string[]): string[] {
  return [...new Set(list)];
}

/** The lines `; why` then `key = value`. */
function setting(key: string, value: string | number, why?: Figure | string): string[] {
  const text = typeof why === 'string' ? why : why?.why;
  return [...(text ? [`; ${text}`] : []), `${key} =${value === '' ? '' : ` ${value}`}`];
}

/** Every user that appears in the ini, in the order the userlist lists them. */
export function iniUsers(target: PgBouncerTarget): string[] {
  return unique([...target.users, ...target.adminUsers, ...target.statsUsers]);
}

/** pgbouncer.ini for the plan's PgBouncer set-up in front of `target`. */
export function renderPgBouncerIni(plan: CapacityPlan, target: PgBouncerTarget): string {
  const host = checkHost('the server host', target.host);
  const port = checkPort('the server port', target.port);
  const database = checkName('the database name', target.database);
  for (const user of target.users) checkName('the user name', user);
  const admins = unique(target.adminUsers.map((u) => checkName('the admin user', u)));
  const stats = unique(target.statsUsers.map((u) => checkName('the stats user', u)));
  const listenAddr = target.listenAddr === '*' ? '*' : checkHost('the listen address', target.listenAddr);
  const listenPort = checkPort('the listen port', target.listenPort);
  if (/[\r\n]/.test(target.authFile)) throw new IniValueError('auth_file', 'the auth_file path spans lines');

  const b = plan.pgbouncer;
  const header = [
    '; pgbouncer.ini written by `pgwarden pgbouncer-config`.',
    `; The plan: ${plan.headline}.`,
    `; PgBouncer ${b.recommended ? 'is recommended: ' : 'is '}${b.reason}.`,
  ];
  if (!b.sufficient) {
    header.push(
      '; WARNING: even behind PgBouncer the server cannot serve the load measured: see `pgwarden plan`.',
    );
  }
  header.push(
    '; Each computed value has the line that explains it just above it.',
    '; No password is in this file: PgBouncer checks clients against auth_file (userlist.txt), and logs',
    '; in to the server as the same user with the secret found there.',
  );

  const lines = [
    ...header,
    '',
    '[databases]',
    `; the server from --url (${host}:${port}, database ${database}); clients connect to "${database}" here`,
    `${database} = host=${host} port=${port} dbname=${database}`,
    '',
    '[pgbouncer]',
    ...setting(
      'listen_addr',
      listenAddr,
      'where the app connects (instead of the server); * for every address',
    ),
    ...setting('listen_port', listenPort),
    ...setting(
      'unix_socket_dir',
      '',
      'TCP only; name a directory (e.g. /var/run/postgresql) for a Unix socket too',
    ),
    '',
    ...setting('auth_type', 'scram-sha-256', 'clients log in with SCRAM, checked against auth_file'),
    ...setting(
      'auth_file',
      target.authFile,
      'user names and secrets (fill in the template; for many users see auth_query in the PgBouncer docs)',
    ),
    ...setting('admin_users', admins.join(', '), 'console users who may PAUSE, RELOAD, SHUTDOWN'),
    ...setting(
      'stats_users',
      stats.join(', '),
      'console users who may only SHOW (pgwarden doctor --pgbouncer)',
    ),
    '',
    ...setting(
      'pool_mode',
      'transaction',
      'a server connection serves a client for one transaction, then the next client: many app connections share few server connections',
    ),
    ...setting(
      'server_reset_query',
      '',
      'none: in transaction mode nothing is reset between clients (session state must not be relied on)',
    ),
    '',
    `; ${b.instances.why}; ${b.pools.why}`,
    `; ${b.perPool.why}`,
    ...setting('default_pool_size', b.defaultPoolSize.value, b.defaultPoolSize),
    ...setting('reserve_pool_size', b.reservePoolSize.value, b.reservePoolSize),
    ...setting('reserve_pool_timeout', b.reservePoolTimeout.value, b.reservePoolTimeout),
    `; at most ${b.serverConnections.why}`,
    ...setting('max_client_conn', b.maxClientConn.value, b.maxClientConn),
    `; PgBouncer needs a file descriptor per client and per server connection: keep the open-files`,
    `; limit (ulimit -n, LimitNOFILE) above ${b.maxClientConn.value} + ${(b.defaultPoolSize.value + b.reservePoolSize.value) * b.pools.value}.`,
    '',
    ...setting('server_lifetime', b.serverLifetime.value, b.serverLifetime),
    ...setting('server_idle_timeout', b.serverIdleTimeout.value, b.serverIdleTimeout),
    ...setting('query_wait_timeout', b.queryWaitTimeout.value, b.queryWaitTimeout),
    ...setting('idle_transaction_timeout', b.idleTransactionTimeout.value, b.idleTransactionTimeout),
    '',
    '; Drivers such as JDBC send extra_float_digits at startup; PgBouncer refuses unknown startup',
    '; parameters, so it must ignore this one to let them in.',
    '; PgBouncer 1.18 also refuses statement_timeout (and options) as startup parameters: with',
    "; @pgwarden/pool set sessionSettingsVia: 'query', so statementTimeoutMillis and",
    '; idleInTransactionTimeoutMillis are applied with set_config after connecting. Behind transaction',
    '; pooling a session SET may land on any server connection: setting them on the role is firmer,',
    `; e.g. ALTER ROLE ${target.users[0] ?? 'app'} SET statement_timeout = '30s';`,
    '; Named prepared statements need PgBouncer 1.21+ (max_prepared_statements) in transaction mode;',
    '; node-postgres uses unnamed ones unless a query has a `name`.',
    ...setting('ignore_startup_parameters', 'extra_float_digits'),
    '',
  ];
  return lines.join('\n');
}

/** userlist.txt with the users and commented-out placeholders: never a password. */
export function renderUserlistTemplate(target: PgBouncerTarget): string {
  const users = iniUsers(target).map((u) => checkName('the user name', u));
  const app = new Set(target.users);
  const lines = [
    '; userlist.txt for pgbouncer.ini (auth_type scram-sha-256), written by `pgwarden pgbouncer-config`.',
    '; One line per user: "name" "secret". There is no secret here: uncomment each line and replace',
    "; the placeholder with the user's password or, better, its SCRAM secret, which a superuser reads with",
    ";   SELECT rolname, rolpassword FROM pg_authid WHERE rolname = 'name';",
    "; PgBouncer logs in to the server as the client's user with this secret, so for the app's users it",
    "; must match the server's. The console users (admin_users, stats_users) exist only in PgBouncer.",
    '; Keep this file private: mode 600, owned by the user PgBouncer runs as.',
    ...users.map((u) =>
      app.has(u)
        ? `;"${u}" "<password or SCRAM secret of ${u}, as on the server>"`
        : `;"${u}" "<a password for ${u}, PgBouncer console only>"`,
    ),
    '',
  ];
  return lines.join('\n');
}
