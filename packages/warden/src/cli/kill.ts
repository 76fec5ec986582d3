/**
 * `pgwarden kill`: the runbook's "Kill Long-Running Queries", made safe. Dry run by default: it
 * prints the plan (who, why, what) and what it refuses and why; `--execute` carries it out with the
 * ladder (cancel, grace period, terminate if still guilty) and writes the audit log.
 */
import { FileAuditLog, defaultAuditPath } from '../remedy/audit.js';
import { type ActionOutcome, describeOutcome, executePlan } from '../remedy/executor.js';
import {
  DEFAULT_POLICY,
  type RemedyPlan,
  type RemedyPolicy,
  type RemedyRequest,
  planRemedies,
} from '../remedy/planner.js';
import { ProbeError, classifyConnectError, isProbeError, redact } from '../probe/errors.js';
import { PostgresProbe } from '../probe/postgres.js';
import {
  type Column,
  INDENT,
  type Line,
  STYLE,
  fitLine,
  note,
  paint,
  rule,
  seg,
  table,
} from '../render/layout.js';
import { oneLine, terminalSafe } from '../render/text.js';
import { isPgBouncerProbeError } from '../probe/pgbouncer.js';
import { formatAge } from '../diagnose/actions.js';
import type { PgBouncerInfo, Snapshot } from '../snapshot.js';
import { UsageError, parseDurationSeconds, parseFraction } from './durations.js';
import type { Io } from './doctor.js';

export interface KillFlags {
  url?: string;
  olderThan?: string;
  state?: string;
  user?: string;
  app?: string;
  pid?: string[];
  rootBlockers?: boolean;
  execute?: boolean;
  grace?: string;
  maxSessions?: string;
  maxShare?: string;
  maxPerHour?: string;
  protectUser?: string[];
  protectApp?: string[];
  allowSuperuser?: boolean;
  auditLog?: string;
  pgbouncer?: string;
  json?: boolean;
  color?: boolean;
}

