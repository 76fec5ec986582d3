/**
 * The post-incident report: what happened, to whom, why, how it ended and what to do next, under
 * the usual postmortem headings (summary, impact, timeline, snapshots, root cause, trigger,
 * detection, resolution, action items, lessons learned).
 *
 * `buildReport` turns an incident, its timeline, the snapshots taken at open and at peak, the
 * notification attempts, the audit log's remedy actions and the application pools' code sites into
 * plain data (`IncidentReport`, JSON-safe: no undefined, no functions, times as ISO strings). Its
 * prose is plain text; the renderers escape it for their format. Three renderers: markdown (for an
 * issue or a channel), a standalone HTML page (inline CSS, no scripts, no external assets) and JSON.
 *
 * Everything that came from the server or from the incident (application names, users, finding
 * titles that quote them, timeline texts, notifier errors, people's names) is attacker-controlled:
 * an application_name of `<img src=x onerror=…>` must render as text in every format. The report
 * never carries query texts (they may hold patient data), only counts, names and titles.
 */
import type { PoolInspection } from '@pgwarden/pool';
import { type Diagnosis, type Status, diagnose } from '../diagnose/index.js';
import type { Action, Finding } from '../finding.js';
import { RUNBOOK_STEP2 } from '../plan/index.js';
import type { AuditEntry } from '../remedy/audit.js';
import type { Snapshot } from '../snapshot.js';
import {
  codeBlock,
  formatAge,
  formatMillis,
  formatTimestamp,
  markdownCell,
  markdownParagraph,
  markdownText,
  percent,
  terminalSafe,
} from '../render/text.js';
import type { Incident, TimelineEntry } from './types.js';

// ---- input ----

/** One delivery attempt of a notification. */
export interface ReportNotification {
  notifier: string;
  event: string;
  level: number;
  at: number;
  ok: boolean;
  error?: string;
  /** The store's NotificationRecord calls the answer or the error `detail`: used when `error` is absent. */
  detail?: string | null;
  /** 1 for the first try, 2 for the first retry, … */
  attempt?: number;
}

/** A connection checked out of an application's pool, matched to its backend by pid. */
export interface AppHolder {
  pid: number;
  /** Where the code took the connection: "src/handlers/report.ts:34". */
  site: string;
  heldMillis: number;
  /** The pool's name (usually the application's). */
  pool: string;
}

/** An audit entry, optionally saying who acted (default: inferred, see `actorOf`). */
export type ReportAction = AuditEntry & { by?: string };

export interface ReportInput {
  incident: Incident;
  /**
   * The incident's timeline. Entries of another incident are ignored. An "opened" entry's data may
   * carry `conditionSince` / `firingSince` / `since` (epoch ms or ISO): when the rule first saw the
   * condition. When `actions` are given, "action" entries whose data has a `pid` are left out (the
   * audit entries describe them in detail); when `notifications` are given, "notification" entries are.
   */
  timeline: TimelineEntry[];
  openSnapshot?: Snapshot;
  /** The fullest snapshot; defaults to the one at open. */
  peakSnapshot?: Snapshot;
  /** Every delivery attempt (failures included). */
  notifications?: ReportNotification[];
  /** The audit log's entries for the incident's database and window. */
  actions?: ReportAction[];
  /** Checked-out connections of the application pools (see `appHoldersFrom`). */
  appHolders?: AppHolder[];
}

// ---- output ----

export type ReportEventKind =
  | 'condition'
  | 'opened'
  | 'updated'
  | 'escalated'
  | 'acknowledged'
  | 'action'
  | 'refusal'
  | 'notification'
  | 'cleared'
  | 'resolved'
  | 'note';

export interface ReportEvent {
  /** ISO time, UTC. */
  at: string;
  /** Milliseconds since the incident opened (negative before). */
  offsetMs: number;
  /** "+04:10", "-29:55". */
  offset: string;
  kind: ReportEventKind;
  /** Who: an escalation level's name, a person, "agent", a notifier; null when nobody in particular. */
  actor: string | null;
  text: string;
  /** A failed notification or action. */
  failed: boolean;
}

export interface ReportFinding {
  id: string;
  severity: string;
  title: string;
  summary: string;
}

export interface SnapshotView {
  at: string;
  status: Status;
  headline: string;
  total: number;
  usable: number;
  usage: number;
  maxConnections: number;
  byState: { state: string; count: number }[];
  topConsumers: {
    database: string | null;
    user: string | null;
    application: string;
    clientAddr: string | null;
    state: string;
    count: number;
  }[];
  /** The findings that matter (warning and critical first), most likely cause first. */
  findings: ReportFinding[];
  lockWaiters: number;
  /** Clients queueing in PgBouncer; null without PgBouncer. */
  pgbouncerWaiting: number | null;
}

export interface CodeSite {
  pool: string;
  site: string;
  connections: number;
  pids: number[];
  /** The longest a connection from this site had been held. */
  heldMillis: number;
  /** "vitals-api: src/handlers/report.ts:34 held 12 connections for 4m". */
  text: string;
}

export interface ReportActionRecord {
  at: string;
  by: string;
  event: AuditEntry['event'];
  pid: number;
  user: string | null;
  application: string;
  rule: string;
  reason: string;
  result: AuditEntry['result'];
  dryRun: boolean;
  error: string | null;
}

export interface ActionItem {
  source: 'finding' | 'code' | 'capacity' | 'runbook';
  title: string;
  /** Why it applies to this incident. */
  why: string;
  /** What to run, when there is something to run. */
  command: string | null;
  language: 'sql' | 'sh' | null;
}

export interface Fact {
  label: string;
  value: string;
}

export interface IncidentReport {
  format: 'pgwarden.incident-report';
  version: 1;
  incident: {
    id: string;
    ruleId: string;
    database: string;
    severity: string;
    state: string;
    title: string;
    openedAt: string;
    acknowledgedAt: string | null;
    acknowledgedBy: string | null;
    resolvedAt: string | null;
    resolvedBy: string | null;
    escalationLevel: number;
  };
  summary: string;
  impact: {
    start: string;
    /** When it was resolved; null while it is not. */
    end: string | null;
    /** resolved − opened; while open, up to the last thing recorded. */
    durationMs: number;
    ongoing: boolean;
    peak: { at: string; total: number; usable: number; usage: number } | null;
    /** Distinct sessions the findings and the actions named. */
    sessionsInvolved: number;
    applications: { name: string; sessions: number }[];
    waitingClients: { pgbouncer: number | null; lockWaiters: number | null };
    facts: Fact[];
  };
  timeline: ReportEvent[];
  snapshots: { open: SnapshotView | null; peak: SnapshotView | null; peakIsOpen: boolean };
  rootCause: {
    findingId: string | null;
    severity: string | null;
    title: string;
    summary: string;
    /** Code sites that held the connections (from the application pools), when known. */
    sites: CodeSite[];
    /** Whether the sites are the cause's sessions' ("cause") or every holder seen ("all"). */
    sitesMatched: 'cause' | 'all' | null;
    /** Other findings that contributed. */
    contributing: ReportFinding[];
  };
  trigger: { text: string; facts: Fact[] };
  detection: {
    ruleId: string;
    openedAt: string;
    conditionStartedAt: string | null;
    /** How the start was established. */
    conditionSource: string | null;
    delayMs: number | null;
    text: string;
  };
  resolution: {
    resolvedAt: string | null;
    resolvedBy: string | null;
    clearedAt: string | null;
    actions: ReportActionRecord[];
    text: string;
  };
  actionItems: ActionItem[];
  lessons: string[];
}

