/**
 * Throwaway PgBouncer instances in front of a test PostgreSQL server, run from Debian's package
 * (`/usr/sbin/pgbouncer`, or `PGWARDEN_PGBOUNCER`). `.ci/run` installs it; elsewhere tests skip with
 * `skipWithoutPgBouncer()`, except under CI=true, where a missing PgBouncer fails them.
 *
 * Each instance gets its own directory (config, userlist, pid file, log) and listens on a free port on
 * 127.0.0.1 only, without a Unix socket. PgBouncer refuses to run as root, so as root it runs as the
 * `postgres` user, as the PostgreSQL servers do. Clients authenticate with SCRAM-SHA-256 against plain
 * passwords in userlist.txt, which also lets PgBouncer log in to the SCRAM-only embedded server as the
 * same user. Instances are cleaned up like the PostgreSQL servers (see processes.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, chmodSync, chownSync, closeSync, constants, openSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { type EmbeddedServer, freePort } from './postgres.js';
import {
  childEnv,
  ensurePostgresUser,
  type Ids,
  installHooks,
  isRoot,
  live,
  type Registered,
  startWatchdog,
} from './processes.js';

/** The PgBouncer executable: `PGWARDEN_PGBOUNCER`, else Debian's `/usr/sbin/pgbouncer`. */
export function pgBouncerBinary(): string {
  return process.env.PGWARDEN_PGBOUNCER || '/usr/sbin/pgbouncer';
}

/** Whether the PgBouncer executable is there and executable. */
export function hasPgBouncer(): boolean {
  try {
    accessSync(pgBouncerBinary(), constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * For node:test's `skip` option: `false` when PgBouncer is available, else why the test is skipped.
 * Under CI=true a missing PgBouncer throws instead: CI installs it, so its absence is a failure.
 */
export function skipWithoutPgBouncer(): string | false {
  if (hasPgBouncer()) return false;
  const reason = notInstalled();
  if (process.env.CI === 'true') throw new Error(`${reason}: CI must install it (.ci/run does), not skip`);
  return reason;
}

function notInstalled(): string {
  return `PgBouncer is not installed (${pgBouncerBinary()}; apt-get install pgbouncer)`;
}

/** What PgBouncer needs of the server behind it: an EmbeddedServer has all of it. */
export type PgBouncerBackend = Pick<EmbeddedServer, 'host' | 'port' | 'user' | 'password' | 'database'>;

export interface StartPgBouncerOptions {
  /** The server PgBouncer forwards to; every database name is passed through (`* = host port`). */
  postgres: PgBouncerBackend;
  /** Default 'session' (PgBouncer's default). */
  poolMode?: 'session' | 'transaction';
  /** Server connections per (database, user) pool; default 20. */
  defaultPoolSize?: number;
  /** Default 100. */
  maxClientConn?: number;
  /** Seconds a client may wait for a server connection before PgBouncer disconnects it; default 120. */
  queryWaitTimeoutSeconds?: number;
  /** The admin console user (admin_users); default 'pgwarden_admin', with a random password. */
  adminUser?: string;
  /** A user in stats_users only (SHOW, no PAUSE/KILL): a name, or `true` for 'pgwarden_stats'. */
  statsOnlyUser?: string | boolean;
  /** More `[pgbouncer]` settings, written after the others (so they win). */
  settings?: Record<string, string | number>;
  /** TCP port on 127.0.0.1; default: a free one. */
  port?: number;
  /** Seconds to wait for PgBouncer to listen; default 10. */
  startTimeoutSeconds?: number;
  /**
   * Run this pgbouncer.ini (one `pgwarden pgbouncer-config` wrote, say) instead of writing one. It is
   * copied into the instance's directory with only `pidfile` added (so clean-up finds the process),
   * and the auth_file it names is copied next to it (so the user PgBouncer runs as can read it) and
   * pointed at. Its `listen_addr` must be 127.0.0.1; the port is its `listen_port`. The other options
   * that shape the config (poolMode, sizes, users, settings, port) are not allowed with it. `url` is
   * the backend's user and password through PgBouncer (right when the userlist has them); `adminUrl`
   * and `statsUrl` name the ini's first admin_users/stats_users entry without a password.
   */
  configFile?: string;
}

export interface EmbeddedPgBouncer {
  /** Through PgBouncer as the server's user to its database. Contains the password: never print it. */
  readonly url: string;
  /** The admin console: `postgres://<adminUser>:<password>@127.0.0.1:<port>/pgbouncer`. */
  readonly adminUrl: string;
  /** The console as the stats-only user, when there is one. */
  readonly statsUrl: string | undefined;
  readonly host: string;
  readonly port: number;
  readonly adminUser: string;
  readonly statsUser: string | undefined;
  /** PgBouncer's pid while running. */
  readonly pid: number | undefined;
  readonly running: boolean;
  readonly configFile: string;
  /** PgBouncer's own log (its stderr). */
  readonly logFile: string;
  /** Milliseconds from spawning PgBouncer until it listened, for the first start. */
  readonly timings: { readonly startMs: number };
  /** Stops PgBouncer (SIGTERM: on 1.18 an immediate shutdown; SIGKILL after 5 s). Keeps its files. */
  stop(): Promise<void>;
  /** Starts a stopped PgBouncer again, on the same port with the same config. */
  start(): Promise<void>;
  /** Stops PgBouncer and removes its files. Idempotent. */
  destroy(): Promise<void>;
  /** Last `bytes` of PgBouncer's log (it never logs passwords). */
  logTail(bytes?: number): string;
}

const USER_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SETTING_NAME = /^[a-z_]+$/;

function checkCount(name: string, value: number | undefined, min: number): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= min)) {
    throw new RangeError(`${name} must be an integer >= ${min}, got ${String(value)}`);
  }
}

