/**
 * The live incident demo (`npm start`, `pgwarden demo`): an embedded PostgreSQL, the VitalStream
 * service under steady traffic, and pgwarden's agent in `auto` mode with its dashboard. A scenario
 * injects one fault and narrates what follows, timed from the fault's start: detection (the first
 * alert rule to see it), the incident, the diagnosis naming the code site that holds the
 * connections, the remedy's actions, recovery (the service's error rate back to 0) and resolution.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { type EmbeddedServer, startPostgres } from '@pgwarden/testkit';
import pg from 'pg';
import { parseConfig } from '../agent/config.js';
import { type AgentServer, startServer } from '../agent/server.js';
import type { Incident } from '../agent/types.js';
import { Watcher } from '../agent/watch.js';
import { terminalSafe } from '../render/text.js';
import { LoadGenerator } from './load.js';
import { type SCENARIO_LIST, type ScenarioName, scenario } from './scenarios.js';
import { VitalStream } from './vitalstream.js';

export const DEMO_DATABASE = 'vitalstream';

export interface DemoOptions {
  /** Narration (one line per call). */
  log: (line: string) => void;
  /** The agent's own log lines (default: dropped). */
  agentLog?: (line: string) => void;
  /** Dashboard port (default: any free port). */
  port?: number;
  /** How long a scenario may take before it is declared failed (default 90 s). */
  scenarioTimeoutMillis?: number;
  /** The agent's mode: auto (default) remedies by itself; observe only watches (benchmarks). */
  mode?: 'auto' | 'observe';
  /** How long VitalStream's hung external calls and slow report last (default 60 s). */
  externalCallMillis?: number;
}

export interface ScenarioResult {
  scenario: ScenarioName;
  title: string;
  startedAt: string;
  /** Seconds from the fault's start; null when it did not happen. */
  detectedAfter: number | null;
  detectedBy: string | null;
  /** When the first incident of the scenario's rules opened. */
  incidentAfter: number | null;
  /** The incident of the most specific of the scenario's rules that opened. */
  incident: { id: string; ruleId: string; severity: string; title: string } | null;
  remediationAfter: number | null;
  recoveredAfter: number | null;
  resolvedAfter: number | null;
  /** The code sites that held the pool's connections when the incident opened. */
  sites: string[];
  actions: string[];
  requests: { total: number; failed: number; degraded: number };
  ok: boolean;
  problems: string[];
}

/** The agent's settings in the demo: the production defaults, compressed to fit a demo's minutes. */
export function demoAgentConfig(
  url: string,
  poolsUrl: string,
  token: string,
  port: number,
  mode: 'auto' | 'observe' = 'auto',
) {
  const quick = { forMillis: 2000, clearForMillis: 5000 };
  return parseConfig({
    databases: [{ name: DEMO_DATABASE, url, appPools: [poolsUrl], appPoolsToken: token }],
    mode,
    environment: 'demo',
    interval: '1s',
    http: { host: '127.0.0.1', port, token },
    notifiers: [],
    autoResolveAfter: '3s',
    rules: {
      idleInTransaction: '3s',
      longRunning: '5s',
      overrides: {
        'app_pool.waiting': quick,
        'sessions.idle_in_transaction': quick,
        'sessions.long_running': quick,
        'locks.blocking_chain': quick,
        'server.unreachable': quick,
        'connections.usage': { clearForMillis: 5000 },
        'connections.usage.critical': { clearForMillis: 5000 },
      },
    },
    remedies: {
      idleInTransactionOlderThan: '3s',
      activeOlderThan: '5s',
      rootBlockerOlderThan: '2s',
      grace: '1s',
      maxSessionsPerRun: 12,
      maxShareOfClients: 0.95,
      maxActionsPerHour: 1000,
    },
  });
}