// ---- building ----

const iso = (ms: number) => new Date(ms).toISOString();

/** "+04:10" for 250 s after the start; minutes are not capped at 59 ("+75:00"). */
export function formatOffset(ms: number): string {
  const sign = ms < 0 ? '-' : '+';
  const s = Math.floor(Math.abs(ms) / 1000);
  return `${sign}${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** A duration in ms for prose: "850ms", "12.3s", "23m10s", "2h10m". */
function duration(ms: number): string {
  return formatMillis(Math.max(0, ms));
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Who carried out an audited action: its `by`, a person for `--pid` requests, else the agent. */
function actorOf(entry: ReportAction): string {
  if (entry.by) return entry.by;
  return entry.rule === 'requested' ? 'a person (pgwarden kill --pid)' : 'agent';
}

const AUTOMATIC = new Set(['agent', 'auto', 'automatic', 'system', 'pgwarden']);

function resolvedHow(incident: Incident): string {
  const by = incident.resolvedBy;
  if (by === null || AUTOMATIC.has(by.toLowerCase())) return 'automatically after the condition cleared';
  return `by ${by}`;
}

function view(snapshot: Snapshot, diagnosis: Diagnosis): SnapshotView {
  const c = snapshot.connections;
  const byState = Object.entries(c.byState)
    .map(([state, count]) => ({ state, count }))
    .sort((a, b) => b.count - a.count || a.state.localeCompare(b.state));
  const bouncer = snapshot.pgbouncer;
  return {
    at: snapshot.at,
    status: diagnosis.status,
    headline: diagnosis.headline,
    total: c.total,
    usable: c.usable,
    usage: c.usage,
    maxConnections: snapshot.server.maxConnections,
    byState,
    topConsumers: [...snapshot.consumers]
      .sort((a, b) => b.count - a.count)
      .slice(0, 5)
      .map((k) => ({
        database: k.database,
        user: k.user,
        application: k.application,
        clientAddr: k.clientAddr,
        state: k.state,
        count: k.count,
      })),
    findings: topFindings(diagnosis, 5),
    lockWaiters: snapshot.sessions.filter((s) => s.waitEventType === 'Lock').length,
    pgbouncerWaiting: bouncer ? bouncer.pools.reduce((n, p) => n + p.clWaiting, 0) : null,
  };
}

function reportFinding(f: Finding): ReportFinding {
  return { id: f.id, severity: f.severity, title: f.title, summary: f.summary };
}

/** Warning and critical findings first (in diagnosis order), then the rest, at most `n`. */
function topFindings(diagnosis: Diagnosis, n: number): ReportFinding[] {
  const important = diagnosis.findings.filter((f) => f.severity !== 'info');
  const rest = diagnosis.findings.filter((f) => f.severity === 'info');
  return [...important, ...rest].slice(0, n).map(reportFinding);
}

/** Groups holders by (pool, site): most connections first, then the longest held. */
function codeSites(holders: AppHolder[]): CodeSite[] {
  const groups = new Map<string, CodeSite>();
  for (const h of holders) {
    const key = JSON.stringify([h.pool, h.site]);
    const g = groups.get(key) ?? {
      pool: h.pool,
      site: h.site,
      connections: 0,
      pids: [],
      heldMillis: 0,
      text: '',
    };
    if (!g.pids.includes(h.pid)) {
      g.pids.push(h.pid);
      g.connections++;
    }
    g.heldMillis = Math.max(g.heldMillis, Number.isFinite(h.heldMillis) ? h.heldMillis : 0);
    groups.set(key, g);
  }
  return [...groups.values()]
    .map((g) => ({
      ...g,
      pids: [...g.pids].sort((a, b) => a - b),
      text: `${g.pool}: ${g.site} held ${plural(g.connections, 'connection')} for ${formatAge(g.heldMillis / 1000)}`,
    }))
    .sort((a, b) => b.connections - a.connections || b.heldMillis - a.heldMillis);
}

/** Where an alert rule or the incident store may have put the condition's start (epoch ms or ISO). */
function conditionStartFromTimeline(timeline: TimelineEntry[]): number | null {
  let best: number | null = null;
  for (const e of timeline) {
    if (e.kind !== 'opened' || typeof e.data !== 'object' || e.data === null) continue;
    const data = e.data as Record<string, unknown>;
    for (const key of ['conditionSince', 'firingSince', 'since']) {
      const v = data[key];
      const ms = typeof v === 'number' ? v : typeof v === 'string' ? Date.parse(v) : Number.NaN;
      if (Number.isFinite(ms) && (best === null || ms < best)) best = ms;
    }
  }
  return best;
}

/** When the sessions behind the cause entered the state the finding is about (snapshot time − age). */
function conditionStartFromSessions(
  snapshot: Snapshot,
  cause: Finding | undefined,
): { at: number; pid: number; state: string } | null {
  if (!cause || cause.pids.length === 0) return null;
  const taken = Date.parse(snapshot.at);
  if (!Number.isFinite(taken)) return null;
  const pids = new Set(cause.pids);
  let best: { at: number; pid: number; state: string } | null = null;
  for (const s of snapshot.sessions) {
    if (!pids.has(s.pid)) continue;
    const age = s.stateAgeSeconds ?? s.queryAgeSeconds ?? s.xactAgeSeconds;
    if (age === null || !Number.isFinite(age)) continue;
    const at = taken - Math.round(age * 1000);
    if (best === null || at < best.at) best = { at, pid: s.pid, state: s.state };
  }
  return best;
}

function escalationLevelOf(entry: TimelineEntry): number | null {
  if (typeof entry.data === 'object' && entry.data !== null) {
    const level = (entry.data as Record<string, unknown>).level;
    if (typeof level === 'number' && Number.isInteger(level)) return level;
  }
  const m = /level\s+(\d+)/i.exec(entry.text);
  return m ? Number(m[1]) : null;
}

function byOf(entry: TimelineEntry): string | null {
  if (typeof entry.data === 'object' && entry.data !== null) {
    const by = (entry.data as Record<string, unknown>).by;
    if (typeof by === 'string' && by !== '') return by;
  }
  return null;
}

/** Timeline entries the structured inputs already describe (the audit log's actions, the deliveries). */
function mirrored(entry: TimelineEntry, input: ReportInput): boolean {
  if (entry.kind === 'notification') return (input.notifications?.length ?? 0) > 0;
  if (entry.kind === 'action' && (input.actions?.length ?? 0) > 0) {
    // The agent mirrors each executed outcome and refusal (with its pid) on the timeline: the audit
    // entries are the detailed version. Suggestions and notes without a pid stay.
    const data = entry.data;
    return typeof data === 'object' && data !== null && typeof (data as { pid?: unknown }).pid === 'number';
  }
  return false;
}

function buildTimeline(
  input: ReportInput,
  condition: { at: number; text: string } | null,
  actions: ReportActionRecord[],
): ReportEvent[] {
  const { incident } = input;
  const start = incident.openedAt;
  const raw: {
    at: number;
    order: number;
    kind: ReportEventKind;
    actor: string | null;
    text: string;
    failed: boolean;
  }[] = [];
  let order = 0;
  const push = (at: number, kind: ReportEventKind, actor: string | null, text: string, failed = false) =>
    raw.push({ at, order: order++, kind, actor, text, failed });

  if (condition && condition.at < start) push(condition.at, 'condition', null, condition.text);
  const entries = [...input.timeline].filter((e) => e.incidentId === incident.id || e.incidentId === '');
  const has = (kind: TimelineEntry['kind']) => entries.some((e) => e.kind === kind);
  if (!has('opened')) push(start, 'opened', null, `Opened: ${incident.title}`);
  for (const e of entries) {
    if (mirrored(e, input)) continue;
    let actor: string | null = byOf(e);
    if (e.kind === 'escalated') {
      const level = escalationLevelOf(e);
      const policy = level === null ? undefined : incident.policy.find((l) => l.level === level);
      if (policy) actor = `level ${policy.level}: ${policy.name}`;
      else if (level !== null) actor = `level ${level}`;
    } else if (e.kind === 'acknowledged') actor = actor ?? incident.acknowledgedBy;
    else if (e.kind === 'resolved') actor = actor ?? incident.resolvedBy;
    else if (e.kind === 'action') actor = actor ?? 'agent';
    push(e.at, e.kind, actor, e.text);
  }
  if (incident.acknowledgedAt !== null && !has('acknowledged')) {
    push(incident.acknowledgedAt, 'acknowledged', incident.acknowledgedBy, 'Acknowledged');
  }
  if (incident.clearSince !== null && !has('cleared'))
    push(incident.clearSince, 'cleared', null, 'Condition cleared');
  for (const a of actions) {
    const at = Date.parse(a.at);
    if (!Number.isFinite(at)) continue;
    const who = a.application ? ` (${a.application}${a.user ? `, user ${a.user}` : ''})` : '';
    if (a.event === 'refuse') {
      push(at, 'refusal', a.by, `Refused to act on pid ${a.pid}${who}: ${a.reason}`);
    } else {
      const failed = a.result === 'failed';
      const result = a.dryRun ? 'dry run' : a.result.replace(/_/g, ' ');
      push(
        at,
        'action',
        a.by,
        `${a.event === 'cancel' ? 'Cancel' : 'Terminate'} pid ${a.pid}${who}: ${result}${a.error ? ` (${a.error})` : ''} — ${a.reason}`,
        failed,
      );
    }
  }
  for (const n of input.notifications ?? []) {
    const level = n.level > 0 ? ` (level ${n.level})` : '';
    const attempt = n.attempt !== undefined && n.attempt > 1 ? `, attempt ${n.attempt}` : '';
    const error = n.error ?? n.detail ?? null;
    push(
      n.at,
      'notification',
      n.notifier,
      `Notification "${n.event}"${level} via ${n.notifier}${attempt}: ${n.ok ? 'delivered' : `FAILED${error ? `: ${error}` : ''}`}`,
      !n.ok,
    );
  }
  if (incident.resolvedAt !== null && !has('resolved')) {
    push(incident.resolvedAt, 'resolved', incident.resolvedBy, `Resolved ${resolvedHow(incident)}`);
  }
  return raw
    .filter((r) => Number.isFinite(r.at))
    .sort((a, b) => a.at - b.at || a.order - b.order)
    .map((r) => ({
      at: iso(r.at),
      offsetMs: r.at - start,
      offset: formatOffset(r.at - start),
      kind: r.kind,
      actor: r.actor,
      text: r.text,
      failed: r.failed,
    }));
}

function actionRecords(actions: ReportAction[]): ReportActionRecord[] {
  return [...actions]
    .sort((a, b) => Date.parse(a.at) - Date.parse(b.at))
    .map((a) => ({
      at: a.at,
      by: actorOf(a),
      event: a.event,
      pid: a.pid,
      user: a.user,
      application: a.application,
      rule: a.rule,
      reason: a.reason,
      result: a.result,
      dryRun: a.dryRun,
      error: a.error ?? null,
    }));
}

/** "the agent terminated 2 sessions (billing-worker); alice cancelled 1 query". */
function describeActions(actions: ReportActionRecord[]): string {
  const done = actions.filter((a) => !a.dryRun && a.result === 'ok' && a.event !== 'refuse');
  const parts: string[] = [];
  const actors = [...new Set(done.map((a) => a.by))];
  for (const by of actors) {
    const mine = done.filter((a) => a.by === by);
    const terminated = new Set(mine.filter((a) => a.event === 'terminate').map((a) => a.pid));
    const cancelled = new Set(
      mine.filter((a) => a.event === 'cancel' && !terminated.has(a.pid)).map((a) => a.pid),
    );
    const apps = [...new Set(mine.map((a) => a.application || '(no application_name)'))].slice(0, 3);
    const did: string[] = [];
    if (terminated.size > 0) did.push(`terminated ${plural(terminated.size, 'session')}`);
    if (cancelled.size > 0) did.push(`cancelled ${plural(cancelled.size, 'query', 'queries')}`);
    if (did.length > 0)
      parts.push(`${by === 'agent' ? 'the agent' : by} ${did.join(' and ')} (${apps.join(', ')})`);
  }
  const refused = new Set(actions.filter((a) => a.event === 'refuse').map((a) => a.pid)).size;
  const failed = actions.filter((a) => a.result === 'failed').length;
  const dry = actions.filter((a) => a.dryRun).length;
  if (refused > 0) parts.push(`${plural(refused, 'session')} refused by the safety rules`);
  if (failed > 0) parts.push(`${plural(failed, 'action')} failed`);
  if (dry > 0) parts.push(`${plural(dry, 'dry-run action')} (nothing done)`);
  return parts.join('; ');
}

// ---- action items ----

/** What fixing the code that held the connections means, by the cause's finding. */
const CODE_FIX: Record<string, string> = {
  'sessions.idle_in_transaction': 'commit or roll back, and release the connection in a finally block',
  'sessions.long_running': 'make the statement faster or give it a statement_timeout',
  'locks.blocking_chain': 'keep the transaction that takes the locks short',
  'pgbouncer.clients_waiting': 'hold the connection for less time',
};

const SHELL_SAFE = /^[A-Za-z0-9._-]{1,63}$/;

function itemFromAction(finding: Finding, action: Action): ActionItem | null {
  if (action.kind === 'cancel' || action.kind === 'terminate') return null;
  const text = action.text.trim();
  if (/^pgwarden indexes\b/.test(text)) return null; // one index item, below
  if (/^SELECT\b/i.test(text)) return null; // a diagnostic read, not a follow-up
  const setting = /^ALTER SYSTEM SET (\w+) = '([^']*)'/.exec(text);
  let title: string;
  if (setting) title = `Set ${setting[1]} to ${setting[2]} (takes effect on reload)`;
  else if (/^ALTER ROLE .* SET statement_timeout/i.test(text))
    title = `Set a statement_timeout for ${action.target}`;
  else if (/pg_stat_statements|shared_preload_libraries/.test(text)) title = 'Enable pg_stat_statements';
  else if (/^GRANT pg_monitor/i.test(text)) title = `Let ${action.target} see every session (pg_monitor)`;
  else title = `${action.target}: follow up on "${finding.title}"`;
  return {
    source: 'finding',
    title,
    why: finding.title,
    command: text,
    language: action.kind === 'sql' ? 'sql' : 'sh',
  };
}

interface RunbookContext {
  findings: Set<string>;
  escalated: boolean;
  notificationFailures: number;
  agentActed: boolean;
  personActed: boolean;
  detectionDelayMs: number | null;
  hasPgbouncer: boolean;
  peakUsage: number | null;
}

/** The runbook's "Post-Incident Actions", each with when it applies and why. */
const RUNBOOK_ITEMS: { section: string; item: string; why: (c: RunbookContext) => string | null }[] = [
  {
    section: 'Database Analysis',
    item: 'Analyze connection patterns',
    why: () => 'Who held the connections, and since when: the snapshots and code sites above are the start.',
  },
  {
    section: 'Database Analysis',
    item: 'Document root causes',
    why: () => 'Complete this report (root cause, trigger) and file it with the incident.',
  },
  {
    section: 'Database Analysis',
    item: 'Update monitoring',
    why: (c) =>
      c.detectionDelayMs !== null && c.detectionDelayMs > 5 * 60_000
        ? `The incident opened ${duration(c.detectionDelayMs)} after the condition started: alert on idle transactions and usage sooner.`
        : c.notificationFailures > 0
          ? `${plural(c.notificationFailures, 'notification attempt')} failed: check the notifiers.`
          : null,
  },
  {
    section: 'Performance Optimization',
    item: 'Optimize slow queries',
    why: (c) =>
      c.findings.has('queries.slow') || c.findings.has('sessions.long_running')
        ? 'Slow or long-running statements held connections during the incident.'
        : null,
  },
  {
    section: 'Performance Optimization',
    item: 'Add missing indexes',
    why: (c) =>
      c.findings.has('queries.slow') || c.findings.has('tables.seq_scan_heavy')
        ? 'Review the advice of pgwarden indexes before creating any index (CREATE INDEX CONCURRENTLY).'
        : null,
  },
  {
    section: 'Performance Optimization',
    item: 'Update connection pooling',
    why: (c) =>
      c.findings.has('sessions.idle_in_transaction')
        ? 'Connections were held by transactions that never finished: release them in a finally block and set the pool’s leak detection.'
        : c.findings.has('pgbouncer.clients_waiting')
          ? 'Clients queued in PgBouncer: check its pool sizes (pgwarden pgbouncer-config).'
          : null,
  },
  {
    section: 'Infrastructure Improvements',
    item: 'Add connection pooling service',
    why: (c) =>
      !c.hasPgbouncer && c.peakUsage !== null && c.peakUsage >= 0.75
        ? 'No PgBouncer in front of the server and usage reached the warning line: size one with pgwarden pgbouncer-config.'
        : null,
  },
  {
    section: 'Process Improvements',
    item: 'Update connection management procedures',
    why: (c) =>
      c.findings.has('sessions.idle_in_transaction') || c.findings.has('locks.blocking_chain')
        ? 'Make idle_in_transaction_session_timeout and statement_timeout part of every database’s setup.'
        : null,
  },
  {
    section: 'Process Improvements',
    item: 'Improve incident response',
    why: (c) =>
      c.escalated
        ? 'The incident escalated before anyone acknowledged it: check the on-call rota and the escalation delays.'
        : null,
  },
  {
    section: 'Process Improvements',
    item: 'Add automated recovery',
    why: (c) =>
      !c.agentActed && c.personActed
        ? 'People ended sessions by hand: consider the agent’s auto mode for the same rules, within its limits.'
        : null,
  },
  {
    section: 'Process Improvements',
    item: 'Update documentation',
    why: () =>
      'Fix the runbook: its kill query is a syntax error and kills by query_start, and its pg_stat_statements query uses mean_time (gone since PostgreSQL 13).',
  },
];

function buildActionItems(
  diagnoses: Diagnosis[],
  peak: Snapshot | undefined,
  cause: Finding | undefined,
  sites: CodeSite[],
  context: RunbookContext,
): ActionItem[] {
  const items: ActionItem[] = [];
  const seen = new Set<string>();
  const add = (item: ActionItem) => {
    const key = item.command ?? item.title;
    if (seen.has(key)) return;
    seen.add(key);
    items.push(item);
  };
  // The code that held the connections comes first: it is the fix.
  for (const site of sites.slice(0, 3)) {
    add({
      source: 'code',
      title: `Fix ${site.pool}: ${site.site} (${CODE_FIX[cause?.id ?? ''] ?? 'find why it keeps its connections'})`,
      why: site.text,
      command: null,
      language: null,
    });
  }
  let indexWhy: string | null = null;
  for (const d of diagnoses) {
    for (const f of d.findings) {
      if (
        f.severity === 'info' &&
        f.id !== 'tables.seq_scan_heavy' &&
        f.id !== 'extension.pg_stat_statements_missing'
      )
        continue;
      if (f.id === 'queries.slow' || f.id === 'tables.seq_scan_heavy') indexWhy ??= f.title;
      for (const action of f.actions) {
        const item = itemFromAction(f, action);
        if (item) add(item);
      }
    }
  }
  if (indexWhy !== null) {
    add({
      source: 'finding',
      title: 'Review the index advice for the slow statements and scan-heavy tables (dry run first)',
      why: indexWhy,
      command: 'pgwarden indexes --url "$DATABASE_URL"',
      language: 'sh',
    });
  }
  if (peak) {
    const c = peak.connections;
    const causeApps = new Map<string, number>();
    if (cause) {
      const pids = new Set(cause.pids);
      for (const s of peak.sessions)
        if (pids.has(s.pid)) causeApps.set(s.application, (causeApps.get(s.application) ?? 0) + 1);
    }
    const app = [...causeApps].sort((a, b) => b[1] - a[1])[0]?.[0];
    const appFlag = app && SHELL_SAFE.test(app) ? ` --app ${app}` : '';
    add({
      source: 'capacity',
      title: 'Check the pools’ sizes against max_connections before raising either',
      why: `At peak ${c.total} of ${c.usable} usable connections were in use (${percent(c.usage)}), max_connections ${peak.server.maxConnections}. The runbook’s Step 2 raises every pool to ${RUNBOOK_STEP2.poolMax} + ${RUNBOOK_STEP2.maxOverflow} and max_connections to ${RUNBOOK_STEP2.maxConnections}: check it with your replica count (pgwarden plan --runbook --replicas N shows what it would need).`,
      command: `pgwarden plan --url "$DATABASE_URL" --replicas N${appFlag}`,
      language: 'sh',
    });
  }
  for (const r of RUNBOOK_ITEMS) {
    const why = r.why(context);
    if (why === null) continue;
    add({ source: 'runbook', title: `${r.section}: ${r.item}`, why, command: null, language: null });
  }
  return items;
}

function buildLessons(ctx: {
  causeApps: string[];
  escalated: boolean;
  notificationFailures: string[];
  actions: ReportActionRecord[];
  detectionDelayMs: number | null;
}): string[] {
  const lessons = [
    'What went well? (detection, the right people reached, the actions taken)',
    'What went wrong? (what made it longer or worse)',
    'Where did we get lucky? (what could have made it much worse)',
  ];
  if (ctx.causeApps.length > 0) {
    lessons.push(
      `Why did ${ctx.causeApps.join(', ')} hold connections this long, and would a test or a timeout have caught it?`,
    );
  }
  if (ctx.detectionDelayMs !== null) {
    lessons.push(
      `Detection came ${duration(ctx.detectionDelayMs)} after the condition started: is that early enough, and which signal would have come sooner?`,
    );
  }
  if (ctx.escalated)
    lessons.push('The incident escalated: why was it not acknowledged at the first notification?');
  if (ctx.notificationFailures.length > 0) {
    lessons.push(
      `Notifications failed via ${ctx.notificationFailures.join(', ')}: how did people find out instead?`,
    );
  }
  if (ctx.actions.some((a) => a.event !== 'refuse' && !a.dryRun)) {
    lessons.push('Were the sessions ended the right ones? Was any refusal wrong, or any action missing?');
  }
  lessons.push('Which of the action items would have prevented this incident, and who owns each one?');
  return lessons;
}

export function buildReport(input: ReportInput): IncidentReport {
  const { incident } = input;
  const open = input.openSnapshot;
  const peak = input.peakSnapshot ?? open;
  const openDiagnosis = open ? diagnose(open) : undefined;
  const peakDiagnosis = input.peakSnapshot ? diagnose(input.peakSnapshot) : openDiagnosis;
  const cause = peakDiagnosis?.cause;
  const actions = actionRecords(input.actions ?? []);

  // Detection: the condition's start, from the rule when it said so, else from the sessions' ages.
  const fromTimeline = conditionStartFromTimeline(input.timeline);
  const fromSessions = open
    ? conditionStartFromSessions(open, openDiagnosis?.cause)
    : peak
      ? conditionStartFromSessions(peak, cause)
      : null;
  let conditionStart: number | null = null;
  let conditionSource: string | null = null;
  if (fromTimeline !== null && fromTimeline <= incident.openedAt) {
    conditionStart = fromTimeline;
    conditionSource = `the alert rule ${incident.ruleId} first saw it`;
  }
  if (
    fromSessions !== null &&
    fromSessions.at <= incident.openedAt &&
    (conditionStart === null || fromSessions.at < conditionStart)
  ) {
    conditionStart = fromSessions.at;
    conditionSource = `estimated: pid ${fromSessions.pid}, the oldest session behind the cause, has been ${fromSessions.state} since then`;
  }
  const delayMs = conditionStart === null ? null : incident.openedAt - conditionStart;

  const timeline = buildTimeline(
    input,
    conditionStart === null ? null : { at: conditionStart, text: `Condition started (${conditionSource})` },
    actions,
  );

  // Impact.
  const lastRecorded = Math.max(incident.openedAt, ...timeline.map((e) => Date.parse(e.at)));
  const end = incident.resolvedAt;
  const durationMs = (end ?? lastRecorded) - incident.openedAt;
  const involved = new Set<number>();
  for (const f of peakDiagnosis?.findings ?? [])
    if (f.severity !== 'info') for (const p of f.pids) involved.add(p);
  for (const a of actions) if (a.event !== 'refuse') involved.add(a.pid);
  const appCounts = new Map<string, number>();
  if (peak) {
    for (const s of peak.sessions) {
      if (!involved.has(s.pid)) continue;
      const name = s.application || '(no application_name)';
      appCounts.set(name, (appCounts.get(name) ?? 0) + 1);
    }
  }
  const applications = [...appCounts]
    .map(([name, sessions]) => ({ name, sessions }))
    .sort((a, b) => b.sessions - a.sessions || a.name.localeCompare(b.name));
  const peakView = peak && peakDiagnosis ? view(peak, peakDiagnosis) : null;
  const openView = open && openDiagnosis ? view(open, openDiagnosis) : null;
  const waiting = {
    pgbouncer: peakView ? peakView.pgbouncerWaiting : null,
    lockWaiters: peakView ? peakView.lockWaiters : null,
  };
  const impactFacts: Fact[] = [
    {
      label: 'Impact window',
      value: `${formatTimestamp(iso(incident.openedAt))} to ${end === null ? 'not resolved yet' : formatTimestamp(iso(end))} (${duration(durationMs)}${end === null ? ' so far' : ''})`,
    },
    {
      label: 'Peak usage',
      value: peakView
        ? `${peakView.total}/${peakView.usable} usable connections (${percent(peakView.usage)}) at ${formatTimestamp(peakView.at)}; max_connections ${peakView.maxConnections}`
        : 'unknown (no snapshot)',
    },
    {
      label: 'Sessions involved',
      value:
        involved.size === 0
          ? 'none named by the findings or the actions'
          : `${involved.size}${
              applications.length > 0
                ? ` (${applications
                    .slice(0, 5)
                    .map((a) => `${a.name} ${a.sessions}`)
                    .join(', ')})`
                : ''
            }`,
    },
    {
      label: 'Waiting clients',
      value: peakView
        ? [
            waiting.pgbouncer === null
              ? 'no PgBouncer (its queue not measured)'
              : `${waiting.pgbouncer} queued in PgBouncer`,
            `${plural(waiting.lockWaiters ?? 0, 'session')} waiting on locks`,
          ].join('; ')
        : 'unknown (no snapshot)',
    },
    { label: 'Database', value: incident.database },
    { label: 'Severity', value: incident.severity },
  ];

  // Root cause with the code sites that held its connections.
  const holders = input.appHolders ?? [];
  let sites: CodeSite[] = [];
  let sitesMatched: 'cause' | 'all' | null = null;
  if (holders.length > 0) {
    const causePids = new Set(cause?.pids ?? []);
    const matched = holders.filter((h) => causePids.has(h.pid));
    if (matched.length > 0) {
      sites = codeSites(matched);
      sitesMatched = 'cause';
    } else {
      sites = codeSites(holders);
      sitesMatched = 'all';
    }
  }
  const rootCause: IncidentReport['rootCause'] = cause
    ? {
        findingId: cause.id,
        severity: cause.severity,
        title: cause.title,
        summary: cause.summary,
        sites,
        sitesMatched,
        contributing: (peakDiagnosis?.findings ?? [])
          .filter((f) => f !== cause && f.severity !== 'info')
          .slice(0, 4)
          .map(reportFinding),
      }
    : {
        findingId: null,
        severity: null,
        title: peak ? 'No cause found in the snapshot' : 'Unknown: no snapshot was taken',
        summary: peak
          ? 'Diagnosis found nothing wrong in the snapshot: the trouble may have passed before it was taken.'
          : `The incident (${incident.ruleId}) has no snapshot of the server to diagnose${incident.ruleId === 'server.unreachable' ? ': the server could not be reached' : ''}.`,
        sites,
        sitesMatched,
        contributing: [],
      };

  // Trigger: what set it off.
  // The applications of the cause's own sessions (not every session the findings named).
  const causePids = new Set(cause?.pids ?? []);
  const causeAppCounts = new Map<string, number>();
  for (const s of peak?.sessions ?? []) {
    if (!causePids.has(s.pid)) continue;
    const name = s.application || '(no application_name)';
    causeAppCounts.set(name, (causeAppCounts.get(name) ?? 0) + 1);
  }
  const causeApps = [...causeAppCounts]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, 3)
    .map(([name]) => name);
  const firstOpened = input.timeline.find((e) => e.kind === 'opened');
  const triggerFacts: Fact[] = [
    { label: 'Alert', value: `${incident.ruleId} (${incident.severity}): ${incident.title}` },
  ];
  if (firstOpened && firstOpened.text !== incident.title)
    triggerFacts.push({ label: 'Opening event', value: firstOpened.text });
  if (fromSessions) {
    triggerFacts.push({
      label: 'Earliest sign',
      value: `pid ${fromSessions.pid} ${fromSessions.state} since ${formatTimestamp(iso(fromSessions.at))}`,
    });
  }
  if (causeApps.length > 0) triggerFacts.push({ label: 'From', value: causeApps.join(', ') });
  const triggerText = cause
    ? `${cause.title}${causeApps.length > 0 ? ` (from ${causeApps.join(', ')})` : ''} set off the ${incident.ruleId} alert. What started it (a deploy, a job, a traffic change) is for the humans to fill in.`
    : `The ${incident.ruleId} rule fired: ${incident.title}. What started it is for the humans to fill in.`;

  // Detection.
  const detectionText =
    `Rule ${incident.ruleId} opened the incident at ${formatTimestamp(iso(incident.openedAt))}` +
    (delayMs === null
      ? '; when the condition started is not known.'
      : `, ${duration(delayMs)} after the condition started (${conditionSource}).`);

  // Resolution.
  const cleared = timeline.find((e) => e.kind === 'cleared');
  const actionText = describeActions(actions);
  const resolutionText = [
    incident.resolvedAt === null
      ? 'Not resolved when this report was built.'
      : `Resolved at ${formatTimestamp(iso(incident.resolvedAt))} ${resolvedHow(incident)}, ${duration(incident.resolvedAt - incident.openedAt)} after it opened.`,
    incident.acknowledgedAt !== null
      ? `Acknowledged by ${incident.acknowledgedBy ?? 'someone'} after ${duration(incident.acknowledgedAt - incident.openedAt)}.`
      : 'Nobody acknowledged it.',
    cleared ? `The condition cleared at ${formatTimestamp(cleared.at)}.` : '',
    actionText ? `Actions: ${actionText}.` : 'No session was cancelled or terminated by pgwarden.',
  ]
    .filter((s) => s !== '')
    .join(' ');

  // Summary.
  const escalated = incident.escalationLevel > 0 || timeline.some((e) => e.kind === 'escalated');
  const summary = [
    `A ${incident.severity} incident on database ${incident.database}: ${incident.title}.`,
    end === null
      ? `It opened at ${formatTimestamp(iso(incident.openedAt))} and has lasted ${duration(durationMs)} so far.`
      : `It lasted ${duration(durationMs)}, from ${formatTimestamp(iso(incident.openedAt))} until it was resolved ${resolvedHow(incident)}.`,
    peakView
      ? `At its peak ${peakView.total} of ${peakView.usable} usable connections were in use (${percent(peakView.usage)}).`
      : '',
    cause
      ? `Most likely cause: ${cause.title}${sites[0] && sitesMatched === 'cause' ? `; ${sites[0].text}` : ''}.`
      : '',
    escalated ? `It escalated to level ${incident.escalationLevel}.` : '',
    actionText ? `Actions: ${actionText}.` : '',
  ]
    .filter((s) => s !== '')
    .join(' ');

  const failures = (input.notifications ?? []).filter((n) => !n.ok);
  const diagnoses = [peakDiagnosis, openDiagnosis].filter((d): d is Diagnosis => d !== undefined);
  const findingIds = new Set(
    diagnoses.flatMap((d) =>
      d.findings.filter((f) => f.severity !== 'info' || f.id === 'tables.seq_scan_heavy').map((f) => f.id),
    ),
  );
  const actionItems = buildActionItems(diagnoses, peak, cause, sitesMatched === 'cause' ? sites : [], {
    findings: findingIds,
    escalated,
    notificationFailures: failures.length,
    agentActed: actions.some((a) => a.by === 'agent' && a.event !== 'refuse' && !a.dryRun),
    personActed: actions.some((a) => a.by !== 'agent' && a.event !== 'refuse' && !a.dryRun),
    detectionDelayMs: delayMs,
    hasPgbouncer: peak?.pgbouncer !== undefined,
    peakUsage: peakView ? peakView.usage : null,
  });

  return {
    format: 'pgwarden.incident-report',
    version: 1,
    incident: {
      id: incident.id,
      ruleId: incident.ruleId,
      database: incident.database,
      severity: incident.severity,
      state: incident.state,
      title: incident.title,
      openedAt: iso(incident.openedAt),
      acknowledgedAt: incident.acknowledgedAt === null ? null : iso(incident.acknowledgedAt),
      acknowledgedBy: incident.acknowledgedBy,
      resolvedAt: incident.resolvedAt === null ? null : iso(incident.resolvedAt),
      resolvedBy: incident.resolvedBy,
      escalationLevel: incident.escalationLevel,
    },
    summary,
    impact: {
      start: iso(incident.openedAt),
      end: end === null ? null : iso(end),
      durationMs,
      ongoing: end === null,
      peak: peakView
        ? { at: peakView.at, total: peakView.total, usable: peakView.usable, usage: peakView.usage }
        : null,
      sessionsInvolved: involved.size,
      applications,
      waitingClients: waiting,
      facts: impactFacts,
    },
    timeline,
    snapshots: {
      open: openView,
      peak: input.peakSnapshot ? peakView : null,
      peakIsOpen: !input.peakSnapshot && !!open,
    },
    rootCause,
    trigger: { text: triggerText, facts: triggerFacts },
    detection: {
      ruleId: incident.ruleId,
      openedAt: iso(incident.openedAt),
      conditionStartedAt: conditionStart === null ? null : iso(conditionStart),
      conditionSource,
      delayMs,
      text: detectionText,
    },
    resolution: {
      resolvedAt: incident.resolvedAt === null ? null : iso(incident.resolvedAt),
      resolvedBy: incident.resolvedBy,
      clearedAt: cleared ? cleared.at : null,
      actions,
      text: resolutionText,
    },
    actionItems,
    lessons: buildLessons({
      causeApps,
      escalated,
      notificationFailures: [...new Set(failures.map((f) => f.notifier))],
      actions,
      detectionDelayMs: delayMs,
    }),
  };
}

/** Code sites from the application pools' `inspect()`: every checked-out connection with a known pid. */
export function appHoldersFrom(appPools: { source: string; pools: PoolInspection[] }[]): AppHolder[] {
  const out: AppHolder[] = [];
  for (const app of appPools) {
    for (const pool of app.pools) {
      for (const c of pool.checkouts) {
        if (c.pid === undefined) continue;
        out.push({
          pid: c.pid,
          site: c.site ?? '(site not captured)',
          heldMillis: c.heldMillis,
          pool: pool.pool,
        });
      }
    }
  }
  return out;
}

// ---- rendering: shared ----

export const REPORT_HEADINGS = [
  'Summary',
  'Impact',
  'Timeline',
  'Snapshots',
  'Root cause',
  'Trigger',
  'Detection',
  'Resolution',
  'Action items',
  'Lessons learned',
] as const;

const KIND_LABEL: Record<ReportEventKind, string> = {
  condition: 'condition started',
  opened: 'opened',
  updated: 'updated',
  escalated: 'escalated',
  acknowledged: 'acknowledged',
  action: 'action',
  refusal: 'refused',
  notification: 'notification',
  cleared: 'cleared',
  resolved: 'resolved',
  note: 'note',
};

function usageLine(v: SnapshotView): string {
  return `${v.total}/${v.usable} usable connections (${percent(v.usage)}), max_connections ${v.maxConnections}`;
}

// ---- rendering: markdown ----

function mdTable(head: string[], rows: string[][], right: number[] = []): string {
  const rule = head.map((_, i) => (right.includes(i) ? '---:' : '---'));
  return [head, rule, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

function mdFacts(facts: Fact[]): string {
  return facts.map((f) => `- **${markdownText(f.label)}:** ${markdownText(f.value)}`).join('\n');
}

function mdFindings(findings: ReportFinding[]): string {
  if (findings.length === 0) return '_No findings._';
  return findings
    .map((f) => `- **${markdownText(f.severity)}** ${markdownText(f.title)}: ${markdownText(f.summary)}`)
    .join('\n');
}

function mdSnapshot(title: string, v: SnapshotView): string {
  const states =
    v.byState.map((s) => `${markdownText(s.state)} ${s.count}`).join(', ') || 'no client connections';
  const consumers =
    v.topConsumers.length === 0
      ? '_No client connections._'
      : mdTable(
          ['application', 'user', 'database', 'client', 'state', 'count'],
          v.topConsumers.map((c) => [
            markdownCell(c.application || '–'),
            markdownCell(c.user ?? '–'),
            markdownCell(c.database ?? '–'),
            markdownCell(c.clientAddr ?? 'local'),
            markdownCell(c.state),
            String(c.count),
          ]),
          [5],
        );
  return [
    `### ${title}: ${markdownText(formatTimestamp(v.at))}`,
    '',
    `- **Status:** ${markdownText(v.headline)}`,
    `- **Usage:** ${markdownText(usageLine(v))}`,
    `- **By state:** ${states}`,
    `- **Waiting:** ${v.lockWaiters} on locks${v.pgbouncerWaiting === null ? '' : `, ${v.pgbouncerWaiting} in PgBouncer`}`,
    '',
    '**Top consumers**',
    '',
    consumers,
    '',
    '**Top findings**',
    '',
    mdFindings(v.findings),
  ].join('\n');
}

