/**
 * The incident state machine: alert events open, update and clear incidents; people acknowledge
 * and resolve them; `tick()` escalates and auto-resolves.
 *
 *   firing ──▶ open ──acknowledge──▶ acknowledged
 *               │  ╲                     │
 *               │   ╲── resolve / auto ──┴──▶ resolved (final: a new firing opens a new incident)
 *
 * One live incident per (rule, database). All state is in the Store and every timer is derived
 * from stored timestamps (openedAt, escalationLevel, clearSince) each tick, so a new manager over
 * the same store file continues where a stopped one left off: escalations that fell due while the
 * agent was down are sent once, when it comes back.
 *
 * Notifications are dispatched after the state that records them has been committed: a crash can
 * lose a notification but never repeat one. The notify callback is not awaited by the state
 * machine (a slow webhook must not stall the watch loop); `drain()` waits for those in flight.
 */
import { type Clock, systemClock } from '@pgwarden/pool';
import type { Snapshot } from '../snapshot.js';
import type { Store } from './store.js';
import type { AlertEvent, EscalationLevel, Incident, Notification, TimelineEntry } from './types.js';

/** The runbook's escalation: Database Team after 15 min, Infrastructure Lead after 30, VP after 60. */
export const DEFAULT_ESCALATION_POLICY: readonly EscalationLevel[] = Object.freeze([
  Object.freeze({ level: 1, afterMinutes: 15, name: 'Database Team', notifiers: ['database-team'] }),
  Object.freeze({ level: 2, afterMinutes: 30, name: 'Infrastructure Lead', notifiers: ['infra-lead'] }),
  Object.freeze({ level: 3, afterMinutes: 60, name: 'VP of Engineering', notifiers: ['vp-engineering'] }),
]) as readonly EscalationLevel[];

export const DEFAULT_AUTO_RESOLVE_MILLIS = 5 * 60_000;

/** Who resolves an incident whose condition stayed clear. */
export const AUTO_RESOLVER = 'pgwarden';

export type NotifyFunction = (incident: Incident, notification: Notification) => Promise<void> | void;

export interface IncidentManagerOptions {
  store: Store;
  clock?: Clock;
  /** Default: DEFAULT_ESCALATION_POLICY (the runbook's three levels). */
  policy?: readonly EscalationLevel[];
  /** How long a condition must stay clear before its incident resolves itself. Default 5 min. */
  autoResolveAfterMillis?: number;
  notify: NotifyFunction;
  /** Link to an incident in the dashboard, put in notifications as `url`. */
  incidentUrl?: (incidentId: string) => string | undefined;
  /** Told when a notify call throws or rejects (also written to the incident's timeline). */
  onNotifyError?: (error: unknown, notification: Notification) => void;
}

export type IncidentErrorCode = 'not_found' | 'invalid_transition';

/** A refused operation: an unknown incident id, or a transition the state machine does not allow. */
export class IncidentError extends Error {
  override readonly name = 'IncidentError';
  constructor(
    readonly code: IncidentErrorCode,
    message: string,
    readonly incidentId: string,
  ) {
    super(message);
  }
}

export interface TickResult {
  /** Escalations sent this tick, in order. */
  escalated: { incidentId: string; level: number }[];
  /** Incidents auto-resolved this tick. */
  resolved: string[];
}

const SEVERITY_RANK = { warning: 1, critical: 2 } as const;

function validatePolicy(policy: readonly EscalationLevel[]): EscalationLevel[] {
  const copy: EscalationLevel[] = policy.map((l) => ({
    level: l.level,
    afterMinutes: l.afterMinutes,
    name: l.name,
    notifiers: [...l.notifiers],
  }));
  copy.sort((a, b) => a.level - b.level);
  let previous: EscalationLevel | undefined;
  for (const l of copy) {
    if (!Number.isInteger(l.level) || l.level < 1) {
      throw new RangeError(`escalation policy: level must be an integer >= 1, got ${l.level}`);
    }
    if (!Number.isFinite(l.afterMinutes) || l.afterMinutes < 0) {
      throw new RangeError(
        `escalation policy: level ${l.level} afterMinutes must be >= 0, got ${l.afterMinutes}`,
      );
    }
    if (previous && previous.level === l.level) {
      throw new RangeError(`escalation policy: level ${l.level} appears twice`);
    }
    if (previous && l.afterMinutes < previous.afterMinutes) {
      throw new RangeError(
        `escalation policy: level ${l.level} (after ${l.afterMinutes} min) comes before level ${previous.level} (after ${previous.afterMinutes} min)`,
      );
    }
    previous = l;
  }
  return copy;
}

