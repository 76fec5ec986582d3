/**
 * The watch loop: every interval, for every database, one observation (snapshot over the agent's
 * own held connection, PgBouncer, application pools), then alert rules, incidents, escalation and
 * — in `auto` mode — the remedy engine within its limits. A server that is unreachable or full is
 * an observation (server.unreachable), never a crash; the probe reconnects with backoff.
 */
import type { PoolInspection } from '@pgwarden/pool';
import { type Clock, systemClock } from '@pgwarden/pool';
import { type Thresholds, diagnose } from '../diagnose/index.js';
import { isProbeError } from '../probe/errors.js';
import { probePgBouncer } from '../probe/pgbouncer.js';
import { PostgresProbe } from '../probe/postgres.js';
import { describeOutcome, executePlan } from '../remedy/executor.js';
import { DEFAULT_POLICY, type RemedyPolicy, type RemedyRequest, planRemedies } from '../remedy/planner.js';
import type { Snapshot } from '../snapshot.js';
import { type AgentConfig, ConfigError, escalationPolicy, secret } from './config.js';
import { IncidentManager } from './incidents.js';
import { type Notifier, type NotifierConfig, createNotifier, deliver } from './notifiers/index.js';
import { RuleEngine, type RuleOverrides, type RuleState, defaultRules } from './rules.js';
import { Store } from './store.js';
import type { AlertEvent, Incident, Notification, Observation } from './types.js';

interface Watched {
  name: string;
  url: string;
  pgbouncer: string | undefined;
  appPools: string[];
  appPoolsToken: string | undefined;
  probe: PostgresProbe;
  /** This agent holds the database's advisory lock: it is the one that acts (remedies, pages). */
  leader: boolean;
  /** Reconnect backoff: no attempt before this time. */
  retryAt: number;
  failures: number;
}

export interface WatchOptions {
  config: AgentConfig;
  env?: Record<string, string | undefined>;
  clock?: Clock;
  log?: (line: string) => void;
  /** Overrides config.store (tests use ':memory:'). */
  storePath?: string;
}

/** The advisory lock (two int4 keys) whose holder leads: "pgwd" and 1. */
const LEADER_LOCK = [0x70677764, 1] as const;

/** Rules whose incidents the remedy engine may act on, and the request it makes for each. */
const REMEDIABLE: Record<string, (c: AgentConfig) => RemedyRequest> = {
  'sessions.idle_in_transaction': (c) => ({
    olderThanSeconds: c.remedies.idleInTransactionOlderThan / 1000,
    state: 'idle-in-transaction',
  }),
  'sessions.long_running': (c) => ({ olderThanSeconds: c.remedies.activeOlderThan / 1000, state: 'active' }),
  'locks.blocking_chain': (c) => ({
    olderThanSeconds: c.remedies.rootBlockerOlderThan / 1000,
    rootBlockers: true,
  }),
};

export class Watcher {
  readonly store: Store;
  readonly incidents: IncidentManager;
  readonly latest = new Map<string, Observation>();
  private readonly databases: Watched[];
  private readonly engine: RuleEngine;
  private readonly notifiers: Map<string, Notifier>;
  private readonly clock: Clock;
  private readonly log: (line: string) => void;
  private readonly policy: RemedyPolicy;
  private readonly thresholds: Partial<Thresholds>;
  private timer: ReturnType<Clock['setTimeout']> | undefined;
  private running = false;
  private ticking: Promise<void> | undefined;

