/**
 * `pgwarden pgbouncer-config`: from the capacity plan (the same flags as `pgwarden plan`), writes
 * pgbouncer.ini (transaction pooling, sized so every PgBouncer instance together stays within what
 * the server can give) and a userlist.txt template into --out (default ./pgbouncer). Existing files
 * are kept unless --force. The ini holds no password; the template holds user names only.
 * Exit code 0 written, 2 when the server has no connection to give PgBouncer, 3 bad input,
 * unreachable server, or files in the way.
 *
 * Commander options for cli.ts: every option of `plan` (see cli/plan.ts) except --json's meaning
 * (here it prints what was written as JSON), plus:
 *
 *   program
 *     .command('pgbouncer-config')
 *     .description('write pgbouncer.ini and a userlist.txt template sized from the capacity plan')
 *     ...the options of `plan`...
 *     .option('--out <dir>', 'directory to write into', './pgbouncer')
 *     .option('--force', 'overwrite pgbouncer.ini and userlist.txt there')
 *     .option('--listen <addr:port>', 'where PgBouncer listens', '127.0.0.1:6432')
 *     .option('--auth-file <path>', 'auth_file as PgBouncer will find it (default: the userlist written)')
 *     .option('--admin-user <name>', 'admin_users of the console', 'pgbouncer_admin')
 *     .option('--stats-user <name>', 'stats_users of the console (for pgwarden doctor --pgbouncer)', 'pgwarden')
 *     .option('--offline', 'do not connect: take only host, port, database and user from --url')
 *     .action(async (flags) => { process.exitCode = await runPgBouncerConfig(flags, io); });
 *
 * --url (or DATABASE_URL) is required: it is the server PgBouncer forwards to.
 */
import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseUrl } from '../probe/postgres.js';
import {
  IniValueError,
  type PgBouncerTarget,
  renderPgBouncerIni,
  renderUserlistTemplate,
} from '../plan/pgbouncer-ini.js';
import type { Io } from './doctor.js';
import { wrapWords } from '../render/text.js';
import { UsageError } from './durations.js';
import { type PlanFlags, describeFailure, planFromFlags } from './plan.js';

export interface PgBouncerConfigFlags extends PlanFlags {
  out?: string;
  force?: boolean;
  listen?: string;
  authFile?: string;
  adminUser?: string;
  statsUser?: string;
  offline?: boolean;
}

export const PGBOUNCER_CONFIG_EXIT = { written: 0, nothingToGive: 2, badInput: 3 } as const;

export const DEFAULT_LISTEN = { addr: '127.0.0.1', port: 6432 };

/** "127.0.0.1:6432", "*:6432", "[::1]:6432" or a bare port. */
export function parseListen(raw: string | undefined): { addr: string; port: number } {
  if (raw === undefined) return { ...DEFAULT_LISTEN };
  const value = raw.trim();
  const match = /^(?:\[([^\]]+)\]|([^:\s]*)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value);
  const port = match ? Number(match[3]) : Number.NaN;
  if (!match || !(port >= 1 && port <= 65535)) {
    throw new UsageError(`--listen takes address:port like 127.0.0.1:6432, got "${value}"`);
  }
  const addr = match[1] || match[2] || DEFAULT_LISTEN.addr;
  return { addr, port };
}

/** Host, port, database and user of the server PgBouncer forwards to, from the URL (never the password). */
export function targetOf(url: string): { host: string; port: number; database: string; user: string } {
  const parsed = parseUrl(url);
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new UsageError("--url names no host: PgBouncer needs the server's host");
  const user = decodeURIComponent(parsed.username);
  if (!user) throw new UsageError('--url names no user: PgBouncer needs the user the app connects as');
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, '')) || user;
  const port = parsed.port ? Number(parsed.port) : 5432;
  return { host, port, database, user };
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