/** Creates the service's role and database and the agent's monitoring role; returns their URLs. */
async function provision(server: EmbeddedServer): Promise<{ appUrl: string; agentUrl: string }> {
  const admin = new pg.Client({ connectionString: server.url, application_name: 'pgwarden-demo-setup' });
  await admin.connect();
  const appPassword = randomBytes(18).toString('base64url');
  const agentPassword = randomBytes(18).toString('base64url');
  try {
    // Utility statements take no parameters: format() quotes the values on the server.
    const run = async (template: string, ...values: string[]) => {
      const { rows } = await admin.query<{ sql: string }>(`SELECT format(${template}) AS sql`, values);
      await admin.query(rows[0]?.sql as string);
    };
    await run(`'CREATE ROLE vitalstream LOGIN PASSWORD %L', $1::text`, appPassword);
    await run(`'CREATE ROLE pgwarden_agent LOGIN PASSWORD %L', $1::text`, agentPassword);
    await admin.query('GRANT pg_monitor, pg_signal_backend TO pgwarden_agent');
    await admin.query(`CREATE DATABASE ${DEMO_DATABASE} OWNER vitalstream`);
  } finally {
    await admin.end();
  }
  if (server.pgStatStatements) {
    const db = new pg.Client({ connectionString: withUser(server.url, 'postgres', server.password) });
    await db.connect();
    await db.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements').finally(() => db.end());
  }
  return {
    appUrl: withUser(server.url, 'vitalstream', appPassword),
    agentUrl: withUser(server.url, 'pgwarden_agent', agentPassword),
  };
}

function withUser(base: string, user: string, password: string): string {
  const url = new URL(base);
  url.username = user;
  url.password = password;
  url.pathname = `/${DEMO_DATABASE}`;
  return url.toString();
}

export class Demo {
  readonly token = randomBytes(16).toString('hex');
  private server!: EmbeddedServer;
  private service!: VitalStream;
  private load!: LoadGenerator;
  private watcher!: Watcher;
  private http!: AgentServer;
  private playing: ScenarioName | undefined;
  private stopped = false;
  private stopping: Promise<void> | undefined;

  private constructor(private readonly options: DemoOptions) {}

  /** Starts everything; on failure, stops what was started and rethrows. */
  static async start(options: DemoOptions): Promise<Demo> {
    const demo = new Demo(options);
    try {
      await demo.boot();
    } catch (err) {
      await demo.stop();
      throw err;
    }
    return demo;
  }

  private async boot(): Promise<void> {
    this.server = await startPostgres({ settings: { max_connections: 40 } });
    const { appUrl, agentUrl } = await provision(this.server);
    this.service = new VitalStream({
      databaseUrl: appUrl,
      token: this.token,
      ...(this.options.externalCallMillis === undefined
        ? {}
        : { externalCallMillis: this.options.externalCallMillis }),
    });
    await this.service.start();
    this.load = new LoadGenerator({ baseUrl: this.service.url });
    this.watcher = new Watcher({
      config: demoAgentConfig(
        agentUrl,
        this.service.poolsUrl,
        this.token,
        this.options.port ?? 0,
        this.options.mode ?? 'auto',
      ),
      storePath: ':memory:',
      log: this.options.agentLog ?? (() => {}),
    });
    await this.watcher.start();
    this.http = await startServer({
      watcher: this.watcher,
      host: '127.0.0.1',
      port: this.options.port ?? 0,
      token: this.token,
      environment: 'demo',
    });
    this.load.start();
  }

  get dashboardUrl(): string {
    return `${this.http.url}/`;
  }

  get serviceUrl(): string {
    return this.service.url;
  }

  get postgres(): { version: string; port: number; pid: number | undefined; dataDir: string } {
    return {
      version: this.server.version,
      port: this.server.port,
      pid: this.server.pid,
      dataDir: this.server.dataDir,
    };
  }

  /** host:port of the agent's and the service's /metrics (the service's needs the token). */
  get metricsTargets(): { agent: string; service: string } {
    return { agent: new URL(this.http.url).host, service: new URL(this.service.url).host };
  }

  /** Injects a fault without following it (benchmarks follow it themselves). */
  inject(name: string): Promise<void> {
    return scenario(name).inject({ service: this.service, load: this.load, server: this.server });
  }

  /** When the service's last failed or slow request since `since` ended (undefined: none). */
  lastDegradedAt(since: number): number | undefined {
    return this.load.lastDegradedAt(since);
  }

  /**
   * What a person does in suggest or observe mode: execute pgwarden's remedy for every open incident
   * that has one. Returns how many incidents it acted on.
   */
  async remedyNow(by: string): Promise<number> {
    let acted = 0;
    for (const incident of this.watcher.store.incidents({ state: ['open', 'acknowledged'] })) {
      try {
        await this.watcher.executeRemedy(incident.id, by);
        acted++;
      } catch {
        // No remedy for this rule (the pool waiting, the server unreachable): nothing to run.
      }
    }
    return acted;
  }

  get busy(): ScenarioName | undefined {
    return this.playing;
  }

