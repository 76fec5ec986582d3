/**
 * Carries out a remedy plan, one session per statement (a permission error on one must not abort
 * the rest). Every statement names the session by (pid, backend_start) AND re-checks its guilt and
 * the safety rules in the same WHERE clause, so a reused pid, a session that committed in the
 * meantime, or a protected session matches nothing. Every values is a bound parameter.
 */
import type { AuditEntry, AuditSink } from './audit.js';
import { fingerprint } from './audit.js';
import type { PlannedAction, RemedyPlan, RemedyPolicy } from './planner.js';

/** Runs one statement (the probe's own connection, so it works when the server is full). */
export type Execute = (text: string, values: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>;

export type StepResult = 'ok' | 'gone' | 'no_longer_guilty' | 'failed' | 'skipped';

export interface ActionOutcome {
  action: PlannedAction;
  cancel: StepResult;
  terminate: StepResult;
  error?: string;
}

export interface ExecutionReport {
  outcomes: ActionOutcome[];
  refused: number;
}

export interface ExecuteOptions {
  policy: RemedyPolicy;
  audit: AuditSink;
  /** Server major version: 14+ waits for a terminated backend to exit. */
  serverMajor: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => Date;
  database?: string;
  /** Only the first rung: cancel, never terminate (`pgwarden top`'s `k`). */
  cancelOnly?: boolean;
  /** Called after each step (progress output). */
  onStep?: (outcome: ActionOutcome, step: 'cancel' | 'terminate') => void;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The WHERE clause shared by cancel and terminate: identity, safety rules and guilt. */
function statement(
  fn: 'pg_cancel_backend' | 'pg_terminate_backend',
  action: PlannedAction,
  policy: RemedyPolicy,
  major: number,
) {
  const values: unknown[] = [
    action.pid,
    action.backendStart,
    policy.allowSuperusers,
    policy.protectedUsers,
    policy.protectedApplications,
  ];
  let guilt = 'TRUE';
  if (action.rule === 'long_running') {
    values.push(action.guilt.queryStart);
    guilt = `state = 'active' AND query_start = $${values.length}::timestamptz`;
  } else if (action.rule === 'idle_in_transaction') {
    values.push(action.guilt.xactStart);
    guilt = `state IN ('idle in transaction', 'idle in transaction (aborted)') AND xact_start = $${values.length}::timestamptz`;
  } else if (action.rule === 'root_blocker') {
    values.push(action.guilt.xactStart);
    guilt = `xact_start IS NOT DISTINCT FROM $${values.length}::timestamptz
     AND EXISTS (SELECT 1 FROM pg_stat_activity w WHERE w.wait_event_type = 'Lock' AND a.pid = ANY (pg_blocking_pids(w.pid)))`;
  }
  const call = fn === 'pg_terminate_backend' && major >= 14 ? `${fn}(a.pid, 5000)` : `${fn}(a.pid)`;
  const text = `SELECT ${call} AS signalled
  FROM pg_stat_activity a
 WHERE a.pid = $1 AND a.backend_start = $2::timestamptz
   AND a.backend_type = 'client backend'
   AND a.pid <> pg_backend_pid()
   AND a.application_name <> 'pgwarden'
   AND ($3::boolean OR NOT coalesce((SELECT rolsuper FROM pg_roles r WHERE r.oid = a.usesysid), false))
   AND NOT (coalesce(a.usename, '') = ANY ($4::text[]))
   AND NOT (a.application_name = ANY ($5::text[]))
   AND ${guilt}`;
  return { text, values };
}

async function step(
  execute: Execute,
  fn: 'pg_cancel_backend' | 'pg_terminate_backend',
  action: PlannedAction,
  options: ExecuteOptions,
): Promise<{ result: StepResult; error?: string }> {
  const { text, values } = statement(fn, action, options.policy, options.serverMajor);
  try {
    const res = await execute(text, values);
    if (res.rows.length > 0) return { result: res.rows[0]?.signalled === false ? 'failed' : 'ok' };
    const still = await execute(
      'SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2::timestamptz',
      [action.pid, action.backendStart],
    );
    return { result: still.rows.length > 0 ? 'no_longer_guilty' : 'gone' };
  } catch (err) {
    return { result: 'failed', error: (err as Error).message };
  }
}

function entry(
  action: Pick<PlannedAction, 'pid' | 'backendStart' | 'user' | 'application' | 'rule'> & {
    query?: string | null;
  },
  event: AuditEntry['event'],
  result: AuditEntry['result'],
  reason: string,
  options: ExecuteOptions,
  error?: string,
): AuditEntry {
  const out: AuditEntry = {
    at: (options.now?.() ?? new Date()).toISOString(),
    event,
    pid: action.pid,
    backendStart: action.backendStart,
    user: action.user,
    application: action.application,
    queryFingerprint: fingerprint(action.query ?? null),
    rule: action.rule,
    reason,
    result,
    dryRun: false,
  };
  if (error !== undefined) out.error = error;
  if (options.database !== undefined) out.database = options.database;
  return out;
}

const toAudit = (r: StepResult): AuditEntry['result'] => (r === 'skipped' ? 'refused' : r);

function idleInTransaction(action: PlannedAction): boolean {
  return action.state === 'idle in transaction' || action.state === 'idle in transaction (aborted)';
}

/** One line per outcome: "pid 123: cancel ok, terminate ok", or "pid 123: terminate ok" (idle). */
export function describeOutcome(o: ActionOutcome): string {
  const parts =
    o.cancel === 'skipped' && o.terminate !== 'skipped'
      ? [`pid ${o.action.pid}: terminate ${o.terminate}`]
      : [
          `pid ${o.action.pid}: cancel ${o.cancel}`,
          ...(o.terminate === 'skipped' ? [] : [`terminate ${o.terminate}`]),
        ];
  if (o.error) parts.push(`(${o.error})`);
  return parts.join(', ');
}

/**
 * The ladder: cancel every planned session, wait the grace period, then terminate those that are
 * still the same session and still guilty; sessions idle in transaction are terminated first, at
 * once (a cancel cannot end them). Refusals are written to the audit log too.
 */
export async function executePlan(
  execute: Execute,
  plan: RemedyPlan,
  options: ExecuteOptions,
): Promise<ExecutionReport> {
  for (const refusal of plan.refusals) {
    options.audit.write(
      entry(
        { ...refusal, rule: refusal.rule as PlannedAction['rule'] },
        'refuse',
        'refused',
        refusal.reason,
        options,
      ),
    );
  }
  const outcomes: ActionOutcome[] = plan.actions.map((action) => ({
    action,
    cancel: 'skipped',
    terminate: 'skipped',
  }));
  // A session idle in a transaction runs no statement: PostgreSQL ignores a cancel there, so the
  // ladder's first rung cannot end it and the grace period would only keep its locks and its
  // connection longer. It is terminated at once (the same identity and guilt checks apply).
  const direct = options.cancelOnly ? [] : outcomes.filter((o) => idleInTransaction(o.action));
  for (const outcome of direct) {
    const { result, error } = await step(execute, 'pg_terminate_backend', outcome.action, options);
    outcome.terminate = result;
    if (error) outcome.error = error;
    const reason = `${outcome.action.reason}; terminated without a cancel, which cannot end an idle transaction`;
    options.audit.write(entry(outcome.action, 'terminate', toAudit(result), reason, options, error));
    options.onStep?.(outcome, 'terminate');
  }
  for (const outcome of outcomes) {
    if (direct.includes(outcome)) continue;
    const { result, error } = await step(execute, 'pg_cancel_backend', outcome.action, options);
    outcome.cancel = result;
    if (error) outcome.error = error;
    options.audit.write(
      entry(outcome.action, 'cancel', toAudit(result), outcome.action.reason, options, error),
    );
    options.onStep?.(outcome, 'cancel');
  }
  const pending = options.cancelOnly ? [] : outcomes.filter((o) => o.cancel === 'ok');
  if (pending.length > 0) await (options.sleep ?? defaultSleep)(options.policy.graceMillis);
  for (const outcome of pending) {
    const { result, error } = await step(execute, 'pg_terminate_backend', outcome.action, options);
    outcome.terminate = result;
    if (error) outcome.error = error;
    const reason =
      result === 'no_longer_guilty'
        ? 'the cancel was enough: no longer guilty after the grace period'
        : `still ${outcome.action.reason} after the ${options.policy.graceMillis} ms grace period`;
    options.audit.write(entry(outcome.action, 'terminate', toAudit(result), reason, options, error));
    options.onStep?.(outcome, 'terminate');
  }
  return { outcomes, refused: plan.refusals.length };
}
