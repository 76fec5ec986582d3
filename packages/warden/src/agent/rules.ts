/**
 * Alert rules: when a condition seen in observations becomes an alert, and when the alert ends.
 *
 * Each rule measures one value per observation and says whether that value is in the firing zone
 * (`active`, value >= threshold) or in the clearing zone (`cleared`, value below a LOWER threshold).
 * Between the two zones (hysteresis band) a firing rule keeps firing, so a value hovering at the
 * threshold does not flap. Time windows on both sides (`forMillis`, `clearForMillis`) absorb spikes.
 *
 * Per (rule, database), the engine's state machine:
 *
 *   inactive --active--> pending --active for forMillis--> firing (emits 'firing')
 *   pending  --not active (band or clear)--> inactive, silently
 *   firing   --cleared--> clearing --cleared for clearForMillis--> inactive (emits 'resolved')
 *   clearing --active or band--> firing (clear window restarts next time), silently
 *   firing   --active with a higher severity--> firing (emits 'firing' again with that severity)
 *
 * An observation for which a rule has no data (its `measure` returns undefined: no snapshot because
 * the server is unreachable, no PgBouncer section, no application pools) is neither active nor clear:
 * a pending rule stays pending (the next active observation fires it once `forMillis` has passed since
 * it became pending), a firing rule keeps firing, and a clearing rule goes back to firing, because
 * the clear window must be continuous and observed.
 *
 * Time comes from the engine's Clock (the agent's clock; a FakeClock in tests), read once per
 * `observe()`; a rule only changes state when it is observed (no timers).
 */
import type { Clock } from '@pgwarden/pool';
import { type Diagnosis, diagnose } from '../diagnose/index.js';
import type { Finding, FindingId } from '../finding.js';
import type { PgBouncerPool, Snapshot } from '../snapshot.js';
import type { AlertEvent, Observation } from './types.js';

export type AlertSeverity = AlertEvent['severity'];

/** What a rule measured in one observation. */
export interface Measurement {
  /** The measured value (a fraction for usage, a count for sessions and waiters, 1/0 for reachability). */
  value: number;
  /** Firing condition: value >= the rule's threshold. */
  active: boolean;
  /** Clearing condition: value below the rule's (lower) clearing threshold. */
  cleared: boolean;
  /** One sentence describing the current value (used for both firing and resolved events). */
  summary: string;
  pids?: number[];
  evidence?: unknown;
  /**
   * Severity of this measurement when it differs from the rule's base severity (rules that follow a
   * finding's severity). A firing rule whose measurement severity rises re-emits 'firing'.
   */
  severity?: AlertSeverity;
}

export interface AlertRule {
  /** Stable id, e.g. "connections.usage"; also the AlertEvent's ruleId. */
  id: string;
  /** Base severity (used when a measurement does not carry its own). */
  severity: AlertSeverity;
  /** Continuous activity needed before the rule fires. */
  forMillis: number;
  /** Continuous clearing needed before a firing rule resolves. */
  clearForMillis: number;
  /** undefined: no data for this rule in this observation (never counts as clear). */
  measure(obs: Observation): Measurement | undefined;
}

export type RuleStatus = 'inactive' | 'pending' | 'firing' | 'clearing';

/** A rule's state for one database, as the dashboard may show it. */
export interface RuleState {
  ruleId: string;
  database: string;
  status: RuleStatus;
  /** When the current status began (pending: first active observation; clearing: first clear one). */
  since: number;
  /** When the rule fired (firing and clearing only). */
  firedAt: number | null;
  /** Highest severity emitted while firing (firing and clearing only). */
  severity: AlertSeverity | null;
  /** Last measured value, when there was data. */
  value: number | null;
  /** When the rule last had data. */
  lastSeen: number | null;
}

const RANK: Record<AlertSeverity, number> = { warning: 1, critical: 2 };

interface Entry {
  status: RuleStatus;
  since: number;
  firedAt: number | null;
  severity: AlertSeverity | null;
  value: number | null;
  lastSeen: number | null;
}

export class RuleEngine {
  readonly #rules: AlertRule[];
  readonly #clock: Clock;
  /** Keyed by database, then rule id. Inactive states are not kept. */
  readonly #states = new Map<string, Map<string, Entry>>();