  /** One line on the service's health: traffic, errors, the pool, the server, open incidents. */
  statusLine(): string {
    const w = this.load.window(5000);
    const obs = this.watcher.latest.get(DEMO_DATABASE);
    const pool = this.service.pool.inspect();
    const conns = obs?.snapshot
      ? `server ${obs.snapshot.connections.total}/${obs.snapshot.connections.usable} connections`
      : `server unreachable (${obs?.unreachable?.message ?? 'not observed yet'})`;
    const open = this.watcher.store.incidents({ state: ['open', 'acknowledged'] }).length;
    return `traffic ${w.perSecond.toFixed(0)} req/s · errors ${w.errors} · p95 ${w.p95Millis} ms · pool ${pool.counts.active}/${pool.settings.max + pool.settings.maxOverflow} busy, ${pool.counts.waiting} waiting · ${conns} · ${open} incident${open === 1 ? '' : 's'} open`;
  }

  /** Waits until no incident is open, no rule is pending or firing and traffic is clean. */
  async settle(timeoutMillis = 60_000): Promise<boolean> {
    const until = Date.now() + timeoutMillis;
    while (Date.now() < until && !this.stopped) {
      const open = this.watcher.store.incidents({ state: ['open', 'acknowledged'] }).length;
      const rules = this.watcher.ruleStates(DEMO_DATABASE).length;
      const w = this.load.window(2000);
      if (open === 0 && rules === 0 && w.degraded === 0 && w.requests > 0) return true;
      await sleep(250);
    }
    return false;
  }

  /** Injects one fault and follows it to recovery and resolution. */
  async play(name: string): Promise<ScenarioResult> {
    const sc = scenario(name);
    if (this.playing) throw new Error(`scenario ${this.playing} is still running`);
    this.playing = sc.name;
    try {
      return await this.follow(sc);
    } finally {
      this.playing = undefined;
    }
  }