export function renderReportMarkdown(report: IncidentReport): string {
  const r = report;
  const out: string[] = [];
  out.push(`# Incident report: ${markdownText(r.incident.title)}`);
  out.push(
    `_Incident ${markdownText(r.incident.id)} · rule ${markdownText(r.incident.ruleId)} · database ${markdownText(r.incident.database)} · ${markdownText(r.incident.severity)} · ${markdownText(r.incident.state)}_`,
  );

  out.push('## Summary', markdownParagraph(r.summary));

  out.push('## Impact', mdFacts(r.impact.facts));

  out.push(
    '## Timeline',
    r.timeline.length === 0
      ? '_Nothing recorded._'
      : mdTable(
          ['time (UTC)', 'since start', 'event', 'who', 'what'],
          r.timeline.map((e) => [
            markdownCell(formatTimestamp(e.at)),
            markdownCell(e.offset),
            e.failed ? `**${markdownCell(KIND_LABEL[e.kind])} (failed)**` : markdownCell(KIND_LABEL[e.kind]),
            markdownCell(e.actor ?? '–'),
            markdownCell(e.text, 300),
          ]),
          [1],
        ),
  );

  const snaps: string[] = [];
  if (r.snapshots.open) snaps.push(mdSnapshot('At open', r.snapshots.open));
  if (r.snapshots.peak) snaps.push(mdSnapshot('At peak', r.snapshots.peak));
  else if (r.snapshots.peakIsOpen) snaps.push('_No later snapshot: the peak is the snapshot at open._');
  out.push('## Snapshots', snaps.length > 0 ? snaps.join('\n\n') : '_No snapshot was taken._');

  const rc = r.rootCause;
  const rcParts = [`**${markdownText(rc.title)}**`, '', markdownParagraph(rc.summary)];
  if (rc.sites.length > 0) {
    rcParts.push(
      '',
      rc.sitesMatched === 'cause'
        ? 'Code sites that held these connections:'
        : 'Code sites holding connections (none matched the sessions above):',
      '',
      ...rc.sites.slice(0, 10).map((s) => `- ${markdownText(s.text)}`),
    );
  } else {
    rcParts.push('', '_Code sites unknown: no application pool reported the connections it held._');
  }
  if (rc.contributing.length > 0) rcParts.push('', 'Contributing:', '', mdFindings(rc.contributing));
  out.push('## Root cause', rcParts.join('\n'));

  out.push('## Trigger', `${markdownParagraph(r.trigger.text)}\n\n${mdFacts(r.trigger.facts)}`);

  out.push('## Detection', markdownParagraph(r.detection.text));

  const actionRows = r.resolution.actions.map((a) => [
    markdownCell(formatTimestamp(a.at)),
    markdownCell(a.by),
    markdownCell(a.event),
    String(a.pid),
    markdownCell(a.application || '–'),
    markdownCell(a.dryRun ? `${a.result} (dry run)` : a.result),
    markdownCell(a.error ? `${a.reason}; ${a.error}` : a.reason, 160),
  ]);
  out.push(
    '## Resolution',
    [
      markdownParagraph(r.resolution.text),
      ...(actionRows.length > 0
        ? [
            '',
            mdTable(
              ['time (UTC)', 'by', 'action', 'pid', 'application', 'result', 'reason'],
              actionRows,
              [3],
            ),
          ]
        : []),
    ].join('\n'),
  );

  out.push(
    '## Action items',
    r.actionItems.length === 0
      ? '_None._'
      : r.actionItems
          .map((item, i) => {
            const head = `${i + 1}. **${markdownText(item.title)}** (${markdownText(item.source)}): ${markdownText(item.why)}`;
            if (item.command === null) return head;
            const block = codeBlock(item.command, item.language ?? '')
              .split('\n')
              .map((l) => `   ${l}`)
              .join('\n');
            return `${head}\n\n${block}`;
          })
          .join('\n'),
  );

  out.push('## Lessons learned', r.lessons.map((l) => `- [ ] ${markdownText(l)}`).join('\n'));

  return `${out.join('\n\n')}\n`;
}