  constructor(rules: AlertRule[], clock: Clock) {
    const seen = new Set<string>();
    for (const rule of rules) {
      if (seen.has(rule.id)) throw new Error(`duplicate alert rule id "${rule.id}"`);
      seen.add(rule.id);
      for (const key of ['forMillis', 'clearForMillis'] as const) {
        if (!Number.isFinite(rule[key]) || rule[key] < 0) {
          throw new RangeError(
            `alert rule "${rule.id}": ${key} must be a finite number >= 0, got ${rule[key]}`,
          );
        }
      }
    }
    this.#rules = [...rules];
    this.#clock = clock;
  }

  get rules(): readonly AlertRule[] {
    return this.#rules;
  }

  /** Feeds one database's observation to every rule; returns the events it caused, in rule order. */
  observe(obs: Observation): AlertEvent[] {
    const now = this.#clock.now();
    let byRule = this.#states.get(obs.database);
    if (!byRule) {
      byRule = new Map();
      this.#states.set(obs.database, byRule);
    }
    const events: AlertEvent[] = [];
    for (const rule of this.#rules) {
      const entry = byRule.get(rule.id) ?? {
        status: 'inactive',
        since: now,
        firedAt: null,
        severity: null,
        value: null,
        lastSeen: null,
      };
      const event = step(rule, entry, rule.measure(obs), now, obs.database);
      if (event) events.push(event);
      if (entry.status === 'inactive') byRule.delete(rule.id);
      else byRule.set(rule.id, entry);
    }
    if (byRule.size === 0) this.#states.delete(obs.database);
    return events;
  }

  /** Rules that are not inactive (pending, firing, clearing), per database. */
  states(database?: string): RuleState[] {
    const out: RuleState[] = [];
    for (const [db, byRule] of this.#states) {
      if (database !== undefined && db !== database) continue;
      for (const [ruleId, e] of byRule) out.push({ ruleId, database: db, ...e });
    }
    return out;
  }

  /** Drops every state of a database (it was removed from the configuration). Emits nothing. */
  forget(database: string): void {
    this.#states.delete(database);
  }
}

function step(
  rule: AlertRule,
  e: Entry,
  m: Measurement | undefined,
  now: number,
  database: string,
): AlertEvent | undefined {
  if (m === undefined) {
    // No data is not clear: a clear window must be observed without gaps.
    if (e.status === 'clearing') {
      e.status = 'firing';
      e.since = now;
    }
    return undefined;
  }
  e.value = m.value;
  e.lastSeen = now;
  const severity = m.severity ?? rule.severity;
  const event = (type: AlertEvent['type'], sev: AlertSeverity): AlertEvent => ({
    type,
    ruleId: rule.id,
    database,
    severity: sev,
    summary: m.summary,
    value: m.value,
    at: now,
    ...(m.pids ? { pids: m.pids } : {}),
    ...(m.evidence !== undefined ? { evidence: m.evidence } : {}),
  });

  if (e.status === 'inactive') {
    if (!m.active) return undefined;
    e.status = 'pending';
    e.since = now;
    // falls through to the pending check: forMillis 0 fires on the first active observation
  }
  if (e.status === 'pending') {
    if (!m.active) {
      e.status = 'inactive';
      return undefined;
    }
    if (now - e.since < rule.forMillis) return undefined;
    e.status = 'firing';
    e.since = now;
    e.firedAt = now;
    e.severity = severity;
    return event('firing', severity);
  }
  if (e.status === 'clearing') {
    if (m.cleared) {
      if (now - e.since < rule.clearForMillis) return undefined;
      return resolve(e, rule, event);
    }
    e.status = 'firing';
    e.since = now;
    // falls through: an active observation may also escalate
  }
  // firing
  if (m.active) {
    const current = e.severity ?? rule.severity;
    if (RANK[severity] > RANK[current]) {
      e.severity = severity;
      return event('firing', severity);
    }
    return undefined;
  }
  if (m.cleared) {
    e.status = 'clearing';
    e.since = now;
    if (rule.clearForMillis <= 0) return resolve(e, rule, event);
  }
  // in the hysteresis band: keep firing
  return undefined;
}

function resolve(
  e: Entry,
  rule: AlertRule,
  event: (type: AlertEvent['type'], sev: AlertSeverity) => AlertEvent,
): AlertEvent {
  const sev = e.severity ?? rule.severity;
  e.status = 'inactive';
  e.firedAt = null;
  e.severity = null;
  return event('resolved', sev);
}

// ---------------------------------------------------------------------------------------------
// Default rules
// ---------------------------------------------------------------------------------------------