  constructor(private readonly options: WatchOptions) {
    const { config } = options;
    const env = options.env ?? process.env;
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? ((line) => process.stdout.write(`${line}\n`));
    this.databases = config.databases.map((db) => {
      const url = secret(db.url, db.urlEnv, env, `databases.${db.name}.url`) as string;
      return {
        name: db.name,
        url,
        pgbouncer: secret(db.pgbouncer, db.pgbouncerEnv, env, `databases.${db.name}.pgbouncer`),
        appPools: db.appPools,
        appPoolsToken: secret(
          db.appPoolsToken,
          db.appPoolsTokenEnv,
          env,
          `databases.${db.name}.appPoolsToken`,
        ),
        probe: new PostgresProbe(url, { statementTimeoutMillis: 5000, connectTimeoutMillis: 3000 }),
        leader: false,
        retryAt: 0,
        failures: 0,
      };
    });
    this.notifiers = new Map(
      config.notifiers.map((n) => [n.id, createNotifier(resolveNotifierSecrets(n, env))] as const),
    );
    this.store = new Store(options.storePath ?? config.store);
    this.engine = new RuleEngine(
      defaultRules({
        ...(config.rules.overrides as RuleOverrides),
        'connections.usage': {
          ...(config.rules.overrides?.['connections.usage'] as object),
          threshold: config.rules.usageWarning,
        },
        'connections.usage.critical': {
          ...(config.rules.overrides?.['connections.usage.critical'] as object),
          threshold: config.rules.usageCritical,
        },
      } as RuleOverrides),
      this.clock,
    );
    this.incidents = new IncidentManager({
      store: this.store,
      clock: this.clock,
      policy: escalationPolicy(config),
      autoResolveAfterMillis: config.autoResolveAfter,
      notify: (incident, notification) => this.notify(incident, notification),
    });
    this.thresholds = {};
    if (config.rules.longRunning !== undefined)
      this.thresholds.longRunningSeconds = config.rules.longRunning / 1000;
    if (config.rules.idleInTransaction !== undefined) {
      this.thresholds.idleInTransactionSeconds = config.rules.idleInTransaction / 1000;
    }
    if (config.rules.usageWarning !== undefined) this.thresholds.usageWarning = config.rules.usageWarning;
    if (config.rules.usageCritical !== undefined) this.thresholds.usageCritical = config.rules.usageCritical;
    this.policy = {
      ...DEFAULT_POLICY,
      protectedUsers: config.remedies.protectedUsers,
      protectedApplications: config.remedies.protectedApplications,
      allowSuperusers: config.remedies.allowSuperusers,
      maxSessionsPerRun: config.remedies.maxSessionsPerRun,
      maxShareOfClients: config.remedies.maxShareOfClients,
      maxActionsPerHour: config.remedies.maxActionsPerHour,
      graceMillis: config.remedies.grace,
    };
  }

  get mode(): AgentConfig['mode'] {
    return this.options.config.mode;
  }

  get databaseNames(): string[] {
    return this.databases.map((d) => d.name);
  }

  /** Connects to every database (a failure is an observation, not an error) and starts ticking. */
  async start(): Promise<void> {
    this.running = true;
    await Promise.all(this.databases.map((db) => db.probe.connect().catch(() => undefined)));
    await this.tick();
    this.schedule();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.clock.clearTimeout(this.timer);
    await this.ticking;
    await Promise.all(this.databases.map((db) => db.probe.close()));
    this.store.close();
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = this.clock.setTimeout(() => {
      this.tick().finally(() => this.schedule());
    }, this.options.config.interval);
  }

  /** One round: observe every database, evaluate rules, move incidents, remediate. */
  async tick(): Promise<void> {
    const round = (async () => {
      const observations = await Promise.all(this.databases.map((db) => this.observe(db)));
      for (const obs of observations) {
        this.latest.set(obs.database, obs);
        if (obs.snapshot) this.recordSample(obs);
        for (const event of this.engine.observe(obs)) await this.onEvent(event, obs);
        if (this.mode === 'auto') await this.remediateOpen(obs);
      }
      await this.incidents.tick();
    })();
    this.ticking = round;
    try {
      await round;
    } catch (err) {
      this.log(`pgwarden watch: tick failed: ${(err as Error).message}`);
    }
  }

  private async observe(db: Watched): Promise<Observation> {
    const at = this.clock.now();
    const obs: Observation = { database: db.name, at };
    if (at < db.retryAt) {
      obs.unreachable = { code: 'backoff', message: `reconnecting (attempt ${db.failures + 1})` };
      return obs;
    }
    try {
      let snapshot: Snapshot = await db.probe.snapshot();
      if (db.pgbouncer) {
        try {
          snapshot = { ...snapshot, pgbouncer: await probePgBouncer(db.pgbouncer) };
        } catch (err) {
          snapshot = {
            ...snapshot,
            pgbouncer: { pools: [], stats: {}, servers: [], error: (err as Error).message },
          };
        }
      }
      db.failures = 0;
      await this.elect(db);
      obs.snapshot = snapshot;
      obs.diagnosis = diagnose(snapshot, this.thresholds);
    } catch (err) {
      db.failures++;
      db.leader = false;
      // Exponential backoff: 1 s, 2 s, 4 s … up to 30 s between reconnection attempts.
      db.retryAt = at + Math.min(30_000, 1000 * 2 ** Math.min(5, db.failures - 1));
      obs.unreachable = {
        code: isProbeError(err) ? err.code : 'error',
        message: (err as Error).message,
      };
    }
    if (db.appPools.length > 0) obs.appPools = await this.readAppPools(db);
    return obs;
  }