export async function runPgBouncerConfig(flags: PgBouncerConfigFlags, io: Io): Promise<number> {
  const url = flags.url ?? io.env.DATABASE_URL;
  const fail = (err: unknown): number => {
    const { message, hint } = describeFailure(err, url);
    io.err(`pgwarden pgbouncer-config: ${message}\n`);
    if (hint && !flags.json) io.err(`${hint}\n`);
    return PGBOUNCER_CONFIG_EXIT.badInput;
  };

  let target: PgBouncerTarget;
  let outDir: string;
  let iniFile: string;
  let userlistFile: string;
  try {
    if (!url) {
      throw new UsageError(
        'no server given: pass --url postgres://user@host:port/database (the server PgBouncer forwards to)',
      );
    }
    const server = targetOf(url);
    const listen = parseListen(flags.listen);
    outDir = path.resolve(flags.out ?? 'pgbouncer');
    iniFile = path.join(outDir, 'pgbouncer.ini');
    userlistFile = path.join(outDir, 'userlist.txt');
    target = {
      host: server.host,
      port: server.port,
      database: server.database,
      users: [server.user],
      listenAddr: listen.addr,
      listenPort: listen.port,
      authFile: flags.authFile ?? userlistFile,
      adminUsers: [flags.adminUser ?? 'pgbouncer_admin'],
      statsUsers: [flags.statsUser ?? 'pgwarden'],
    };
    if (!flags.force) {
      for (const file of [iniFile, userlistFile]) {
        if (await exists(file)) throw new UsageError(`${file} exists: pass --force to overwrite it`);
      }
    }
  } catch (err) {
    return fail(err);
  }

  let ini: string;
  let userlist: string;
  let outcome: Awaited<ReturnType<typeof planFromFlags>>;
  try {
    outcome = await planFromFlags(flags, flags.offline ? undefined : url);
    ini = renderPgBouncerIni(outcome.plan, target);
    userlist = renderUserlistTemplate(target);
  } catch (err) {
    if (err instanceof IniValueError) return fail(new UsageError(err.message));
    return fail(err);
  }
  const b = outcome.plan.pgbouncer;
  if (b.defaultPoolSize.value < 1) {
    io.err(
      `pgwarden pgbouncer-config: the server has no connection to give PgBouncer (${b.perPool.why}); nothing written\n`,
    );
    return PGBOUNCER_CONFIG_EXIT.nothingToGive;
  }

  try {
    await fs.mkdir(outDir, { recursive: true });
    // 'wx' refuses a file that appeared since the check above; --force replaces it.
    const flag = flags.force ? 'w' : 'wx';
    await fs.writeFile(iniFile, ini, { mode: 0o644, flag });
    await fs.writeFile(userlistFile, userlist, { mode: 0o600, flag });
    // A file that existed keeps its old mode on overwrite: the userlist is meant for secrets.
    await fs.chmod(userlistFile, 0o600);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const message =
      e.code === 'EEXIST'
        ? `${e.path ?? outDir} exists: pass --force to overwrite it`
        : `cannot write into ${outDir}: ${e.code ?? e.message}`;
    return fail(new UsageError(message));
  }

  if (flags.json) {
    io.out(
      `${JSON.stringify(
        { files: { ini: iniFile, userlist: userlistFile }, verdict: outcome.plan.verdict, pgbouncer: b },
        null,
        2,
      )}\n`,
    );
    return PGBOUNCER_CONFIG_EXIT.written;
  }
  const listenAt = `${target.listenAddr}:${target.listenPort}`;
  const width = Math.max(40, Math.min(io.columns ?? 80, 120));
  const lines: string[] = [];
  const say = (text: string, indent = '', hanging = indent) => {
    wrapWords(text, width - indent.length).forEach((part, i) => {
      lines.push(`${i === 0 ? indent : hanging}${part}`);
    });
  };
  // Paths and commands are never wrapped: they are copied.
  lines.push(
    'pgwarden pgbouncer-config: wrote',
    `  ${iniFile}`,
    `  ${userlistFile} (a template: no secrets)`,
  );
  say(`PgBouncer ${b.recommended ? 'is recommended: ' : 'is '}${b.reason}.`);
  say(`default_pool_size ${b.defaultPoolSize.why}`, '  ', '    ');
  say(`reserve_pool_size ${b.reservePoolSize.why}`, '  ', '    ');
  say(`max_client_conn ${b.maxClientConn.why}`, '  ', '    ');
  if (!b.sufficient) say('WARNING: even behind PgBouncer the server cannot serve the load measured.');
  for (const note of outcome.plan.notes) say(note, '- ', '  ');
  lines.push('Next:');
  say('1. Fill in userlist.txt: uncomment each line and put in the secret (see its header).', '  ', '     ');
  lines.push('  2. Run it (as a user other than root):', `       pgbouncer ${iniFile}`);
  say(
    `3. Point the app at ${listenAt} (database ${target.database}); with @pgwarden/pool set sessionSettingsVia: 'query' (PgBouncer 1.18 rejects statement_timeout at startup).`,
    '  ',
    '     ',
  );
  lines.push(
    '  4. Watch it:',
    `       pgwarden doctor --pgbouncer postgres://${target.statsUsers[0]}@${listenAt}/pgbouncer`,
  );
  io.out(`${lines.join('\n')}\n`);
  return PGBOUNCER_CONFIG_EXIT.written;
}