/** Timing shared by every rule. */
export interface RuleTiming {
  /** false: the rule is left out of `defaultRules()`. */
  enabled: boolean;
  /** Continuous activity before firing, ms. */
  forMillis: number;
  /** Continuous clearing before resolving, ms. */
  clearForMillis: number;
}

/** A rule on a value: fires at value >= threshold, clears at value < clearBelow (<= threshold). */
export interface ThresholdRuleSettings extends RuleTiming {
  threshold: number;
  clearBelow: number;
}

/**
 * A rule on a diagnosis finding. `severity: 'finding'` follows the finding's severity (warning or
 * critical, as diagnose() decides); 'warning' or 'critical' pins it.
 */
export interface FindingRuleSettings extends ThresholdRuleSettings {
  severity: 'finding' | AlertSeverity;
}

/** Every default rule's settings, keyed by rule id (the config layer passes overrides of these). */
export interface RuleOptions {
  /** Fraction (0..1) of usable connection slots in use by client backends. */
  'connections.usage': ThresholdRuleSettings;
  'connections.usage.critical': ThresholdRuleSettings;
  /** Callers waiting for a connection, summed over every application pool observed. */
  'app_pool.waiting': ThresholdRuleSettings;
  /** Sessions idle in transaction past diagnosis' idleInTransactionSeconds. */
  'sessions.idle_in_transaction': FindingRuleSettings;
  /** Active queries past diagnosis' longRunningSeconds. */
  'sessions.long_running': FindingRuleSettings;
  /** Most sessions blocked (directly or not) by one root blocker. */
  'locks.blocking_chain': FindingRuleSettings;
  /** PgBouncer clients waiting for a server connection, summed over its pools. */
  'pgbouncer.clients_waiting': FindingRuleSettings;
  /** The server could not be reached or refused the probe; always critical. */
  'server.unreachable': RuleTiming;
}

export type RuleId = keyof RuleOptions;

/** Partial settings per rule, as a configuration file gives them. */
export type RuleOverrides = { [K in RuleId]?: Partial<RuleOptions[K]> };

const S = 1000;

/*
 * Default rules (every value configurable through RuleOverrides):
 *
 * | rule                          | severity                 | fires when                        | for  | clears when          | clearFor |
 * |-------------------------------|--------------------------|-----------------------------------|------|----------------------|----------|
 * | connections.usage             | warning                  | usage >= 75% of usable slots      | 30 s | usage < 70%          | 60 s     |
 * | connections.usage.critical    | critical                 | usage >= 90%                      | 10 s | usage < 85%          | 60 s     |
 * | app_pool.waiting              | warning                  | >= 1 caller waiting (all pools)   | 10 s | 0 waiting            | 30 s     |
 * | sessions.idle_in_transaction  | finding's (warn/crit)    | finding present, >= 1 session     | 30 s | finding gone         | 60 s     |
 * | sessions.long_running         | finding's (warn/crit)    | finding present, >= 1 query       | 30 s | finding gone         | 60 s     |
 * | locks.blocking_chain          | finding's (warn/crit)    | a root blocks >= 1 session        | 15 s | no chain             | 30 s     |
 * | pgbouncer.clients_waiting     | finding's (warn/crit)    | >= 1 PgBouncer client waiting     | 10 s | 0 waiting            | 30 s     |
 * | server.unreachable            | critical                 | obs.unreachable set               | 5 s  | a snapshot was taken | 10 s     |
 *
 * Severity follows diagnose() for the four finding rules, whose findings already weigh what makes
 * them critical (transaction or query age past terminateAfterSeconds, a stuck session that is a root
 * blocker, five or more blocked sessions, server usage >= 90%, PgBouncer's longest wait >= 5 s); a
 * firing rule re-emits 'firing' when it escalates and never de-escalates. Usage has one rule per
 * severity instead (each with its own band), unreachability is always critical, and application
 * pools waiting is a warning (the server-side rules say how bad it is).
 */