  private async follow(sc: (typeof SCENARIO_LIST)[number]): Promise<ScenarioResult> {
    const log = this.options.log;
    const settled = await this.settle(45_000);
    if (!settled) log(`[${sc.name}] the previous fault has not fully cleared; starting anyway`);
    const t0 = Date.now();
    // Rules already pending or firing are the previous fault's: they do not detect this one.
    const before = new Set(this.watcher.ruleStates(DEMO_DATABASE).map((st) => st.ruleId));
    const secs = (at: number) => Math.round((at - t0) / 100) / 10;
    // Incident titles, pool names and code sites come from the database and the application.
    const say = (at: number, text: string) =>
      log(`[${sc.name} +${secs(at).toFixed(1).padStart(4)}s] ${terminalSafe(text)}`);
    const result: ScenarioResult = {
      scenario: sc.name,
      title: sc.title,
      startedAt: new Date(t0).toISOString(),
      detectedAfter: null,
      detectedBy: null,
      incidentAfter: null,
      incident: null,
      remediationAfter: null,
      recoveredAfter: null,
      resolvedAfter: null,
      sites: [],
      actions: [],
      requests: { total: 0, failed: 0, degraded: 0 },
      ok: false,
      problems: settled ? [] : ['the previous fault had not cleared when this one started'],
    };
    say(t0, `fault: ${sc.title}`);
    let injected = false;
    const injection = this.inject(sc.name)
      .catch((err: Error) => result.problems.push(`injecting the fault failed: ${err.message}`))
      .finally(() => {
        injected = true;
      });
    const incidents = new Map<string, Incident>();
    const seenTimeline = new Set<string>();
    let diagnosed = false;
    let narrated = 0;
    const deadline = t0 + (this.options.scenarioTimeoutMillis ?? 90_000);
    let done = false;
    while (!done && !this.stopped) {
      await sleep(100);
      const now = Date.now();
      if (result.detectedAfter === null) {
        for (const st of this.watcher.ruleStates(DEMO_DATABASE)) {
          if (!sc.rules.includes(st.ruleId) || before.has(st.ruleId)) continue;
          const at = Math.max(t0, st.status === 'pending' ? st.since : (st.firedAt ?? st.since));
          if (result.detectedAfter === null || secs(at) < result.detectedAfter) {
            result.detectedAfter = secs(at);
            result.detectedBy = st.ruleId;
          }
        }
        if (result.detectedAfter !== null) {
          say(
            t0 + result.detectedAfter * 1000,
            `detected by ${result.detectedBy}: ${this.describe(result.detectedBy)}`,
          );
        }
      }
      for (const inc of this.watcher.store.incidents({ limit: 20 })) {
        if (inc.openedAt < t0 || inc.database !== DEMO_DATABASE) continue;
        if (!incidents.has(inc.id)) {
          say(inc.openedAt, `incident ${inc.id} opened (${inc.severity}): ${inc.title}`);
          // The scenario's rules are listed most specific first: its incident is the most specific
          // one that opened; the time is when the first of them opened (the first page).
          const rank = (ruleId: string) => {
            const i = sc.rules.indexOf(ruleId);
            return i === -1 ? sc.rules.length : i;
          };
          if (result.incident === null || rank(inc.ruleId) < rank(result.incident.ruleId)) {
            result.incident = { id: inc.id, ruleId: inc.ruleId, severity: inc.severity, title: inc.title };
          }
          if (sc.rules.includes(inc.ruleId) || result.incidentAfter === null) {
            const after = secs(inc.openedAt);
            if (result.incidentAfter === null || after < result.incidentAfter) result.incidentAfter = after;
          }
          if (!diagnosed) {
            diagnosed = true;
            result.sites = this.codeSites();
            const text =
              result.sites.length > 0
                ? `held by ${result.sites.join('; ')}`
                : `${this.describe(inc.ruleId)}; no application code holds a connection for more than a second`;
            say(now, `diagnosis: ${text}`);
            this.watcher.incidents.addNote(inc.id, `diagnosis: ${text}`, 'pgwarden demo');
          }
        }
        incidents.set(inc.id, inc);
        for (const entry of this.watcher.store.timeline(inc.id)) {
          const key = `${inc.id}:${entry.at}:${entry.text}`;
          if (entry.kind !== 'action' || seenTimeline.has(key)) continue;
          seenTimeline.add(key);
          result.actions.push(entry.text);
        }
      }
      // The audit log has each signal as it is sent (the timeline records the ladder once it is done).
      const audit = this.watcher.store.auditEntries({ since: t0 });
      const fresh = audit.slice(narrated);
      for (const e of fresh) {
        if (result.remediationAfter === null && e.event !== 'refuse' && e.result === 'ok')
          result.remediationAfter = secs(Date.parse(e.at));
      }
      // A run of signals is told once it pauses (300 ms), one line per kind of signal: a remedy on
      // twelve sessions is two lines, not 24.
      const lastAt =
        fresh.length > 0 ? Date.parse((fresh[fresh.length - 1] as (typeof audit)[number]).at) : now;
      const groups = new Map<string, typeof audit>();
      if (now - lastAt >= 300) {
        for (const e of fresh) {
          const key = `${e.event}|${e.result}|${e.event === 'refuse' ? e.reason : ''}`;
          groups.set(key, [...(groups.get(key) ?? []), e]);
        }
        narrated = audit.length;
      }
      for (const entries of groups.values()) {
        const first = entries[0] as (typeof audit)[number];
        const pids = entries.map((e) => e.pid);
        const who =
          pids.length === 1
            ? `pid ${pids[0]}`
            : `${pids.length} sessions (pids ${pids.slice(0, 6).join(', ')}${pids.length > 6 ? ', …' : ''})`;
        say(
          Date.parse(first.at),
          first.event === 'refuse'
            ? `remedy: refused ${who}: ${first.reason}`
            : `remedy: ${first.event} ${who} ${first.result} (${first.reason})`,
        );
      }
      if (
        result.recoveredAfter === null &&
        injected &&
        (!sc.remediable || result.remediationAfter !== null)
      ) {
        const lastBad = this.load.lastDegradedAt(t0);
        // A request still in flight past the SLO will end degraded: not recovered yet.
        const slow = this.load.slowInFlight();
        if (!slow && lastBad !== undefined && now - lastBad >= 3000) {
          result.recoveredAfter = secs(lastBad);
        } else if (!slow && lastBad === undefined && now - t0 >= 5000) {
          result.recoveredAfter = 0;
        }
        if (result.recoveredAfter !== null) {
          const during = this.load
            .since(t0)
            .filter((o) => o.startedAt >= t0 && o.startedAt <= (lastBad ?? now));
          const failed = during.filter((o) => !o.ok).length;
          const degraded = during.filter((o) => o.degraded).length;
          result.requests = { total: during.length, failed, degraded };
          const text =
            lastBad === undefined
              ? `no impact: none of ${during.length} requests failed or took over 1 s`
              : `recovered: the service's error rate is back to 0 (${failed} of ${during.length} requests failed, ${degraded} failed or took over 1 s)`;
          say(lastBad ?? t0, text);
          for (const id of incidents.keys()) this.watcher.incidents.addNote(id, text, 'pgwarden demo');
        }
      }
      if (result.recoveredAfter !== null) {
        const current = [...incidents.keys()].map((id) => this.watcher.store.incident(id) as Incident);
        const allResolved = current.every((i) => i.state === 'resolved');
        const quiet = this.watcher.ruleStates(DEMO_DATABASE).every((s) => !sc.rules.includes(s.ruleId));
        if (allResolved && (incidents.size > 0 || quiet)) {
          const last = Math.max(t0, ...current.map((i) => i.resolvedAt ?? t0));
          if (incidents.size > 0) {
            result.resolvedAfter = secs(last);
            say(last, `resolved: ${current.map((i) => i.id).join(', ')}`);
          }
          done = true;
        }
      }
      if (now > deadline) {
        result.problems.push(`not over after ${Math.round((deadline - t0) / 1000)} s`);
        break;
      }
    }
    await injection;
    if (result.detectedAfter === null) result.problems.push('not detected');
    if (sc.remediable && result.incident === null) result.problems.push('no incident opened');
    if (sc.remediable && result.remediationAfter === null) result.problems.push('no remedy carried out');
    if (result.recoveredAfter === null) result.problems.push('the service did not recover');
    result.ok = result.problems.length === 0;
    say(Date.now(), result.ok ? 'done' : `FAILED: ${result.problems.join('; ')}`);
    return result;
  }

