/**
 * `pgwarden top`'s screen as a pure function: a snapshot, the view state, the cursor and the
 * terminal's size in, plain lines out (no colour; the caller highlights the cursor's line, which
 * starts with CURSOR_MARK). Every database string passes through `terminalSafe`, and every line is
 * cut to the width.
 */
import { formatAge } from '../diagnose/actions.js';
import { oneLine, padEnd, padStart, terminalSafe, truncate } from '../render/text.js';
import type { Session, Snapshot } from '../snapshot.js';

export type TopMode = 'all' | 'blocked' | 'blocking';

export interface TopView {
  mode: TopMode;
  /** Substring of application, user or query (case-insensitive); '' shows every session. */
  filter: string;
  /** The filter is being typed (after `/`). */
  editingFilter?: boolean;
  /** A question waiting for y/N, or the outcome of the last action. */
  prompt?: string;
  status?: string;
  /** The last refresh failed (the connection was lost): shown in the header while retrying. */
  error?: string;
  /** Refresh interval, for the header. */
  intervalLabel?: string;
}

export interface TopRow {
  session: Session;
  age: number | null;
  /** Blocked view: who blocks it; blocking view: how many wait on it. */
  extra: string;
}

export const CURSOR_MARK = '>';

/** Age from the column that matters: the query's when active, the transaction's in one, else the state's. */
export function sessionAge(s: Session): number | null {
  if (s.state === 'active') return s.queryAgeSeconds ?? s.stateAgeSeconds;
  if (s.state === 'idle in transaction' || s.state === 'idle in transaction (aborted)')
    return s.xactAgeSeconds ?? s.stateAgeSeconds;
  return s.stateAgeSeconds;
}

function matches(s: Session, filter: string): boolean {
  if (filter === '') return true;
  const f = filter.toLowerCase();
  return [s.application, s.user ?? '', s.query ?? ''].some((t) => t.toLowerCase().includes(f));
}

/** The rows the view shows, oldest first. */
export function topRows(snapshot: Snapshot | null, view: TopView): TopRow[] {
  if (!snapshot) return [];
  const byPid = new Map(snapshot.sessions.map((s) => [s.pid, s]));
  let rows: TopRow[];
  if (view.mode === 'blocked') {
    rows = snapshot.sessions
      .filter((s) => s.blockedBy.length > 0)
      .map((s) => ({ session: s, age: sessionAge(s), extra: s.blockedBy.join(',') }));
  } else if (view.mode === 'blocking') {
    rows = [];
    for (const chain of snapshot.locks) {
      const s = byPid.get(chain.rootPid);
      if (s) rows.push({ session: s, age: sessionAge(s), extra: String(chain.blockedPids.length) });
    }
  } else {
    rows = snapshot.sessions.map((s) => ({ session: s, age: sessionAge(s), extra: '' }));
  }
  return rows
    .filter((r) => matches(r.session, view.filter))
    .sort((a, b) => (b.age ?? -1) - (a.age ?? -1) || a.session.pid - b.session.pid);
}

const SHORT_STATE: Record<string, string> = {
  'idle in transaction': 'idle in xact',
  'idle in transaction (aborted)': 'xact aborted',
  'fastpath function call': 'fastpath',
};

const safe = (text: string | null | undefined) => terminalSafe(oneLine(text ?? ''));

function bar(fraction: number, size: number): string {
  const filled = Math.max(0, Math.min(size, Math.round(Math.min(1, fraction) * size)));
  return `[${'#'.repeat(filled)}${'.'.repeat(size - filled)}]`;
}

function header(snapshot: Snapshot | null, view: TopView, width: number): string[] {
  const lines: string[] = [];
  const refreshed = snapshot ? `${snapshot.at.slice(11, 19)} UTC` : 'never';
  const every = view.intervalLabel ? ` every ${view.intervalLabel}` : '';
  const server = snapshot
    ? `PostgreSQL ${safe(snapshot.server.version)} · ${safe(snapshot.server.database)}`
    : 'connecting…';
  lines.push(`pgwarden top · ${server} · refreshed ${refreshed}${every}`);
  if (view.error) lines.push(`! ${terminalSafe(oneLine(view.error))} (retrying)`);
  if (snapshot) {
    const c = snapshot.connections;
    const label = `${c.total}/${c.usable} usable ${Math.round(c.usage * 100)}%`;
    const room = Math.max(10, Math.min(50, width - label.length - 15));
    lines.push(`connections ${bar(c.usage, room)} ${label}`);
    const states = Object.entries(c.byState)
      .sort((a, b) => b[1] - a[1])
      .map(([state, n]) => `${safe(state)} ${n}`)
      .join(' · ');
    lines.push(`client backends: ${states || 'none'}`);
  }
  const tab = (mode: TopMode, key: string, name: string) =>
    view.mode === mode ? `[${key} ${name}]` : ` ${key} ${name} `;
  const filter = view.editingFilter
    ? `filter: /${terminalSafe(view.filter)}_`
    : view.filter
      ? `filter: ${terminalSafe(view.filter)} (Esc clears)`
      : '/ filter';
  lines.push(
    `${tab('all', 'a', 'all')}${tab('blocked', 'b', 'blocked')}${tab('blocking', 'B', 'blocking')}  ${filter}  ↑↓ select · k cancel · K terminate · q quit`,
  );
  lines.push(view.prompt ? terminalSafe(view.prompt) : view.status ? terminalSafe(view.status) : '');
  return lines;
}

/** The screen: at most `height` lines of at most `width` code points. */
export function renderTop(
  snapshot: Snapshot | null,
  view: TopView,
  cursor: number,
  width: number,
  height: number,
): string[] {
  const w = Math.max(1, width);
  const lines = header(snapshot, view, w);
  const extraHeader = view.mode === 'blocked' ? 'blocked by' : view.mode === 'blocking' ? 'waiting' : '';
  const cols = (
    mark: string,
    pid: string,
    user: string,
    app: string,
    state: string,
    wait: string,
    age: string,
    extra: string,
    query: string,
  ) =>
    `${mark}${padStart(pid, 7)} ${padEnd(user, 10)} ${padEnd(app, 16)} ${padEnd(state, 12)} ${padEnd(wait, 18)} ${padStart(age, 6)} ${extraHeader ? `${padEnd(extra, 10)} ` : ''}${query}`;
  lines.push(cols(' ', 'pid', 'user', 'application', 'state', 'wait', 'age', extraHeader, 'query'));
  const rows = topRows(snapshot, view);
  const room = Math.max(0, height - lines.length);
  if (rows.length === 0) {
    if (room > 0 && snapshot) lines.push(view.filter ? '  no session matches the filter' : '  no session');
  } else if (room > 0) {
    const sel = Math.max(0, Math.min(cursor, rows.length - 1));
    const start = sel >= room ? sel - room + 1 : 0;
    for (const [i, row] of rows.slice(start, start + room).entries()) {
      const s = row.session;
      const wait = s.waitEventType ? `${s.waitEventType}:${s.waitEvent ?? ''}` : '';
      lines.push(
        cols(
          start + i === sel ? CURSOR_MARK : ' ',
          String(s.pid),
          safe(s.user ?? '?'),
          safe(s.application) || '–',
          SHORT_STATE[s.state] ?? s.state,
          safe(wait),
          formatAge(row.age),
          row.extra,
          s.query === null ? '<not visible>' : safe(s.query),
        ),
      );
    }
  }
  return lines.slice(0, Math.max(0, height)).map((l) => truncate(l, w).replace(/ +$/, ''));
}