const DEFAULTS: RuleOptions = {
  'connections.usage': {
    enabled: true,
    threshold: 0.75,
    clearBelow: 0.7,
    forMillis: 30 * S,
    clearForMillis: 60 * S,
  },
  'connections.usage.critical': {
    enabled: true,
    threshold: 0.9,
    clearBelow: 0.85,
    // Two consecutive 1 s samples: at 90% of the usable slots the next burst fails to connect, so
    // the page must not wait; one sample alone is not enough to page on.
    forMillis: 2 * S,
    clearForMillis: 60 * S,
  },
  'app_pool.waiting': {
    enabled: true,
    threshold: 1,
    clearBelow: 1,
    forMillis: 10 * S,
    clearForMillis: 30 * S,
  },
  'sessions.idle_in_transaction': {
    enabled: true,
    severity: 'finding',
    threshold: 1,
    clearBelow: 1,
    forMillis: 30 * S,
    clearForMillis: 60 * S,
  },
  'sessions.long_running': {
    enabled: true,
    severity: 'finding',
    threshold: 1,
    clearBelow: 1,
    forMillis: 30 * S,
    clearForMillis: 60 * S,
  },
  'locks.blocking_chain': {
    enabled: true,
    severity: 'finding',
    threshold: 1,
    clearBelow: 1,
    forMillis: 15 * S,
    clearForMillis: 30 * S,
  },
  'pgbouncer.clients_waiting': {
    enabled: true,
    severity: 'finding',
    threshold: 1,
    clearBelow: 1,
    forMillis: 10 * S,
    clearForMillis: 30 * S,
  },
  'server.unreachable': { enabled: true, forMillis: 5 * S, clearForMillis: 10 * S },
};
for (const settings of Object.values(DEFAULTS)) Object.freeze(settings);

/** The defaults, frozen (see the table in the module's report / README). */
export const DEFAULT_RULE_OPTIONS: Readonly<RuleOptions> = Object.freeze(DEFAULTS);

const RULE_IDS = Object.keys(DEFAULT_RULE_OPTIONS) as RuleId[];

/**
 * Defaults merged with overrides and checked; errors name the offending key (`rules.<id>.<key>`).
 * Keys whose value is undefined are ignored. When a threshold is given without clearBelow, the
 * default hysteresis band is kept (75%/70% moved to 80% clears below 75%).
 */
export function resolveRuleOptions(overrides: RuleOverrides = {}): RuleOptions {
  for (const id of Object.keys(overrides)) {
    if (!(RULE_IDS as string[]).includes(id)) {
      throw new RangeError(`rules.${id}: unknown rule (known: ${RULE_IDS.join(', ')})`);
    }
  }
  const out = {} as Record<RuleId, RuleTiming>;
  for (const id of RULE_IDS) {
    const defaults = DEFAULT_RULE_OPTIONS[id] as unknown as Record<string, unknown>;
    const given = Object.fromEntries(
      Object.entries((overrides[id] ?? {}) as Record<string, unknown>).filter(([, v]) => v !== undefined),
    );
    for (const key of Object.keys(given)) {
      if (!(key in defaults)) {
        throw new RangeError(
          `rules.${id}.${key}: unknown setting (known: ${Object.keys(defaults).join(', ')})`,
        );
      }
    }
    const merged = { ...defaults, ...given } as unknown as RuleTiming & Partial<FindingRuleSettings>;
    if ('threshold' in given && !('clearBelow' in given) && typeof given.threshold === 'number') {
      const band = (defaults.threshold as number) - (defaults.clearBelow as number);
      merged.clearBelow = Math.max(0, given.threshold - band);
    }
    check(id, merged);
    out[id] = merged;
  }
  return out as unknown as RuleOptions;
}

function check(id: RuleId, s: RuleTiming & Partial<FindingRuleSettings>): void {
  const bad = (key: string, why: string, got: unknown) =>
    new RangeError(`rules.${id}.${key} ${why}, got ${JSON.stringify(got)}`);
  if (typeof s.enabled !== 'boolean') throw bad('enabled', 'must be true or false', s.enabled);
  for (const key of ['forMillis', 'clearForMillis'] as const) {
    if (typeof s[key] !== 'number' || !Number.isFinite(s[key]) || s[key] < 0) {
      throw bad(key, 'must be a number of milliseconds >= 0', s[key]);
    }
  }
  if ('threshold' in s) {
    for (const key of ['threshold', 'clearBelow'] as const) {
      const v = s[key];
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw bad(key, 'must be a number >= 0', v);
    }
    if ((s.clearBelow as number) > (s.threshold as number)) {
      throw bad('clearBelow', `must not exceed threshold (${s.threshold})`, s.clearBelow);
    }
    if (id.startsWith('connections.') && (s.threshold as number) <= 0) {
      throw bad('threshold', 'must be a fraction of usable connections above 0 (0.75 = 75%)', s.threshold);
    }
  }
  if ('severity' in s && !['finding', 'warning', 'critical'].includes(s.severity as string)) {
    throw bad('severity', 'must be "finding", "warning" or "critical"', s.severity);
  }
}