function checkUser(name: string, value: string): void {
  if (!USER_NAME.test(value))
    throw new RangeError(`${name} must be a plain identifier, got ${JSON.stringify(value)}`);
}

function pgUrl(user: string, password: string, host: string, port: number, database: string): string {
  return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/${encodeURIComponent(database)}`;
}

/** userlist.txt: `"user" "password"`, a double quote doubled. */
function userlist(users: Map<string, string>): string {
  const quote = (s: string) => `"${s.replaceAll('"', '""')}"`;
  return [...users].map(([user, password]) => `${quote(user)} ${quote(password)}\n`).join('');
}

class PgBouncer implements EmbeddedPgBouncer {
  readonly host = '127.0.0.1';
  readonly configFile: string;
  readonly logFile: string;
  readonly adminUser: string;
  readonly statsUser: string | undefined;
  port: number;
  timings = { startMs: 0 };

  readonly #baseDir: string;
  readonly #pidFile: string;
  readonly #ids: Ids | undefined;
  readonly #backend: PgBouncerBackend;
  readonly #passwords: Map<string, string>;
  readonly #settings: [string, string][];
  readonly #startTimeoutMs: number;
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  #watchdog: ChildProcess | undefined;
  #destroyed = false;
  #op: Promise<unknown> = Promise.resolve();
  readonly #registration: Registered;

  readonly #external: ExternalConfig | undefined;

  constructor(init: {
    baseDir: string;
    ids: Ids | undefined;
    backend: PgBouncerBackend;
    adminUser: string;
    statsUser: string | undefined;
    settings: [string, string][];
    port: number;
    startTimeoutMs: number;
    external?: ExternalConfig;
  }) {
    this.#baseDir = init.baseDir;
    this.configFile = path.join(init.baseDir, 'pgbouncer.ini');
    this.logFile = path.join(init.baseDir, 'pgbouncer.log');
    this.#pidFile = path.join(init.baseDir, 'pgbouncer.pid');
    this.#ids = init.ids;
    this.#backend = init.backend;
    this.adminUser = init.adminUser;
    this.statsUser = init.statsUser;
    this.#settings = init.settings;
    this.port = init.port;
    this.#startTimeoutMs = init.startTimeoutMs;
    this.#external = init.external;
    // The server's user logs in with the server's password (PgBouncer reuses it to log in to the server);
    // the console users only exist here, with passwords of their own.
    this.#passwords = new Map([[init.backend.user, init.backend.password]]);
    for (const user of init.external ? [] : [init.adminUser, init.statsUser]) {
      if (user !== undefined && !this.#passwords.has(user)) {
        this.#passwords.set(user, randomBytes(18).toString('base64url'));
      }
    }
    this.#registration = {
      baseDir: init.baseDir,
      currentPid: () => this.#child?.pid,
      stopSignal: 'SIGTERM',
      forget: () => {
        this.#destroyed = true;
        this.#child = undefined;
        this.#closeWatchdog();
      },
    };
    live.add(this.#registration);
    this.#watchdog = startWatchdog(init.baseDir, 'pgbouncer.pid', 'TERM');
  }

