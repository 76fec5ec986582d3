#!/usr/bin/env node
/**
 * The pgwarden command line: a thin adapter that turns argv into options and calls the same
 * functions the agent uses.
 */
import { Command, CommanderError, Option } from 'commander';
import { runGrafana, runRules } from './cli/deploy.js';
import { runDemo } from './cli/demo.js';
import { runDoctor } from './cli/doctor.js';
import { runIndexes } from './cli/indexes.js';
import { runKill } from './cli/kill.js';
import { runPgBouncerConfig } from './cli/pgbouncer-config.js';
import { runPlan } from './cli/plan.js';
import { runTop } from './cli/top.js';
import { runReport, runWatch } from './cli/watch.js';
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
  program
    .command('top')
    .description('live view of the sessions (pg_activity style): filter, find blockers, cancel or terminate')
    .option('--url <url>', 'PostgreSQL URL (default $DATABASE_URL)')
    .option('--interval <duration>', 'time between refreshes', '1s')
    .option(
      '--audit-log <file>',
      'audit log (default $PGWARDEN_AUDIT_LOG or ~/.local/state/pgwarden/audit.jsonl)',
    )
    .option('--allow-superuser', "also act on superusers' sessions")
    .option('--protect-app <name>', 'never touch this application_name (repeatable)', collect)
    .action(async (flags) => {
      process.exitCode = await runTop(flags, io);
    });
  program
    .command('indexes')
    .description('propose (and create) the indexes slow statements and scan-heavy tables are missing')
    .option('--url <url>', 'PostgreSQL URL (default $DATABASE_URL)')
    .option('--slow-mean <ms>', 'analyze statements slower than this on average', '1000')
    .option('--min-rows <n>', 'skip tables with fewer rows (0 includes every table)', '10000')
    .option('--json', 'print one JSON object')
    .option('--execute [name]', 'create one proposed index: the one named, or the first')
    .option('--lock-timeout <duration>', 'lock_timeout for CREATE INDEX CONCURRENTLY', '5s')
    .option('--statement-timeout <ms>', "statement_timeout of pgwarden's own reads", '5000')
    .option('--verbose', 'stacks on errors')
    .action(async (flags) => {
      process.exitCode = await runIndexes(flags, io);
    });
  program
    .command('watch')
    .description('the agent: watch, alert, escalate, remediate (per --mode) and serve the API and metrics')
    .option('--config <file>', 'pgwarden.yaml')
    .option('--url <url>', 'PostgreSQL URL to watch (default $DATABASE_URL), without a config file')
    .option('--port <port>', 'HTTP port of the API and metrics (default 9187)')
    .option('--host <host>', 'HTTP address (default 127.0.0.1)')
    .option('--mode <mode>', 'observe (default), suggest or auto')
    .option(
      '--webhook <url>',
      'send incidents to this webhook, signed with $PGWARDEN_WEBHOOK_SECRET (repeatable)',
      collect,
    )
    .option('--token <token>', 'bearer token required by the API actions (default $PGWARDEN_TOKEN)')
    .option('--environment <name>', 'environment label of the metrics')
    .option('--store <file>', 'SQLite file of incidents, timelines and the audit log (default pgwarden.db)')
    .option('--interval <duration>', 'time between observations (default 1s)')
    .action(async (flags) => {
      process.exitCode = await runWatch(flags, io);
    });
  program
    .command('demo')
    .description(
      'the live incident demo: embedded PostgreSQL, a service under load, the agent in auto mode; inject faults',
    )
    .option(
      '--scenario <name>',
      'leak, long-query, lock-chain, idle-in-transaction, spike, restart or all (into the running demo, or a new one)',
    )
    .option('--json', 'print the scenario results as JSON (narration on stderr)')
    .option('--port <port>', 'dashboard port (default: a free port)')
    .option('--no-keys', 'do not read keys from the terminal')
    .action(async (flags) => {
      process.exitCode = await runDemo(flags, io);
    });
  program
    .command('report <incident>')
    .description("print an incident's post-incident report from the agent's store")
    .option('--store <file>', 'the agent store (default pgwarden.db)')
    .option('--format <format>', 'markdown, html or json', 'markdown')
    .action((incident: string, flags) => {
      process.exitCode = runReport(incident, flags, io);
    });
  /** The capacity options `plan` and `pgbouncer-config` share. */
  const capacityOptions = (command: Command) =>
    command
      .option('--replicas <n>', 'instances of the app, each with its own pool')
      .option('--pool-max <n>', "each pool's max (steady connections)")
      .option('--overflow <n>', "each pool's overflow (burst connections beyond max)")
      .option('--pool-min <n>', "each pool's min (connections kept open)")
      .option('--other <n>', 'connections of other apps, jobs and admins (default with --url: sessions now)')
      .option('--max-connections <n>', "the server's max_connections (default with --url: the server's)")
      .option('--superuser-reserved <n>', "superuser_reserved_connections (default 3, or the server's)")
      .option('--reserved <n>', "reserved_connections, PostgreSQL 16+ (default 0, or the server's)")
      .option('--mean-ms <ms>', 'mean time a statement (or transaction) holds a connection')
      .option('--rate <n>', 'statements (or transactions) per second across the fleet')
      .option('--cores <n>', "the database server's CPU cores (HikariCP's cores × 2 + spindles)")
      .option('--spindles <n>', "the database server's effective spindles (default 1)")
      .option('--margin <factor>', 'over the measured concurrency: 1.5 or 50%', '1.5')
      .option('--pools <n>', '(database, user) pairs PgBouncer would pool (default 1)')
      .option('--pgbouncer-instances <n>', 'PgBouncer instances (default 1; 2 with --runbook)')
      .option('--url <url>', 'read max_connections, sessions and pg_stat_statements from this server')
      .option('--app <name>', "the app's application_name: its sessions are not other consumers")
      .option('--sample <duration>', 'measure the load over this long instead of since the last reset')
      .option('--runbook', "use the runbook's Step 2: pools 50 + 20 (min 5), max_connections 200")
      .option('--json', 'print one JSON object')
      .option('--verbose', 'stacks on errors');
  capacityOptions(
    program
      .command('plan')
      .description('check pool sizes against max_connections before raising them; size pools and PgBouncer'),
  ).action(async (flags) => {
    process.exitCode = await runPlan(flags, io);
  });
  capacityOptions(
    program
      .command('pgbouncer-config')
      .description('write pgbouncer.ini and a userlist.txt template sized from the capacity plan'),
  )
    .option('--out <dir>', 'directory to write into', './pgbouncer')
    .option('--force', 'overwrite pgbouncer.ini and userlist.txt there')
    .option('--listen <addr:port>', 'where PgBouncer listens', '127.0.0.1:6432')
    .option('--auth-file <path>', 'auth_file as PgBouncer will find it (default: the userlist written)')
    .option('--admin-user <name>', 'admin_users of the console', 'pgbouncer_admin')
    .option('--stats-user <name>', 'stats_users of the console (for pgwarden doctor --pgbouncer)', 'pgwarden')
    .option('--offline', 'do not connect: take only host, port, database and user from --url')
    .action(async (flags) => {
      process.exitCode = await runPgBouncerConfig(flags, io);
    });
  program
    .command('rules')
    .description('print the Prometheus recording and alerting rules for pgwarden metrics')
    .option('--out <file>', 'write to this file instead of stdout')
    .option('--runbook-url <url>', 'runbook_url of the alerts (an anchor per alert is appended)')
    .action(async (flags) => {
      process.exitCode = await runRules(flags, io);
    });
  program
    .command('grafana')
    .description('print the Grafana System Health Dashboard (JSON) for pgwarden metrics')
    .option('--out <file>', 'write to this file instead of stdout')
    .action(async (flags) => {
      process.exitCode = await runGrafana(flags, io);
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