  /**
   * Two agents on one database: exactly one acts. The leader holds a session-level advisory lock on
   * its own probe connection; when it dies, the server drops the lock with its connection and the
   * other agent takes it at its next tick. A reconnected probe starts as a follower again.
   */
  private async elect(db: Watched): Promise<void> {
    if (!db.probe.connected) {
      db.leader = false;
      return;
    }
    const held = await db.probe.execute<{ held: boolean }>(
      "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = $1 AND objid = $2 AND granted) AS held",
      [LEADER_LOCK[0], LEADER_LOCK[1]],
    );
    if (held.rows[0]?.held) {
      db.leader = true;
      return;
    }
    const got = await db.probe.execute<{ ok: boolean }>(
      'SELECT pg_try_advisory_lock($1::int, $2::int) AS ok',
      [LEADER_LOCK[0], LEADER_LOCK[1]],
    );
    const leader = got.rows[0]?.ok === true;
    if (leader && !db.leader) this.log(`pgwarden watch: leading on ${db.name}`);
    db.leader = leader;
  }

  /** The alert rules that are pending, firing or clearing now (all databases, or one). */
  ruleStates(database?: string): RuleState[] {
    return this.engine.states(database);
  }

  /** Whether this agent acts on a database (it is the leader there). */
  isLeader(database: string): boolean {
    return this.databases.find((d) => d.name === database)?.leader ?? false;
  }

  private async readAppPools(db: Watched): Promise<{ source: string; pools: PoolInspection[] }[]> {
    const out: { source: string; pools: PoolInspection[] }[] = [];
    await Promise.all(
      db.appPools.map(async (source) => {
        try {
          const res = await fetch(source, {
            headers: db.appPoolsToken ? { authorization: `Bearer ${db.appPoolsToken}` } : {},
            signal: AbortSignal.timeout(1000),
          });
          if (!res.ok) return;
          const body = (await res.json()) as { pools?: PoolInspection[] };
          out.push({ source, pools: body.pools ?? [] });
        } catch {
          // An application that does not answer has no pools to show this tick.
        }
      }),
    );
    return out;
  }

  private recordSample(obs: Observation): void {
    const s = obs.snapshot as Snapshot;
    this.store.addSample({
      database: obs.database,
      at: obs.at,
      usage: s.connections.usage,
      total: s.connections.total,
      usable: s.connections.usable,
      waiting: (obs.appPools ?? []).reduce(
        (n, a) => n + a.pools.reduce((m, p) => m + p.counts.waiting, 0),
        0,
      ),
    });
  }

  private async onEvent(event: AlertEvent, obs: Observation): Promise<void> {
    this.log(`pgwarden watch: ${event.type} ${event.ruleId} on ${event.database}: ${event.summary}`);
    const incident = await this.incidents.onAlert(event, obs.snapshot);
    if (
      !incident ||
      event.type !== 'firing' ||
      !obs.snapshot ||
      this.mode !== 'suggest' ||
      !this.isLeader(obs.database)
    )
      return;
    const request = REMEDIABLE[event.ruleId]?.(this.options.config);
    if (request) await this.remediate(incident, request, obs);
  }

  /**
   * auto: every tick, the open incidents this database has for remediable rules get the remedy
   * engine (sessions may only become old enough, or the limits allow more, on a later tick).
   */
  private async remediateOpen(obs: Observation): Promise<void> {
    if (!obs.snapshot || !this.isLeader(obs.database)) return;
    for (const incident of this.store.incidents({ state: 'open', limit: 100 })) {
      if (incident.database !== obs.database) continue;
      const request = REMEDIABLE[incident.ruleId]?.(this.options.config);
      if (request) await this.remediate(incident, request, obs);
    }
  }

  /**
   * A person executes an incident's remedy (suggest mode's path, through the API): the plan is made
   * again from the latest snapshot, so it acts on what is true now, within the same limits.
   */
  async executeRemedy(incidentId: string, by: string): Promise<{ planned: number; refused: number }> {
    const incident = this.store.incident(incidentId);
    if (!incident) throw new Error(`no incident ${incidentId}`);
    if (incident.state === 'resolved') throw new Error(`incident ${incidentId} is resolved`);
    const request = REMEDIABLE[incident.ruleId]?.(this.options.config);
    if (!request)
      throw new Error(`incident ${incidentId} (${incident.ruleId}) has no remedy pgwarden can run`);
    const obs = this.latest.get(incident.database);
    if (!obs?.snapshot) throw new Error(`no current snapshot of ${incident.database}`);
    this.incidents.recordAction(incident.id, `remedy executed by ${by}`, { by });
    const before = this.store.actionsSince(0);
    await this.remediate(incident, request, obs, true);
    const plan = planRemedies(obs.snapshot, { ...request, actionsInLastHour: 0 }, this.policy);
    return { planned: this.store.actionsSince(0) - before, refused: plan.refusals.length };
  }