  get url(): string {
    const { user, database } = this.#backend;
    return pgUrl(user, this.#password(user), this.host, this.port, database);
  }

  get adminUrl(): string {
    return pgUrl(this.adminUser, this.#password(this.adminUser), this.host, this.port, 'pgbouncer');
  }

  get statsUrl(): string | undefined {
    const user = this.statsUser;
    return user === undefined
      ? undefined
      : pgUrl(user, this.#password(user), this.host, this.port, 'pgbouncer');
  }

  #password(user: string): string {
    return this.#passwords.get(user) ?? '';
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  #config(): string {
    const settings: [string, string][] = [
      ['listen_addr', this.host],
      ['listen_port', String(this.port)],
      ['unix_socket_dir', ''],
      ['pidfile', this.#pidFile],
      ['auth_type', 'scram-sha-256'],
      ['auth_file', path.join(this.#baseDir, 'userlist.txt')],
      ['admin_users', this.adminUser],
      ...this.#settings,
    ];
    if (this.statsUser !== undefined) settings.push(['stats_users', this.statsUser]);
    return [
      '; written by @pgwarden/testkit',
      '[databases]',
      `* = host=${this.#backend.host} port=${this.#backend.port}`,
      '',
      '[pgbouncer]',
      ...settings.map(([key, value]) => `${key} = ${value}`),
      '',
    ].join('\n');
  }

  /** Writes pgbouncer.ini and userlist.txt, readable by the user PgBouncer runs as only. */
  async writeFiles(): Promise<void> {
    const authFile = path.join(this.#baseDir, 'userlist.txt');
    const external = this.#external;
    const files: [string, string][] = external
      ? [
          [authFile, external.authText],
          [this.configFile, externalConfig(external.iniText, { pidfile: this.#pidFile, authFile })],
        ]
      : [
          [authFile, userlist(this.#passwords)],
          [this.configFile, this.#config()],
        ];
    for (const [file, text] of files) {
      await fs.writeFile(file, text, { mode: 0o600 });
      if (this.#ids) await fs.chown(file, this.#ids.uid, this.#ids.gid);
    }
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#op.then(fn, fn);
    this.#op = next.catch(() => undefined);
    return next;
  }

  start(): Promise<void> {
    return this.#serial(() => this.#start());
  }

  async #start(): Promise<void> {
    if (this.#destroyed) throw new Error('pgbouncer was destroyed');
    if (this.#child) return;
    const logFd = openSync(this.logFile, 'a', 0o600);
    const logOffset = this.#logText().length;
    let child: ChildProcess;
    try {
      child = spawn(pgBouncerBinary(), [this.configFile], {
        cwd: this.#baseDir,
        env: childEnv(),
        stdio: ['ignore', logFd, logFd],
        ...(this.#ids ?? {}),
      });
    } finally {
      closeSync(logFd);
    }
    this.#child = child;
    child.unref();
    let exitInfo: string | undefined;
    this.#exited = new Promise<void>((resolve) => {
      const done = (info: string) => {
        exitInfo ??= info;
        if (this.#child === child) this.#child = undefined;
        resolve();
      };
      child.once('exit', (code, sig) => done(`exited with code ${code ?? 'null'}, signal ${sig ?? 'null'}`));
      child.once('error', (err) => done(`failed to spawn: ${err.message}`));
    });

    const listening = `listening on ${this.host}:${this.port}`;
    const deadline = Date.now() + this.#startTimeoutMs;
    for (;;) {
      if (exitInfo !== undefined) {
        throw new Error(`pgbouncer ${exitInfo} while starting. Log:\n${this.logTail()}`);
      }
      if (this.#logText().slice(logOffset).includes(listening)) return;
      if (Date.now() > deadline) {
        await this.#stop();
        throw new Error(`pgbouncer did not listen in ${this.#startTimeoutMs} ms. Log:\n${this.logTail()}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  stop(): Promise<void> {
    return this.#serial(() => this.#stop());
  }

  async #stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    const exited = this.#exited;
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      exited?.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), 5_000);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      child.kill('SIGKILL');
      await exited;
    }
    // A pid file left by a killed PgBouncer would name a pid that may be reused before the next start.
    await fs.rm(this.#pidFile, { force: true });
  }

  destroy(): Promise<void> {
    return this.#serial(async () => {
      if (this.#destroyed) return;
      try {
        await this.#stop();
      } finally {
        this.#destroyed = true;
        live.delete(this.#registration);
        await fs.rm(this.#baseDir, { recursive: true, force: true, maxRetries: 3 });
        this.#closeWatchdog();
      }
    });
  }

  #closeWatchdog(): void {
    const watchdog = this.#watchdog;
    this.#watchdog = undefined;
    watchdog?.stdin?.end();
  }

  #logText(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  logTail(bytes = 4096): string {
    return this.#logText().slice(-bytes) || '(no log)';
  }

  toString(): string {
    return `EmbeddedPgBouncer(postgres://${this.adminUser}:***@${this.host}:${this.port}/pgbouncer)`;
  }

  [inspect.custom](): string {
    return `EmbeddedPgBouncer { adminUrl: 'postgres://${this.adminUser}:***@${this.host}:${this.port}/pgbouncer', configFile: '${this.configFile}', running: ${this.running} }`;
  }

  toJSON(): Record<string, unknown> {
    return {
      host: this.host,
      port: this.port,
      adminUser: this.adminUser,
      statsUser: this.statsUser,
      configFile: this.configFile,
      running: this.running,
    };
  }
}

interface ExternalConfig {
  iniText: string;
  authText: string;
}

/** `key = value` settings of the [pgbouncer] section of an ini (the last one of a key wins, as in PgBouncer). */
export function pgBouncerIniSettings(text: string): Map<string, string> {
  const settings = new Map<string, string>();
  let section = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = (header[1] as string).trim().toLowerCase();
      continue;
    }
    const eq = line.indexOf('=');
    if (section !== 'pgbouncer' || eq < 0) continue;
    settings.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
  }
  return settings;
}

/** The caller's ini with auth_file pointed at the copy and a pidfile, both right after [pgbouncer]. */
function externalConfig(text: string, add: { pidfile: string; authFile: string }): string {
  const lines = text.split(/\r?\n/);
  let section = '';
  const out: string[] = [];
  for (const line of lines) {
    const header = /^\s*\[(.+)\]\s*$/.exec(line);
    if (header) section = (header[1] as string).trim().toLowerCase();
    if (section === 'pgbouncer' && /^\s*(auth_file|pidfile)\s*=/i.test(line)) {
      out.push(`; ${line.trim()}   (replaced by @pgwarden/testkit)`);
      continue;
    }
    out.push(line);
    if (header && section === 'pgbouncer') {
      out.push('; added by @pgwarden/testkit', `pidfile = ${add.pidfile}`, `auth_file = ${add.authFile}`);
    }
  }
  return out.join('\n');
}

async function readExternal(
  configFile: string,
): Promise<{ external: ExternalConfig; settings: Map<string, string> }> {
  const iniText = await fs.readFile(configFile, 'utf8');
  const settings = pgBouncerIniSettings(iniText);
  if (!/^\s*\[pgbouncer\]\s*$/im.test(iniText))
    throw new RangeError(`${configFile} has no [pgbouncer] section`);
  const listenAddr = settings.get('listen_addr');
  if (listenAddr !== '127.0.0.1') {
    throw new RangeError(
      `${configFile}: listen_addr must be 127.0.0.1 here, got ${JSON.stringify(listenAddr ?? '')}`,
    );
  }
  const authFile = settings.get('auth_file');
  let authText = '';
  if (authFile) authText = await fs.readFile(path.resolve(path.dirname(configFile), authFile), 'utf8');
  return { external: { iniText, authText }, settings };
}

function firstOf(list: string | undefined): string | undefined {
  return list
    ?.split(',')
    .map((s) => s.trim())
    .find((s) => s !== '');
}

function isPortInUse(err: unknown): boolean {
  return /address already in use/i.test(String(err));
}

/**
 * Starts PgBouncer in front of `options.postgres`, listening on 127.0.0.1 only. Resolves once it
 * listens. The caller should `destroy()` it; anything left is destroyed when the process exits.
 */
export async function startPgBouncer(options: StartPgBouncerOptions): Promise<EmbeddedPgBouncer> {
  if (!hasPgBouncer()) throw new Error(notInstalled());
  if (options.configFile !== undefined) return startExternal(options, options.configFile);
  checkCount('defaultPoolSize', options.defaultPoolSize, 1);
  checkCount('maxClientConn', options.maxClientConn, 1);
  checkCount('queryWaitTimeoutSeconds', options.queryWaitTimeoutSeconds, 0);
  checkCount('port', options.port, 1);
  const adminUser = options.adminUser ?? 'pgwarden_admin';
  checkUser('adminUser', adminUser);
  const statsUser = options.statsOnlyUser === true ? 'pgwarden_stats' : options.statsOnlyUser || undefined;
  if (statsUser !== undefined) checkUser('statsOnlyUser', statsUser);
  if (statsUser === adminUser) throw new RangeError('statsOnlyUser must differ from adminUser');

  const settings: [string, string][] = [
    ['pool_mode', options.poolMode ?? 'session'],
    ['default_pool_size', String(options.defaultPoolSize ?? 20)],
    ['max_client_conn', String(options.maxClientConn ?? 100)],
    ['query_wait_timeout', String(options.queryWaitTimeoutSeconds ?? 120)],
  ];
  for (const [key, value] of Object.entries(options.settings ?? {})) {
    if (!SETTING_NAME.test(key))
      throw new RangeError(`invalid PgBouncer setting name: ${JSON.stringify(key)}`);
    if (/[\r\n]/.test(String(value))) throw new RangeError(`PgBouncer setting ${key} spans lines`);
    settings.push([key, String(value)]);
  }

  const ids = isRoot() ? await ensurePostgresUser() : undefined;
  installHooks();
  const port = options.port ?? (await freePort());
  const baseDir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgwarden-pgbouncer-'));
  let bouncer: PgBouncer | undefined;
  try {
    // Synchronous up to the registration in the constructor, so no exit path can miss baseDir.
    if (ids) chownSync(baseDir, ids.uid, ids.gid);
    chmodSync(baseDir, 0o700);
    bouncer = new PgBouncer({
      baseDir,
      ids,
      backend: options.postgres,
      adminUser,
      statsUser,
      settings,
      port,
      startTimeoutMs: (options.startTimeoutSeconds ?? 10) * 1000,
    });
    const started = performance.now();
    for (let attempt = 1; ; attempt++) {
      await bouncer.writeFiles();
      try {
        await bouncer.start();
        break;
      } catch (err) {
        // Someone took the free port between our probe and PgBouncer's bind: try another.
        if (options.port !== undefined || attempt >= 3 || !isPortInUse(err)) throw err;
        bouncer.port = await freePort();
      }
    }
    bouncer.timings.startMs = Math.round(performance.now() - started);
    return bouncer;
  } catch (err) {
    if (bouncer) await bouncer.destroy().catch(() => {});
    else await fs.rm(baseDir, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}

const CONFIG_SHAPING: (keyof StartPgBouncerOptions)[] = [
  'poolMode',
  'defaultPoolSize',
  'maxClientConn',
  'queryWaitTimeoutSeconds',
  'adminUser',
  'statsOnlyUser',
  'settings',
  'port',
];

/** startPgBouncer with the caller's own pgbouncer.ini (see StartPgBouncerOptions.configFile). */
async function startExternal(options: StartPgBouncerOptions, configFile: string): Promise<EmbeddedPgBouncer> {
  for (const key of CONFIG_SHAPING) {
    if (options[key] !== undefined) throw new RangeError(`${key} cannot be combined with configFile`);
  }
  const { external, settings } = await readExternal(configFile);
  const port = Number(settings.get('listen_port') ?? '6432');
  checkCount('listen_port', port, 1);
  const ids = isRoot() ? await ensurePostgresUser() : undefined;
  installHooks();
  const baseDir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgwarden-pgbouncer-'));
  let bouncer: PgBouncer | undefined;
  try {
    if (ids) chownSync(baseDir, ids.uid, ids.gid);
    chmodSync(baseDir, 0o700);
    bouncer = new PgBouncer({
      baseDir,
      ids,
      backend: options.postgres,
      adminUser: firstOf(settings.get('admin_users')) ?? '',
      statsUser: firstOf(settings.get('stats_users')),
      settings: [],
      port,
      startTimeoutMs: (options.startTimeoutSeconds ?? 10) * 1000,
      external,
    });
    const started = performance.now();
    await bouncer.writeFiles();
    await bouncer.start();
    bouncer.timings.startMs = Math.round(performance.now() - started);
    return bouncer;
  } catch (err) {
    if (bouncer) await bouncer.destroy().catch(() => {});
    else await fs.rm(baseDir, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}