// ---- rendering: HTML ----

/** Text made inert for HTML: control and bidi characters shown as escapes, then entities. */
export function escapeHtml(text: string): string {
  return terminalSafe(text).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}

/** Multi-line text for a <pre>: each line made inert, the newlines kept. */
function escapeHtmlBlock(text: string): string {
  return text
    .split(/\r?\n/)
    .map((line) => escapeHtml(line))
    .join('\n');
}

/** Markup that is already safe (built by `html`). */
class Safe {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

type HtmlValue = Safe | string | number | null | undefined | HtmlValue[];

function interpolate(value: HtmlValue): string {
  if (value === null || value === undefined) return '';
  if (value instanceof Safe) return value.value;
  if (Array.isArray(value)) return value.map(interpolate).join('');
  return escapeHtml(String(value));
}

/** A template whose every interpolated value is escaped unless it is itself `html`. */
function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Safe {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    out += interpolate(v) + (strings[i + 1] ?? '');
  });
  return new Safe(out);
}

const CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #1f2328;
  background: #f6f8fa; margin: 0; padding: 24px; }
main { max-width: 1100px; margin: 0 auto; background: #fff; border: 1px solid #d0d7de; border-radius: 8px;
  padding: 24px 32px; }
h1 { font-size: 1.6em; margin: 0 0 4px; word-break: break-word; }
h2 { font-size: 1.25em; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 1.05em; margin-top: 20px; }
.meta { color: #59636e; margin: 0 0 16px; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 0.85em; font-weight: 600;
  color: #fff; background: #59636e; }
.critical { background: #cf222e; } .warning { background: #bf8700; } .info { background: #0969da; }
.healthy { background: #1a7f37; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top;
  word-break: break-word; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.time { white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.failed td { background: #ffebe9; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0; }
dt { font-weight: 600; } dd { margin: 0; word-break: break-word; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 12px;
  overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
ol li, ul li { margin-bottom: 6px; }
.muted { color: #59636e; }
@media print { body { background: #fff; padding: 0; } main { border: 0; } }
`;

function hFacts(facts: Fact[]): Safe {
  return html`<dl>${facts.map((f) => html`<dt>${f.label}</dt><dd>${f.value}</dd>`)}</dl>`;
}

function hBadge(severity: string): Safe {
  const cls = ['critical', 'warning', 'info', 'healthy'].includes(severity) ? severity : '';
  return html`<span class="badge ${cls}">${severity}</span>`;
}

function hFindings(findings: ReportFinding[]): Safe {
  if (findings.length === 0) return html`<p class="muted">No findings.</p>`;
  return html`<ul>${findings.map(
    (f) => html`<li>${hBadge(f.severity)} <strong>${f.title}</strong>: ${f.summary}</li>`,
  )}</ul>`;
}

function hSnapshot(title: string, v: SnapshotView): Safe {
  const facts: Fact[] = [
    { label: 'Status', value: v.headline },
    { label: 'Usage', value: usageLine(v) },
    {
      label: 'By state',
      value: v.byState.map((s) => `${s.state} ${s.count}`).join(', ') || 'no client connections',
    },
    {
      label: 'Waiting',
      value: `${v.lockWaiters} on locks${v.pgbouncerWaiting === null ? '' : `, ${v.pgbouncerWaiting} in PgBouncer`}`,
    },
  ];
  const consumers =
    v.topConsumers.length === 0
      ? html`<p class="muted">No client connections.</p>`
      : html`<table><thead><tr><th>application</th><th>user</th><th>database</th><th>client</th><th>state</th><th>count</th></tr></thead><tbody>${v.topConsumers.map(
          (c) =>
            html`<tr><td>${c.application || '–'}</td><td>${c.user ?? '–'}</td><td>${c.database ?? '–'}</td><td>${c.clientAddr ?? 'local'}</td><td>${c.state}</td><td class="num">${c.count}</td></tr>`,
        )}</tbody></table>`;
  return html`<h3>${title}: ${formatTimestamp(v.at)}</h3>${hFacts(facts)}<h4>Top consumers</h4>${consumers}<h4>Top findings</h4>${hFindings(v.findings)}`;
}

export function renderReportHtml(report: IncidentReport): string {
  const r = report;
  const timeline =
    r.timeline.length === 0
      ? html`<p class="muted">Nothing recorded.</p>`
      : html`<table><thead><tr><th>time (UTC)</th><th>since start</th><th>event</th><th>who</th><th>what</th></tr></thead><tbody>${r.timeline.map(
          (e) =>
            html`<tr${e.failed ? html` class="failed"` : ''}><td class="time">${formatTimestamp(e.at)}</td><td class="num">${e.offset}</td><td>${KIND_LABEL[e.kind]}${e.failed ? ' (failed)' : ''}</td><td>${e.actor ?? '–'}</td><td>${e.text}</td></tr>`,
        )}</tbody></table>`;

  const snapshots: Safe[] = [];
  if (r.snapshots.open) snapshots.push(hSnapshot('At open', r.snapshots.open));
  if (r.snapshots.peak) snapshots.push(hSnapshot('At peak', r.snapshots.peak));
  else if (r.snapshots.peakIsOpen)
    snapshots.push(html`<p class="muted">No later snapshot: the peak is the snapshot at open.</p>`);
  if (snapshots.length === 0) snapshots.push(html`<p class="muted">No snapshot was taken.</p>`);

  const rc = r.rootCause;
  const sites =
    rc.sites.length > 0
      ? html`<p>${rc.sitesMatched === 'cause' ? 'Code sites that held these connections:' : 'Code sites holding connections (none matched the sessions above):'}</p><ul>${rc.sites
          .slice(0, 10)
          .map((s) => html`<li><code>${s.text}</code></li>`)}</ul>`
      : html`<p class="muted">Code sites unknown: no application pool reported the connections it held.</p>`;
  const contributing =
    rc.contributing.length > 0 ? html`<p>Contributing:</p>${hFindings(rc.contributing)}` : html``;

  const actions =
    r.resolution.actions.length === 0
      ? html``
      : html`<table><thead><tr><th>time (UTC)</th><th>by</th><th>action</th><th>pid</th><th>application</th><th>result</th><th>reason</th></tr></thead><tbody>${r.resolution.actions.map(
          (a) =>
            html`<tr${a.result === 'failed' ? html` class="failed"` : ''}><td class="time">${formatTimestamp(a.at)}</td><td>${a.by}</td><td>${a.event}</td><td class="num">${a.pid}</td><td>${a.application || '–'}</td><td>${a.dryRun ? `${a.result} (dry run)` : a.result}</td><td>${a.error ? `${a.reason}; ${a.error}` : a.reason}</td></tr>`,
        )}</tbody></table>`;

  const items =
    r.actionItems.length === 0
      ? html`<p class="muted">None.</p>`
      : html`<ol>${r.actionItems.map(
          (item) =>
            html`<li><strong>${item.title}</strong> <span class="muted">(${item.source})</span><br>${item.why}${
              item.command === null
                ? ''
                : html`<pre><code>${new Safe(escapeHtmlBlock(item.command))}</code></pre>`
            }</li>`,
        )}</ol>`;

  const page = html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'">
<meta name="referrer" content="no-referrer">
<title>Incident report: ${r.incident.title}</title>
<style>${new Safe(CSS)}</style>
</head>
<body>
<main>
<h1>Incident report: ${r.incident.title}</h1>
<p class="meta">${hBadge(r.incident.severity)} incident ${r.incident.id} · rule ${r.incident.ruleId} · database ${r.incident.database} · ${r.incident.state}</p>
<section><h2>Summary</h2><p>${r.summary}</p></section>
<section><h2>Impact</h2>${hFacts(r.impact.facts)}</section>
<section><h2>Timeline</h2>${timeline}</section>
<section><h2>Snapshots</h2>${snapshots}</section>
<section><h2>Root cause</h2><p><strong>${rc.title}</strong></p><p>${rc.summary}</p>${sites}${contributing}</section>
<section><h2>Trigger</h2><p>${r.trigger.text}</p>${hFacts(r.trigger.facts)}</section>
<section><h2>Detection</h2><p>${r.detection.text}</p></section>
<section><h2>Resolution</h2><p>${r.resolution.text}</p>${actions}</section>
<section><h2>Action items</h2>${items}</section>
<section><h2>Lessons learned</h2><ul>${r.lessons.map((l) => html`<li>${l}</li>`)}</ul></section>
</main>
</body>
</html>
`;
  return page.value;
}

// ---- rendering: JSON ----

export function renderReportJson(report: IncidentReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