  /** suggest: attach the plan to the incident; auto: carry it out within the policy's limits. */
  private async remediate(
    incident: Incident,
    base: RemedyRequest,
    obs: Observation,
    execute = false,
  ): Promise<void> {
    const db = this.databases.find((d) => d.name === obs.database) as Watched;
    const request = { ...base, actionsInLastHour: this.store.actionsSince(this.clock.now() - 3_600_000) };
    const plan = planRemedies(obs.snapshot as Snapshot, request, this.policy);
    if (plan.actions.length === 0) return;
    const summary = plan.actions.map((a) => `pid ${a.pid} (${a.reason})`).join(', ');
    if (this.mode === 'suggest' && !execute) {
      this.incidents.recordAction(incident.id, `suggested: cancel then terminate ${summary || 'nothing'}`, {
        plan,
      });
      return;
    }
    const report = await executePlan((text, values) => db.probe.execute(text, values), plan, {
      policy: this.policy,
      audit: this.store,
      serverMajor: db.probe.serverMajor,
      database: obs.database,
      now: () => new Date(this.clock.now()),
    });
    for (const o of report.outcomes) {
      this.incidents.recordAction(incident.id, `${describeOutcome(o)} (${o.action.reason})`, {
        pid: o.action.pid,
        backendStart: o.action.backendStart,
        rule: o.action.rule,
        cancel: o.cancel,
        terminate: o.terminate,
      });
    }
    for (const r of plan.refusals) {
      this.incidents.recordAction(incident.id, `refused pid ${r.pid}: ${r.reason}`, {
        pid: r.pid,
        refused: true,
      });
    }
  }

  /** Sends one notification to the notifiers it is for, recording every attempt on the incident. */
  private async notify(incident: Incident, notification: Notification): Promise<void> {
    // A follower keeps its own books but pages nobody: the leader does. When nobody can lead (the
    // server is unreachable from here), this agent pages.
    const db = this.databases.find((d) => d.name === incident.database);
    if (db && !db.leader && this.latest.get(db.name)?.unreachable === undefined) return;
    const targets =
      notification.event === 'escalated'
        ? (incident.policy.find((l) => l.level === notification.level)?.notifiers ?? [])
        : [...this.notifiers.keys()];
    await Promise.all(
      targets.map(async (id) => {
        const notifier = this.notifiers.get(id);
        if (!notifier) return;
        await deliver(notifier, notification, {
          maxAttempts: 3,
          onAttempt: (attempt) =>
            this.store.recordNotification({
              incidentId: incident.id,
              notifier: id,
              event: notification.event,
              level: notification.level,
              attempt: attempt.attempt,
              at: attempt.at,
              ok: attempt.result.ok,
              detail:
                attempt.result.error ?? (attempt.result.status ? `HTTP ${attempt.result.status}` : null),
            }),
        });
      }),
    );
  }
}

function resolveNotifierSecrets(
  n: AgentConfig['notifiers'][number],
  env: Record<string, string | undefined>,
): NotifierConfig {
  const where = `notifiers.${n.id}`;
  const required = (value: string | undefined, what: string): string => {
    if (!value) throw new ConfigError(`${where}: ${what} is required`);
    return value;
  };
  switch (n.kind) {
    case 'webhook':
      return {
        id: n.id,
        kind: n.kind,
        url: n.url,
        secret: required(
          secret(n.secret, n.secretEnv ?? 'PGWARDEN_WEBHOOK_SECRET', env, `${where}.secret`),
          'a signing secret (secret, secretEnv or PGWARDEN_WEBHOOK_SECRET)',
        ),
      };
    case 'slack':
      return {
        id: n.id,
        kind: n.kind,
        url: required(secret(n.url, n.urlEnv, env, `${where}.url`), 'url or urlEnv'),
      };
    case 'email':
      return {
        id: n.id,
        kind: n.kind,
        smtp: {
          host: n.smtp.host,
          port: n.smtp.port,
          secure: n.smtp.secure,
          user: n.smtp.user,
          password: secret(undefined, n.smtp.passwordEnv, env, `${where}.smtp.password`),
        },
        from: n.from,
        to: n.to,
      };
    case 'pagerduty':
      return {
        id: n.id,
        kind: n.kind,
        routingKey: required(secret(undefined, n.routingKeyEnv, env, `${where}.routingKey`), 'routingKeyEnv'),
        ...(n.url ? { url: n.url } : {}),
      };
    default:
      return { id: n.id, kind: 'stdout' };
  }
}