/** The agent's default rules, with overrides applied; disabled rules are left out. */
export function defaultRules(options: RuleOverrides = {}): AlertRule[] {
  const o = resolveRuleOptions(options);
  const rules: AlertRule[] = [
    usageRule('connections.usage', 'warning', o['connections.usage']),
    usageRule('connections.usage.critical', 'critical', o['connections.usage.critical']),
    appPoolWaitingRule(o['app_pool.waiting']),
    findingRule('sessions.idle_in_transaction', o['sessions.idle_in_transaction'], {
      value: (fs) => sum(fs.map((f) => f.pids.length)),
      clear: 'No session idle in transaction',
    }),
    findingRule('sessions.long_running', o['sessions.long_running'], {
      value: (fs) => sum(fs.map((f) => f.pids.length)),
      clear: 'No long-running query',
    }),
    findingRule('locks.blocking_chain', o['locks.blocking_chain'], {
      // A chain finding's pids are [root, ...blocked].
      value: (fs) => Math.max(0, ...fs.map((f) => f.pids.length - 1)),
      clear: 'No session blocked by a lock chain',
    }),
    findingRule('pgbouncer.clients_waiting', o['pgbouncer.clients_waiting'], {
      value: (fs) => sum(fs.map((f) => waitingClients(f.evidence.pools))),
      clear: 'No PgBouncer client waiting',
      hasData: (obs) => {
        const b = obs.snapshot?.pgbouncer;
        // Without a PgBouncer section (not configured, or its console failed) there is nothing to clear.
        return obs.snapshot === undefined || (b !== undefined && b.error === null);
      },
    }),
    unreachableRule(o['server.unreachable']),
  ];
  const enabled = new Set(RULE_IDS.filter((id) => o[id].enabled));
  return rules.filter((r) => enabled.has(r.id as RuleId));
}

const pct = (x: number) => `${Math.round(x * 100)}%`;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** Client backends as a share of usable slots (Snapshot.connections.usage). */
function usageRule(id: RuleId, severity: AlertSeverity, s: ThresholdRuleSettings): AlertRule {
  return {
    id,
    severity,
    forMillis: s.forMillis,
    clearForMillis: s.clearForMillis,
    measure(obs) {
      if (obs.unreachable || !obs.snapshot) return undefined;
      const c = obs.snapshot.connections;
      const value = c.usage;
      const active = value >= s.threshold;
      const cleared = value < s.clearBelow;
      const relation = active
        ? `at or above ${pct(s.threshold)}`
        : cleared
          ? `below ${pct(s.clearBelow)}`
          : `between ${pct(s.clearBelow)} and ${pct(s.threshold)}`;
      return {
        value,
        active,
        cleared,
        summary: `${c.total} of ${c.usable} usable connections in use (${pct(value)}, ${relation})`,
        evidence: {
          clientBackends: c.total,
          usable: c.usable,
          usage: Math.round(value * 1000) / 1000,
          byState: c.byState,
          threshold: s.threshold,
          clearBelow: s.clearBelow,
        },
      };
    },
  };
}

/** Callers queued in application pools (PoolInspection.counts.waiting), from obs.appPools. */
function appPoolWaitingRule(s: ThresholdRuleSettings): AlertRule {
  return {
    id: 'app_pool.waiting',
    severity: 'warning',
    forMillis: s.forMillis,
    clearForMillis: s.clearForMillis,
    measure(obs) {
      const sources = obs.appPools;
      if (!sources || sources.length === 0) return undefined;
      const pools = sources.flatMap((src) => src.pools.map((pool) => ({ source: src.source, pool })));
      const value = sum(pools.map(({ pool }) => pool.counts.waiting));
      const queued = pools.filter(({ pool }) => pool.counts.waiting > 0);
      const pids = [
        ...new Set(
          queued.flatMap(({ pool }) =>
            pool.checkouts.map((c) => c.pid).filter((p): p is number => p !== undefined),
          ),
        ),
      ];
      const names = queued.map(({ pool }) => pool.pool).join(', ');
      return {
        value,
        active: value >= s.threshold,
        cleared: value < s.clearBelow,
        summary:
          value === 0
            ? `No caller waiting in ${plural(pools.length, 'application pool', 'application pools')}`
            : `${plural(value, 'caller', 'callers')} waiting for a connection in application pool${queued.length === 1 ? '' : 's'} ${names}`,
        pids,
        evidence: {
          pools: queued.map(({ source, pool }) => ({
            source,
            pool: pool.pool,
            waiting: pool.counts.waiting,
            active: pool.counts.active,
            total: pool.counts.total,
            capacity: pool.settings.max + pool.settings.maxOverflow,
            usage: pool.usage,
            breaker: pool.breaker,
            longestWaitMillis: Math.max(0, ...pool.waiters.map((w) => w.waitedMillis)),
            // The longest-held checkouts: who holds the pool's connections.
            checkouts: pool.checkouts.slice(0, 5).map((c) => ({
              pid: c.pid,
              site: c.site,
              heldMillis: c.heldMillis,
              leakSuspected: c.leakSuspected,
              lastQuery: c.lastQuery,
            })),
          })),
        },
      };
    },
  };
}