/** The notifiers an escalation pages: its level's, in the policy the incident opened with. */
export function notifiersFor(incident: Incident, notification: Notification): string[] {
  if (notification.event !== 'escalated') return [];
  return [...(incident.policy.find((l) => l.level === notification.level)?.notifiers ?? [])];
}

function minutes(millis: number): string {
  const m = millis / 60_000;
  return Number.isInteger(m) ? `${m} min` : `${Math.round(millis / 1000)} s`;
}

export class IncidentManager {
  readonly store: Store;
  readonly clock: Clock;
  readonly autoResolveAfterMillis: number;
  readonly #notify: NotifyFunction;
  readonly #incidentUrl: ((id: string) => string | undefined) | undefined;
  readonly #onNotifyError: ((error: unknown, notification: Notification) => void) | undefined;
  #policy: EscalationLevel[];
  readonly #pending = new Set<Promise<void>>();

  constructor(options: IncidentManagerOptions) {
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.#policy = validatePolicy(options.policy ?? DEFAULT_ESCALATION_POLICY);
    const auto = options.autoResolveAfterMillis ?? DEFAULT_AUTO_RESOLVE_MILLIS;
    if (!Number.isFinite(auto) || auto < 0) {
      throw new RangeError(`autoResolveAfterMillis must be >= 0, got ${auto}`);
    }
    this.autoResolveAfterMillis = auto;
    this.#notify = options.notify;
    this.#incidentUrl = options.incidentUrl;
    this.#onNotifyError = options.onNotifyError;
  }

  /** The policy new incidents get (a copy). Incidents already open keep the one they opened with. */
  get policy(): EscalationLevel[] {
    return validatePolicy(this.#policy);
  }

  set policy(policy: readonly EscalationLevel[]) {
    this.#policy = validatePolicy(policy);
  }

  #now(): number {
    return Math.floor(this.clock.now());
  }

