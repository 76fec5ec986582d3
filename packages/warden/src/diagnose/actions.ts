/**
 * The exact statements a person runs to act on a finding. Every session action names the session
 * by (pid, backend_start) in the statement itself, because pids are reused: a stale pid matches
 * nothing instead of killing a stranger. pids and timestamps come from the server and are written
 * as literals only after being checked for shape.
 */
import type { Action } from '../finding.js';
import type { Session } from '../snapshot.js';

const ISO_MICROS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

function identity(session: Pick<Session, 'pid' | 'backendStart'>): string {
  if (!Number.isInteger(session.pid) || !ISO_MICROS.test(session.backendStart)) {
    throw new Error(
      `refusing to write an action for a session without a valid identity (pid ${session.pid})`,
    );
  }
  return `pid = ${session.pid} AND backend_start = '${session.backendStart}'::timestamptz`;
}

export function cancelAction(session: Pick<Session, 'pid' | 'backendStart'>): Action {
  return {
    kind: 'cancel',
    target: `pid ${session.pid}`,
    text: `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE ${identity(session)};`,
    risk: 'low',
  };
}

export function terminateAction(session: Pick<Session, 'pid' | 'backendStart'>): Action {
  return {
    kind: 'terminate',
    target: `pid ${session.pid}`,
    text: `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE ${identity(session)};`,
    risk: 'medium',
  };
}

export function sqlAction(target: string, text: string, risk: Action['risk'] = 'none'): Action {
  return { kind: 'sql', target, text, risk };
}

export function commandAction(target: string, text: string, risk: Action['risk'] = 'none'): Action {
  return { kind: 'command', target, text, risk };
}

/** A setting change that takes effect on reload. */
export function setAndReload(setting: string, value: string): Action {
  return sqlAction(setting, `ALTER SYSTEM SET ${setting} = '${value}';\nSELECT pg_reload_conf();`, 'low');
}

/** Age in a short human form: 42s, 7m05s, 2h10m. */
export function formatAge(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600)
    return s % 60 === 0 ? `${s / 60}m` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