  /** What an alert rule sees right now, in a few words. */
  private describe(ruleId: string | null): string {
    const obs = this.watcher.latest.get(DEMO_DATABASE);
    if (ruleId === 'server.unreachable') return obs?.unreachable?.message ?? 'the server does not answer';
    if (ruleId === 'app_pool.waiting') {
      const pools = (obs?.appPools ?? []).flatMap((a) => a.pools);
      const waiting = pools.reduce((n, p) => n + p.counts.waiting, 0);
      return `${waiting} caller${waiting === 1 ? '' : 's'} waiting for a connection in ${pools.map((p) => p.pool).join(', ')}`;
    }
    const finding = obs?.diagnosis?.findings.find((f) => f.id === ruleId);
    if (finding) return finding.title;
    if (ruleId?.startsWith('connections.') && obs?.snapshot)
      return `${Math.round(obs.snapshot.connections.usage * 100)}% of usable connections in use`;
    return 'condition seen';
  }

  /** The application code sites holding the pool's connections, longest held first. */
  private codeSites(): string[] {
    const obs = this.watcher.latest.get(DEMO_DATABASE);
    const sessions = new Map((obs?.snapshot?.sessions ?? []).map((s) => [s.pid, s]));
    const groups = new Map<
      string,
      { pool: string; site: string; pids: number[]; held: number; states: Set<string> }
    >();
    for (const source of obs?.appPools ?? []) {
      for (const pool of source.pools) {
        for (const c of pool.checkouts) {
          if (c.heldMillis < 1000 || c.pid === undefined) continue;
          const site = c.site ?? '(site not captured)';
          const key = `${pool.pool}\u0000${site}`;
          const g = groups.get(key) ?? {
            pool: pool.pool,
            site,
            pids: [],
            held: 0,
            states: new Set<string>(),
          };
          g.pids.push(c.pid);
          g.held = Math.max(g.held, c.heldMillis);
          const s = sessions.get(c.pid);
          if (s) g.states.add(s.waitEventType === 'Lock' ? 'waiting on a lock' : s.state);
          groups.set(key, g);
        }
      }
    }
    return [...groups.values()]
      .sort((a, b) => b.pids.length - a.pids.length || b.held - a.held)
      .slice(0, 3)
      .map(
        (g) =>
          `${g.pool} at ${g.site}: ${g.pids.length} connection${g.pids.length === 1 ? '' : 's'} for up to ${(g.held / 1000).toFixed(1)} s${g.states.size ? ` (${[...g.states].join(', ')})` : ''}, pids ${g.pids
            .sort((a, b) => a - b)
            .slice(0, 6)
            .join(', ')}${g.pids.length > 6 ? ', …' : ''}`,
      );
  }

  /**
   * Stops traffic, the service, the agent and PostgreSQL (its data directory is removed). Every
   * caller gets the same promise, which settles once everything is down.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.stopped = true;
    const steps: (() => Promise<unknown> | undefined)[] = [
      () => this.load?.stop(),
      () => this.http?.close(),
      () => this.service?.stop(),
      () => this.watcher?.stop(),
      () => this.server?.destroy(),
    ];
    for (const step of steps) {
      try {
        await step();
      } catch {
        // Keep stopping the rest.
      }
    }
  }
}