const diagnosed = new WeakMap<Snapshot, Diagnosis>();

/** The observation's diagnosis; computed with default thresholds when the agent did not attach one. */
function diagnosisOf(obs: Observation): Diagnosis | undefined {
  if (obs.diagnosis) return obs.diagnosis;
  if (!obs.snapshot) return undefined;
  let d = diagnosed.get(obs.snapshot);
  if (!d) {
    d = diagnose(obs.snapshot);
    diagnosed.set(obs.snapshot, d);
  }
  return d;
}

function findingRule(
  id: FindingId & RuleId,
  s: FindingRuleSettings,
  how: { value: (findings: Finding[]) => number; clear: string; hasData?: (obs: Observation) => boolean },
): AlertRule {
  return {
    id,
    severity: s.severity === 'finding' ? 'warning' : s.severity,
    forMillis: s.forMillis,
    clearForMillis: s.clearForMillis,
    measure(obs) {
      if (obs.unreachable) return undefined;
      const diagnosis = diagnosisOf(obs);
      if (!diagnosis) return undefined;
      const findings = diagnosis.findings
        .filter((f) => f.id === id && f.severity !== 'info')
        .sort((a, b) => severityRank(b) - severityRank(a) || b.score - a.score);
      if (findings.length === 0 && how.hasData && !how.hasData(obs)) return undefined;
      const value = findings.length === 0 ? 0 : how.value(findings);
      const worst = findings[0];
      const severity: AlertSeverity =
        s.severity !== 'finding' ? s.severity : worst?.severity === 'critical' ? 'critical' : 'warning';
      return {
        value,
        active: worst !== undefined && value >= s.threshold,
        cleared: value < s.clearBelow,
        summary: worst
          ? `${worst.title}${findings.length > 1 ? ` (and ${findings.length - 1} more)` : ''}`
          : how.clear,
        pids: [...new Set(findings.flatMap((f) => f.pids))],
        evidence: {
          findings: findings.map((f) => ({
            id: f.id,
            severity: f.severity,
            title: f.title,
            summary: f.summary,
            evidence: f.evidence,
            actions: f.actions,
          })),
        },
        severity,
      };
    },
  };
}

function severityRank(f: Finding): number {
  return f.severity === 'critical' ? 2 : f.severity === 'warning' ? 1 : 0;
}

function waitingClients(pools: unknown): number {
  if (!Array.isArray(pools)) return 0;
  return sum(pools.map((p: Partial<PgBouncerPool>) => (typeof p.clWaiting === 'number' ? p.clWaiting : 0)));
}

/** Value 1 while the server is unreachable, 0 once a snapshot proves it reachable. Always critical. */
function unreachableRule(s: RuleTiming): AlertRule {
  return {
    id: 'server.unreachable',
    severity: 'critical',
    forMillis: s.forMillis,
    clearForMillis: s.clearForMillis,
    measure(obs) {
      if (obs.unreachable) {
        const full = obs.unreachable.code === '53300';
        return {
          value: 1,
          active: true,
          cleared: false,
          summary: full
            ? `Server refused pgwarden's connection: too many clients (53300): ${obs.unreachable.message}`
            : `Server unreachable (${obs.unreachable.code}): ${obs.unreachable.message}`,
          evidence: { code: obs.unreachable.code, message: obs.unreachable.message },
        };
      }
      if (!obs.snapshot) return undefined;
      return { value: 0, active: false, cleared: true, summary: 'Server reachable' };
    },
  };
}