function positiveInt(flag: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} takes a whole number, got "${raw}"`);
  return n;
}

export function killRequest(flags: KillFlags): RemedyRequest {
  const request: RemedyRequest = {
    olderThanSeconds: parseDurationSeconds('--older-than', flags.olderThan ?? '10m'),
  };
  if (flags.state !== undefined) {
    if (flags.state !== 'active' && flags.state !== 'idle-in-transaction') {
      throw new UsageError(`--state takes active or idle-in-transaction, got "${flags.state}"`);
    }
    request.state = flags.state;
  }
  if (flags.user !== undefined) request.user = flags.user;
  if (flags.app !== undefined) request.application = flags.app;
  if (flags.pid && flags.pid.length > 0) request.pids = flags.pid.map((p) => positiveInt('--pid', p, 0));
  if (flags.rootBlockers) request.rootBlockers = true;
  return request;
}

export function killPolicy(flags: KillFlags): RemedyPolicy {
  return {
    protectedUsers: flags.protectUser ?? [],
    protectedApplications: flags.protectApp ?? [],
    allowSuperusers: flags.allowSuperuser === true,
    maxSessionsPerRun: positiveInt('--max-sessions', flags.maxSessions, DEFAULT_POLICY.maxSessionsPerRun),
    maxShareOfClients: flags.maxShare
      ? parseFraction('--max-share', flags.maxShare)
      : DEFAULT_POLICY.maxShareOfClients,
    maxActionsPerHour: positiveInt('--max-per-hour', flags.maxPerHour, DEFAULT_POLICY.maxActionsPerHour),
    graceMillis: flags.grace
      ? parseDurationSeconds('--grace', flags.grace) * 1000
      : DEFAULT_POLICY.graceMillis,
  };
}

/** "serves PgBouncer pool db/user" for backends behind PgBouncer. */
function bouncerMap(info: PgBouncerInfo | undefined): Map<number, string> {
  const map = new Map<number, string>();
  for (const s of info?.servers ?? []) map.set(s.remotePid, `${s.database}/${s.user}`);
  return map;
}

const COLUMNS: Column[] = [
  { header: 'pid', align: 'right' },
  { header: 'user', min: 6 },
  { header: 'application', min: 8 },
  { header: 'state', min: 8 },
  { header: 'age', align: 'right' },
  { header: 'action', min: 6 },
  { header: 'reason', min: 10 },
  { header: 'query', min: 8 },
];

function planLines(
  plan: RemedyPlan,
  snapshot: Snapshot,
  executing: boolean,
  width: number,
  pools: Map<number, string>,
): Line[] {
  const lines: Line[] = [];
  lines.push(rule(executing ? 'Executing' : 'Plan (dry run: nothing is done without --execute)', width));
  if (plan.actions.length === 0) lines.push(...note('No session matches.', INDENT));
  else {
    const rows = plan.actions.map((a) => [
      seg(String(a.pid)),
      seg(a.user ?? '?'),
      seg(a.application || '–'),
      seg(a.state),
      seg(formatAge(a.ageSeconds)),
      seg('cancel→terminate'),
      seg(pools.has(a.pid) ? `${a.reason}; serves PgBouncer ${pools.get(a.pid)}` : a.reason),
      seg(oneLine(a.query ?? '')),
    ]);
    lines.push(...table(COLUMNS, rows, width, INDENT));
  }
  if (plan.refusals.length > 0) {
    lines.push([], rule('Refused', width));
    const refusalColumns: Column[] = [
      { header: 'pid', align: 'right' },
      { header: 'user' },
      { header: 'application' },
      { header: 'why', min: 20 },
    ];
    lines.push(
      ...table(
        refusalColumns,
        plan.refusals.map((r) => [
          seg(String(r.pid)),
          seg(r.user ?? '?'),
          seg(r.application || '–'),
          seg(r.reason),
        ]),
        width,
        INDENT,
      ),
    );
  }
  lines.push(
    ...note(
      `${snapshot.connections.total} client backends; this run may act on at most ${plan.limit} (limits: sessions per run, share of clients, actions per hour).`,
      INDENT,
    ),
  );
  return lines;
}

function describe(o: ActionOutcome): string {
  return terminalSafe(describeOutcome(o));
}

export async function runKill(flags: KillFlags, io: Io): Promise<number> {
  const url = flags.url ?? io.env.DATABASE_URL;
  let request: RemedyRequest;
  let policy: RemedyPolicy;
  try {
    if (!url) throw new UsageError('no database given: pass --url postgres://… or set DATABASE_URL');
    request = killRequest(flags);
    policy = killPolicy(flags);
  } catch (err) {
    io.err(`pgwarden kill: ${(err as Error).message}\n`);
    return 3;
  }
  const audit = new FileAuditLog(flags.auditLog ?? defaultAuditPath(io.env));
  const probe = new PostgresProbe(url);
  try {
    let snapshot = await probe.snapshot();
    if (flags.pgbouncer) {
      const { probePgBouncer } = await import('../probe/pgbouncer.js');
      snapshot = { ...snapshot, pgbouncer: await probePgBouncer(flags.pgbouncer) };
    }
    request.actionsInLastHour = audit.actionsSince(Date.now() - 3_600_000);
    const plan = planRemedies(snapshot, request, policy);
    const width = Math.min(io.columns ?? 80, 160);
    const color = flags.color ?? (io.isTTY && !io.env.NO_COLOR);
    const pools = bouncerMap(snapshot.pgbouncer);
    if (!flags.execute) {
      if (flags.json)
        io.out(
          `${JSON.stringify({ dryRun: true, ...plan, pgbouncer: Object.fromEntries(pools) }, null, 2)}\n`,
        );
      else
        io.out(
          `${planLines(plan, snapshot, false, width, pools)
            .map((l) => paint(fitLine(l, width), color))
            .join('\n')}\n`,
        );
      return plan.actions.length > 0 ? 1 : 0;
    }
    if (!flags.json)
      io.out(
        `${planLines(plan, snapshot, true, width, pools)
          .map((l) => paint(fitLine(l, width), color))
          .join('\n')}\n`,
      );
    const report = await executePlan((text, values) => probe.execute(text, values), plan, {
      policy,
      audit,
      serverMajor: probe.serverMajor,
      database: snapshot.server.database,
      onStep: (outcome, step) => {
        if (!flags.json) io.out(`  ${step === 'cancel' ? '·' : '▸'} ${describe(outcome)}\n`);
      },
    });
    if (flags.json)
      io.out(`${JSON.stringify({ dryRun: false, ...report, refusals: plan.refusals }, null, 2)}\n`);
    else {
      const line: Line = [seg(`audit log: ${audit.file}`, STYLE.dim)];
      io.out(`${paint(fitLine(line, width), color)}\n`);
    }
    return report.outcomes.some((o) => o.cancel === 'failed' || o.terminate === 'failed') ? 2 : 0;
  } catch (err) {
    const error = isProbeError(err)
      ? err
      : isPgBouncerProbeError(err)
        ? new ProbeError('unreachable', `PgBouncer: ${err.message}`)
        : classifyConnectError(err, url);
    io.err(`pgwarden kill: ${terminalSafe(redact(error.message, url))}\n`);
    if (error instanceof ProbeError && error.hint) io.err(`${error.hint}\n`);
    return 3;
  } finally {
    await probe.close();
  }
}
