#!/usr/bin/env node
/**
 * The pgwarden command line: a thin adapter that turns argv into options and calls the same
 * functions the agent uses.
 */
import { Command, CommanderError, Option } from 'commander';
import { runDoctor } from './cli/doctor.js';
import { runKill } from './cli/kill.js';
import { VERSION } from './index.js';

const io = {
  out: (text: string) => process.stdout.write(text),
  err: (text: string) => process.stderr.write(text),
  env: process.env,
  isTTY: Boolean(process.stdout.isTTY),
  columns: process.stdout.columns,
};

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('pgwarden')
    .description('Finds who holds your PostgreSQL connections and fixes it')
    .version(VERSION);
  // Before any subcommand exists, so they inherit it: errors come back to main() as exceptions.
  program.exitOverride();
  program
    .command('doctor')
    .description(
      'diagnose connection exhaustion now: usage, consumers, stuck sessions, locks, slow queries, next steps',
    )
    .option('--url <url>', 'PostgreSQL URL (default $DATABASE_URL)')
    .option('--pgbouncer <url>', 'PgBouncer admin console URL (postgres://admin@host:6432/pgbouncer)')
    .option('--json', 'print one JSON object')
    .option('--markdown', 'print markdown for the incident channel')
    .option('--verbose', 'more detail, and stacks on errors')
    .addOption(new Option('--color', 'force colour'))
    .addOption(new Option('--no-color', 'no colour'))
    .option('--long-running <duration>', 'an active query older than this is long-running', '5m')
    .option('--terminate-after <duration>', 'sessions older than this are termination candidates', '10m')
    .option('--slow-mean <ms>', 'statements slower than this on average are slow', '1000')
    .option('--usage-warning <percent>', 'usage of usable connections that warns', '75%')
    .option('--usage-critical <percent>', 'usage of usable connections that is critical', '90%')
    .option('--idle-in-transaction <duration>', 'report sessions idle in transaction this long', '60s')
    .option('--statement-timeout <ms>', "the probe's own statement_timeout", '5000')
    .action(async (flags) => {
      process.exitCode = await runDoctor(flags, io);
    });
  const collect = (value: string, previous: string[] = []) => [...previous, value];
  program
    .command('kill')
    .description('cancel, then terminate, the sessions that hold connections: dry run unless --execute')
    .option('--url <url>', 'PostgreSQL URL (default $DATABASE_URL)')
    .option('--older-than <duration>', 'only sessions older than this (query age, or transaction age)', '10m')
    .option('--state <state>', 'only active or idle-in-transaction sessions')
    .option('--user <role>', 'only this role')
    .option('--app <name>', 'only this application_name')
    .option('--pid <pid>', 'only this pid (repeatable)', collect)
    .option('--root-blockers', 'only the root blockers of lock chains')
    .option('--execute', 'carry the plan out (default: print it)')
    .option('--grace <duration>', 'wait between cancel and terminate', '10s')
    .option('--max-sessions <n>', 'at most this many sessions per run', '10')
    .option('--max-share <percent>', 'never more than this share of client backends per run', '50%')
    .option('--max-per-hour <n>', 'at most this many actions per hour (from the audit log)', '60')
    .option('--protect-user <role>', 'never touch this role (repeatable)', collect)
    .option('--protect-app <name>', 'never touch this application_name (repeatable)', collect)
    .option('--allow-superuser', "also act on superusers' sessions")
    .option(
      '--audit-log <file>',
      'audit log (default $PGWARDEN_AUDIT_LOG or ~/.local/state/pgwarden/audit.jsonl)',
    )
    .option('--pgbouncer <url>', 'PgBouncer admin console: show which backends serve a pooled client')
    .option('--json', 'print JSON')
    .addOption(new Option('--color', 'force colour'))
    .addOption(new Option('--no-color', 'no colour'))
    .action(async (flags) => {
      process.exitCode = await runKill(flags, io);
    });
  return program;
}

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; a bad flag is a usage error (exit 3, like an unreachable server).
      process.exitCode = err.exitCode === 0 ? 0 : 3;
      return;
    }
    process.stderr.write(`pgwarden: ${(err as Error).message}\n`);
    process.exitCode = 3;
  }
}

main();
