/**
 * The agent's shared vocabulary: what a watch tick observes, what alert rules emit, what an
 * incident is, and what notifiers are given. Modules that implement these: rules.ts (alert
 * rules), incidents.ts + store.ts (incident state machine, escalation, SQLite), notifiers/ (delivery),
 * report.ts (post-incident report), watch.ts (the loop).
 */
import type { PoolInspection } from '@pgwarden/pool';
import type { Diagnosis } from '../diagnose/index.js';
import type { Severity } from '../finding.js';
import type { Snapshot } from '../snapshot.js';

/** One database's state at one tick. */
export interface Observation {
  /** The configured name of the database (not its URL). */
  database: string;
  /** Epoch ms (from the agent's clock). */
  at: number;
  snapshot?: Snapshot;
  diagnosis?: Diagnosis;
  /** `inspect()` of application pools read over HTTP, with the URL they came from. */
  appPools?: { source: string; pools: PoolInspection[] }[];
  /** Set when the server could not be reached or refused the probe (53300 included). */
  unreachable?: { code: string; message: string };
}

/** A rule's change of state: it started firing, or it stopped. */
export interface AlertEvent {
  type: 'firing' | 'resolved';
  /** Stable rule id, e.g. "connections.usage", "server.unreachable". */
  ruleId: string;
  database: string;
  severity: Exclude<Severity, 'info'>;
  summary: string;
  /** The measured value that crossed (or left) the threshold. */
  value: number;
  at: number;
  /** pids involved, when the rule is about sessions. */
  pids?: number[];
  evidence?: unknown;
}

export type IncidentState = 'open' | 'acknowledged' | 'resolved';

export interface EscalationLevel {
  /** 1, 2, 3 … */
  level: number;
  /** Minutes after the incident opened. */
  afterMinutes: number;
  /** Who: "Database Team", "Infrastructure Lead", "VP of Engineering". */
  name: string;
  /** Ids of the notifiers that page this level. */
  notifiers: string[];
}

export interface Incident {
  id: string;
  ruleId: string;
  database: string;
  severity: Exclude<Severity, 'info'>;
  state: IncidentState;
  title: string;
  openedAt: number;
  acknowledgedAt: number | null;
  acknowledgedBy: string | null;
  resolvedAt: number | null;
  resolvedBy: string | null;
  /** Highest escalation level notified so far (0 = only the opening notification). */
  escalationLevel: number;
  /** The escalation policy as it was when the incident opened. */
  policy: EscalationLevel[];
  /** Since when the condition has been clear (auto-resolve timer), or null while firing. */
  clearSince: number | null;
  /** The latest alert summary (the title is the first one). Set by the incident manager. */
  summary?: string;
  /** The highest measured value (AlertEvent.value) seen while the incident was firing. */
  peakValue?: number;
}

export interface TimelineEntry {
  incidentId: string;
  at: number;
  kind:
    | 'opened'
    | 'updated'
    | 'escalated'
    | 'acknowledged'
    | 'action'
    | 'notification'
    | 'cleared'
    | 'resolved'
    | 'note';
  text: string;
  data?: unknown;
}

/** What a notifier is asked to send. */
export interface Notification {
  incidentId: string;
  event: 'opened' | 'escalated' | 'acknowledged' | 'resolved';
  level: number;
  severity: Exclude<Severity, 'info'>;
  database: string;
  title: string;
  summary: string;
  /** Stable across an incident's notifications (PagerDuty dedup_key). */
  dedupKey: string;
  /** Link to the incident in the agent's dashboard, when known. */
  url?: string;
  at: number;
}