  #get(id: string): Incident {
    const incident = this.store.incident(id);
    if (!incident) throw new IncidentError('not_found', `no incident ${JSON.stringify(id)}`, id);
    return incident;
  }

  #timeline(incidentId: string, at: number, kind: TimelineEntry['kind'], text: string, data?: unknown): void {
    const entry: TimelineEntry = { incidentId, at, kind, text };
    if (data !== undefined) entry.data = data;
    this.store.addTimeline(entry);
  }

  // -- alert events ----------------------------------------------------------------------------------

  /**
   * Applies a rule's event. Firing: opens an incident (or updates the live one). Resolved: starts
   * the live incident's auto-resolve timer. Returns the incident concerned, or undefined for a
   * resolved event with no live incident.
   */
  onAlert(event: AlertEvent, snapshot?: Snapshot): Incident | undefined {
    const now = this.#now();
    const live = this.store.openIncidentFor(event.ruleId, event.database);
    if (event.type === 'resolved') {
      if (!live) return undefined;
      if (live.clearSince !== null) return live;
      const cleared: Incident = { ...live, clearSince: now };
      this.store.transaction(() => {
        this.store.updateIncident(cleared);
        this.#timeline(
          live.id,
          now,
          'cleared',
          `Condition clear: ${event.summary} (resolves in ${minutes(this.autoResolveAfterMillis)} unless it comes back)`,
          { value: event.value },
        );
      });
      return cleared;
    }
    if (!live) return this.#open(event, now, snapshot);
    return this.#update(live, event, now, snapshot);
  }

  #open(event: AlertEvent, now: number, snapshot: Snapshot | undefined): Incident {
    const policy = validatePolicy(this.#policy);
    const incident: Incident = this.store.transaction(() => {
      const created: Incident = {
        id: this.store.nextIncidentId(now),
        ruleId: event.ruleId,
        database: event.database,
        severity: event.severity,
        state: 'open',
        title: event.summary,
        openedAt: now,
        acknowledgedAt: null,
        acknowledgedBy: null,
        resolvedAt: null,
        resolvedBy: null,
        escalationLevel: 0,
        policy,
        clearSince: null,
        summary: event.summary,
        peakValue: event.value,
      };
      this.store.insertIncident(created);
      if (snapshot) this.store.saveSnapshot(created.id, 'open', snapshot, { at: now, value: event.value });
      this.#timeline(created.id, now, 'opened', `Opened (${event.severity}): ${event.summary}`, {
        ruleId: event.ruleId,
        value: event.value,
        pids: event.pids,
        evidence: event.evidence,
        policy,
      });
      return created;
    });
    this.#send(incident, 'opened', 0, now);
    return incident;
  }

  #update(live: Incident, event: AlertEvent, now: number, snapshot: Snapshot | undefined): Incident {
    const raised = SEVERITY_RANK[event.severity] > SEVERITY_RANK[live.severity];
    const newPeak = live.peakValue === undefined || event.value > live.peakValue;
    const updated: Incident = {
      ...live,
      severity: raised ? event.severity : live.severity,
      clearSince: null,
      summary: event.summary,
      peakValue: newPeak ? event.value : live.peakValue,
    };
    this.store.transaction(() => {
      this.store.updateIncident(updated);
      if (newPeak && snapshot)
        this.store.saveSnapshot(live.id, 'peak', snapshot, { at: now, value: event.value });
      const changes: string[] = [];
      if (live.clearSince !== null)
        changes.push(`condition back after ${minutes(now - live.clearSince)} clear`);
      if (raised) changes.push(`severity raised to ${event.severity}`);
      if (changes.length > 0) {
        this.#timeline(live.id, now, 'updated', `${changes.join('; ')}: ${event.summary}`, {
          value: event.value,
          severity: event.severity,
          pids: event.pids,
        });
      }
    });
    return updated;
  }

  // -- people ----------------------------------------------------------------------------------------

  /** open → acknowledged: stops escalation. Committed durably (fsynced) before it returns. */
  acknowledge(id: string, by: string): Incident {
    const now = this.#now();
    const acked = this.store.transaction(
      () => {
        const incident = this.#get(id);
        if (incident.state !== 'open') {
          const detail =
            incident.state === 'acknowledged'
              ? `already acknowledged by ${incident.acknowledgedBy ?? 'someone'}`
              : `resolved by ${incident.resolvedBy ?? 'someone'}; a resolved incident is final`;
          throw new IncidentError(
            'invalid_transition',
            `cannot acknowledge incident ${id}: it is ${detail}`,
            id,
          );
        }
        const next: Incident = {
          ...incident,
          state: 'acknowledged',
          acknowledgedAt: now,
          acknowledgedBy: by,
        };
        this.store.updateIncident(next);
        this.#timeline(id, now, 'acknowledged', `Acknowledged by ${by}`, { by });
        return next;
      },
      { durable: true },
    );
    this.#send(acked, 'acknowledged', acked.escalationLevel, now);
    return acked;
  }

  /** open | acknowledged → resolved (final). Committed durably before it returns. */
  resolve(id: string, by: string, reason: string): Incident {
    return this.#resolve(id, by, reason, this.#now(), true);
  }

  #resolve(id: string, by: string, reason: string, now: number, durable: boolean): Incident {
    const resolved = this.store.transaction(
      () => {
        const incident = this.#get(id);
        if (incident.state === 'resolved') {
          throw new IncidentError(
            'invalid_transition',
            `cannot resolve incident ${id}: it was already resolved by ${incident.resolvedBy ?? 'someone'}`,
            id,
          );
        }
        const next: Incident = { ...incident, state: 'resolved', resolvedAt: now, resolvedBy: by };
        this.store.updateIncident(next);
        this.#timeline(id, now, 'resolved', `Resolved by ${by}: ${reason}`, { by, reason });
        return next;
      },
      { durable },
    );
    this.#send(resolved, 'resolved', resolved.escalationLevel, now);
    return resolved;
  }

  /** A remedy action (or refusal) on the incident's timeline. */
  recordAction(incidentId: string, text: string, data?: unknown): void {
    const now = this.#now();
    this.store.transaction(() => {
      this.#get(incidentId);
      this.#timeline(incidentId, now, 'action', text, data);
    });
  }

  /** A free-text note on the incident's timeline. */
  addNote(incidentId: string, text: string, by?: string): void {
    const now = this.#now();
    this.store.transaction(() => {
      this.#get(incidentId);
      this.#timeline(incidentId, now, 'note', by ? `${by}: ${text}` : text, by ? { by } : undefined);
    });
  }

  // -- time ------------------------------------------------------------------------------------------

  /**
   * Called every second by the watch loop. Escalates open (unacknowledged, still firing) incidents to
   * every level whose time has come and that was not notified yet, and resolves incidents whose
   * condition has been clear for `autoResolveAfterMillis`. Everything is derived from the store.
   */
  tick(): TickResult {
    const now = this.#now();
    const result: TickResult = { escalated: [], resolved: [] };
    for (const incident of this.store.incidents({ state: ['open', 'acknowledged'] }).reverse()) {
      if (incident.clearSince !== null) {
        if (now - incident.clearSince >= this.autoResolveAfterMillis) {
          const reason = `condition clear for ${minutes(now - incident.clearSince)}`;
          this.#resolve(incident.id, AUTO_RESOLVER, reason, now, false);
          result.resolved.push(incident.id);
        }
        // A cleared condition does not page the next level; if it comes back, escalation resumes.
        continue;
      }
      if (incident.state !== 'open') continue;
      const due = incident.policy.filter(
        (l) => l.level > incident.escalationLevel && incident.openedAt + l.afterMinutes * 60_000 <= now,
      );
      if (due.length === 0) continue;
      const top = due.reduce((a, b) => (b.level > a.level ? b : a));
      const escalated: Incident = { ...incident, escalationLevel: top.level };
      this.store.transaction(() => {
        this.store.updateIncident(escalated);
        for (const l of due) {
          this.#timeline(
            incident.id,
            now,
            'escalated',
            `Escalated to level ${l.level} (${l.name}, after ${l.afterMinutes} min): ${l.notifiers.join(', ') || 'no notifiers'}`,
            { level: l.level, name: l.name, notifiers: l.notifiers, afterMinutes: l.afterMinutes },
          );
        }
      });
      for (const l of due) {
        this.#send(escalated, 'escalated', l.level, now);
        result.escalated.push({ incidentId: incident.id, level: l.level });
      }
    }
    return result;
  }

  // -- notifications ---------------------------------------------------------------------------------

  /**
   * One notify call per event (and per level, for escalations). The callback routes it: an
   * 'escalated' notification goes to `notifiersFor(incident, notification)`, the level's notifiers in
   * the incident's own policy; the other events go wherever the agent sends them.
   */
  #send(incident: Incident, event: Notification['event'], level: number, at: number): void {
    const notification: Notification = {
      incidentId: incident.id,
      event,
      level,
      severity: incident.severity,
      database: incident.database,
      title: incident.title,
      summary: incident.summary ?? incident.title,
      dedupKey: `pgwarden/${incident.database}/${incident.ruleId}/${incident.id}`,
      at,
    };
    const url = this.#incidentUrl?.(incident.id);
    if (url !== undefined) notification.url = url;
    let result: Promise<void> | void;
    try {
      result = this.#notify(structuredClone(incident), notification);
    } catch (err) {
      this.#notifyFailed(err, notification);
      return;
    }
    if (result && typeof (result as Promise<void>).then === 'function') {
      const pending: Promise<void> = Promise.resolve(result)
        .catch((err: unknown) => this.#notifyFailed(err, notification))
        .finally(() => this.#pending.delete(pending));
      this.#pending.add(pending);
    }
  }

  #notifyFailed(error: unknown, notification: Notification): void {
    try {
      this.#onNotifyError?.(error, notification);
    } catch {
      // a failing error handler must not break the state machine
    }
    try {
      if (this.store.closed) return;
      const message = error instanceof Error ? error.message : String(error);
      this.#timeline(
        notification.incidentId,
        this.#now(),
        'notification',
        `Notification '${notification.event}' (level ${notification.level}) failed: ${message}`,
        { event: notification.event, level: notification.level, error: message },
      );
    } catch {
      // the store may be closing; the notifier's own records keep the failure
    }
  }

  /** Waits for the notify calls in flight (shutdown, tests). Never rejects. */
  async drain(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }
}
