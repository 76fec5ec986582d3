/**
 * The agent's HTTP side: /healthz, /metrics (server-side series labelled `database`, never `pool`),
 * the incidents API with reports, acknowledge/resolve (token required), and an Alertmanager
 * (payload version 4) receiver (token required).
 */
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { type Context, Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { Gauge, Registry } from 'prom-client';
import { DASHBOARD_CSP, DASHBOARD_HTML, DASHBOARD_JS } from '../dashboard/page.js';
import {
  type IncidentReport,
  appHoldersFrom,
  buildReport,
  renderReportHtml,
  renderReportJson,
  renderReportMarkdown,
} from './report.js';
import type { Store } from './store.js';
import type { AlertEvent, Incident, Observation } from './types.js';
import type { Watcher } from './watch.js';

export interface AgentServerOptions {
  watcher: Watcher;
  host: string;
  port: number;
  /** Required for every action (acknowledge, resolve, Alertmanager); reads are open. */
  token: string | undefined;
  environment: string;
}

export interface AgentServer {
  url: string;
  close(): Promise<void>;
}

function tokenOk(c: Context, token: string | undefined): boolean {
  if (!token) return false;
  const given = Buffer.from(c.req.header('authorization') ?? '');
  const expected = Buffer.from(`Bearer ${token}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function metricsRegistry(watcher: Watcher, environment: string): Registry {
  const registry = new Registry();
  const labels = ['database', 'environment'] as const;
  const gauge = (name: string, help: string, read: (db: string) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: labels,
      registers: [registry],
      collect() {
        this.reset();
        for (const database of watcher.databaseNames) {
          const value = read(database);
          if (value !== undefined) this.set({ database, environment }, value);
        }
      },
    });
  const snap = (db: string) => watcher.latest.get(db)?.snapshot;
  gauge(
    'database_connections_active',
    'Client backends on the server (pgwarden excluded)',
    (db) => snap(db)?.connections.total,
  );
  gauge(
    'database_connections_max',
    'Connections ordinary roles may use (max_connections - reserved)',
    (db) => snap(db)?.connections.usable,
  );
  gauge(
    'database_connections_idle',
    'Client backends that are idle',
    (db) => snap(db)?.connections.byState.idle ?? (snap(db) ? 0 : undefined),
  );
  gauge('database_connections_idle_in_transaction', 'Client backends idle in a transaction', (db) => {
    const s = snap(db);
    return s
      ? (s.connections.byState['idle in transaction'] ?? 0) +
          (s.connections.byState['idle in transaction (aborted)'] ?? 0)
      : undefined;
  });
  gauge('database_longest_transaction_seconds', 'Age of the oldest open transaction', (db) => {
    const s = snap(db);
    return s ? Math.max(0, ...s.sessions.map((x) => x.xactAgeSeconds ?? 0)) : undefined;
  });
  gauge('database_blocked_sessions', 'Sessions waiting for a lock another session holds', (db) => {
    const s = snap(db);
    return s ? s.locks.reduce((n, l) => n + l.blockedPids.length, 0) : undefined;
  });
  gauge('pgbouncer_clients_waiting', 'PgBouncer clients waiting for a server connection', (db) =>
    snap(db)?.pgbouncer ? (snap(db)?.pgbouncer?.pools.reduce((n, p) => n + p.clWaiting, 0) ?? 0) : undefined,
  );
  gauge('pgwarden_up', '1 when pgwarden reached the database at its last tick', (db) => {
    const o = watcher.latest.get(db);
    return o ? (o.unreachable ? 0 : 1) : undefined;
  });
  gauge(
    'pgwarden_incidents_open',
    'Open or acknowledged incidents',
    (db) =>
      watcher.store.incidents({ limit: 1000 }).filter((i) => i.database === db && i.state !== 'resolved')
        .length,
  );
  gauge('pgwarden_probe_duration_seconds', 'How long the last snapshot took', (db) => {
    const ms = snap(db)?.probeMillis;
    return ms === undefined ? undefined : ms / 1000;
  });
  gauge('pgwarden_leader', '1 when this agent leads (acts on) the database', (db) =>
    watcher.isLeader(db) ? 1 : 0,
  );
  new Gauge({
    name: 'pgwarden_sessions',
    help: 'Client backends by state',
    labelNames: ['database', 'environment', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const database of watcher.databaseNames) {
        for (const [state, n] of Object.entries(snap(database)?.connections.byState ?? {})) {
          this.set({ database, environment, state }, n);
        }
      }
    },
  });
  new Gauge({
    name: 'pgwarden_remedy_actions',
    help: 'Sessions acted on by the remedy engine in the last hour',
    labelNames: ['environment'],
    registers: [registry],
    collect() {
      this.set({ environment }, watcher.store.actionsSince(Date.now() - 3_600_000));
    },
  });
  return registry;
}

/** Alertmanager's webhook payload (version 4) to alert events. */
export function alertmanagerEvents(body: unknown, now: number): AlertEvent[] {
  const payload = body as { version?: string; alerts?: unknown[] };
  if (payload?.version !== '4' || !Array.isArray(payload.alerts)) {
    throw new Error('expected an Alertmanager webhook payload with version "4" and alerts[]');
  }
  return payload.alerts.map((raw) => {
    const a = raw as {
      status?: string;
      labels?: Record<string, string>;
      annotations?: Record<string, string>;
    };
    const labels = a.labels ?? {};
    return {
      type: a.status === 'resolved' ? 'resolved' : 'firing',
      ruleId: `alertmanager.${labels.alertname ?? 'unnamed'}`,
      database: labels.database ?? labels.datname ?? labels.instance ?? 'external',
      severity: labels.severity === 'critical' || labels.severity === 'page' ? 'critical' : 'warning',
      summary:
        a.annotations?.summary ?? a.annotations?.description ?? labels.alertname ?? 'alert from Alertmanager',
      value: 1,
      at: now,
      evidence: { labels, annotations: a.annotations ?? {} },
    } satisfies AlertEvent;
  });
}

/**
 * The report of one incident from the store: timeline, snapshots at open and at peak, delivery
 * attempts, the remedy actions on its database during it, and — when the application pools are
 * known — the code sites that held the connections.
 */
export function incidentReport(
  store: Store,
  incident: Incident,
  appPools?: Observation['appPools'],
): IncidentReport {
  const snaps = store.snapshots(incident.id);
  const open = snaps.find((s) => s.label === 'open')?.snapshot;
  const end = incident.resolvedAt ?? Number.POSITIVE_INFINITY;
  const actions = store
    .auditEntries({ since: incident.openedAt })
    .filter((a) => (a.database === undefined || a.database === incident.database) && Date.parse(a.at) <= end);
  return buildReport({
    incident,
    timeline: store.timeline(incident.id),
    openSnapshot: open,
    peakSnapshot: snaps.find((s) => s.label === 'peak')?.snapshot ?? open,
    notifications: store.notifications(incident.id).map((n) => ({
      notifier: n.notifier,
      event: n.event,
      level: n.level,
      at: n.at,
      ok: n.ok,
      detail: n.detail ?? null,
      attempt: n.attempt,
    })),
    actions,
    ...(appPools && appPools.length > 0 ? { appHolders: appHoldersFrom(appPools) } : {}),
  });
}

/**
 * The dashboard's sessions view: each database's latest sessions, lock chains, slowest statements,
 * PgBouncer pools and servers, and the application pools' checkouts.
 */
function sessionsOf(watcher: Watcher) {
  return {
    databases: watcher.databaseNames.map((name) => {
      const o = watcher.latest.get(name);
      const snapshot = o?.snapshot;
      return {
        name,
        at: o?.at ?? null,
        sessions: (snapshot?.sessions ?? []).map((s) => ({
          pid: s.pid,
          user: s.user,
          application: s.application,
          clientAddr: s.clientAddr,
          state: s.state,
          xactAgeSeconds: s.xactAgeSeconds,
          queryAgeSeconds: s.queryAgeSeconds,
          stateAgeSeconds: s.stateAgeSeconds,
          query: s.query,
          waitEventType: s.waitEventType,
          waitEvent: s.waitEvent,
          blockedBy: s.blockedBy,
        })),
        locks: snapshot?.locks ?? [],
        slowQueries: snapshot?.statStatements.top ?? [],
        pgbouncer: snapshot?.pgbouncer
          ? {
              pools: snapshot.pgbouncer.pools,
              servers: snapshot.pgbouncer.servers,
              error: snapshot.pgbouncer.error,
            }
          : null,
        appPools: (o?.appPools ?? []).flatMap((source) =>
          source.pools.map((p) => ({
            source: source.source,
            name: p.pool,
            max: p.settings.max + p.settings.maxOverflow,
            usage: p.usage,
            counts: p.counts,
            checkouts: p.checkouts.map((k) => ({
              pid: k.pid ?? null,
              site: k.site ?? null,
              heldMillis: k.heldMillis,
              lastQuery: k.lastQuery ?? null,
            })),
          })),
        ),
      };
    }),
  };
}

/** What the dashboard shows live: each database's latest observation, in brief. */
function stateOf(watcher: Watcher) {
  return {
    mode: watcher.mode,
    databases: watcher.databaseNames.map((name) => {
      const o = watcher.latest.get(name);
      return {
        name,
        at: o?.at ?? null,
        unreachable: o?.unreachable ?? null,
        connections: o?.snapshot?.connections ?? null,
        status: o?.diagnosis?.status ?? null,
        headline: o?.diagnosis?.headline ?? null,
        // Alert rules that see something now: pending ones are detections not yet incidents.
        rules: watcher.ruleStates(name).map((r) => ({
          ruleId: r.ruleId,
          status: r.status,
          since: r.since,
          severity: r.severity,
        })),
      };
    }),
  };
}

export function createApp(options: Omit<AgentServerOptions, 'host' | 'port'>): Hono {
  const { watcher, token } = options;
  const registry = metricsRegistry(watcher, options.environment);
  const app = new Hono();
  const needToken = (c: Context) =>
    c.json(
      {
        error: token
          ? 'a valid bearer token is required'
          : 'actions are disabled: start the agent with --token',
      },
      401,
    );

  app.get('/', (c) => c.html(DASHBOARD_HTML, 200, { 'content-security-policy': DASHBOARD_CSP }));
  app.get('/dashboard.js', (c) =>
    c.body(DASHBOARD_JS, 200, {
      'content-type': 'text/javascript; charset=utf-8',
      'cache-control': 'no-cache',
    }),
  );
  app.get('/healthz', (c) => c.text('ok'));
  app.get('/metrics', async (c) =>
    c.body(await registry.metrics(), 200, { 'content-type': registry.contentType }),
  );
  app.get('/api/status', (c) => c.json(stateOf(watcher)));
  app.get('/api/state', (c) => c.json(stateOf(watcher)));
  app.get('/api/sessions', (c) => c.json(sessionsOf(watcher)));
  app.get('/api/incidents', (c) => {
    const state = c.req.query('state');
    return c.json(
      watcher.store.incidents(
        state === 'open' || state === 'acknowledged' || state === 'resolved'
          ? { state, limit: 200 }
          : { limit: 200 },
      ),
    );
  });
  app.get('/api/incidents/:id', (c) => {
    const incident = watcher.store.incident(c.req.param('id'));
    if (!incident) return c.json({ error: 'no such incident' }, 404);
    return c.json({
      incident,
      timeline: watcher.store.timeline(incident.id),
      notifications: watcher.store.notifications(incident.id),
    });
  });
  app.get('/api/incidents/:id/report', (c) => {
    const incident = watcher.store.incident(c.req.param('id'));
    if (!incident) return c.json({ error: 'no such incident' }, 404);
    const report = incidentReport(watcher.store, incident, watcher.latest.get(incident.database)?.appPools);
    const format = c.req.query('format') ?? 'markdown';
    if (format === 'html') return c.html(renderReportHtml(report));
    if (format === 'json')
      return c.body(renderReportJson(report), 200, { 'content-type': 'application/json' });
    return c.body(renderReportMarkdown(report), 200, { 'content-type': 'text/markdown; charset=utf-8' });
  });
  const acknowledge = async (c: Context) => {
    if (!tokenOk(c, token)) return needToken(c);
    const by = (c.req.header('x-pgwarden-user') ?? 'api').slice(0, 100);
    try {
      return c.json(await watcher.incidents.acknowledge(c.req.param('id') as string, by));
    } catch (err) {
      return c.json({ error: (err as Error).message }, 409);
    }
  };
  app.post('/api/incidents/:id/ack', acknowledge);
  app.post('/api/incidents/:id/acknowledge', acknowledge);
  app.post('/api/incidents/:id/resolve', async (c) => {
    if (!tokenOk(c, token)) return needToken(c);
    const by = (c.req.header('x-pgwarden-user') ?? 'api').slice(0, 100);
    try {
      return c.json(await watcher.incidents.resolve(c.req.param('id'), by, 'resolved through the API'));
    } catch (err) {
      return c.json({ error: (err as Error).message }, 409);
    }
  });
  app.post('/api/incidents/:id/execute', async (c) => {
    if (!tokenOk(c, token)) return needToken(c);
    const by = (c.req.header('x-pgwarden-user') ?? 'api').slice(0, 100);
    try {
      return c.json(await watcher.executeRemedy(c.req.param('id'), by));
    } catch (err) {
      return c.json({ error: (err as Error).message }, 409);
    }
  });
  app.get('/api/events', (c) =>
    streamSSE(c, async (stream) => {
      let open = true;
      stream.onAbort(() => {
        open = false;
      });
      while (open) {
        await stream.writeSSE({ event: 'state', data: JSON.stringify(stateOf(watcher)) });
        await stream.sleep(1000);
      }
    }),
  );
  app.post('/api/alertmanager', async (c) => {
    if (!tokenOk(c, token)) return needToken(c);
    let events: AlertEvent[];
    try {
      events = alertmanagerEvents(await c.req.json(), Date.now());
    } catch (err) {
      return c.json({ error: (err as Error).message }, 400);
    }
    const incidents = [];
    for (const event of events) incidents.push(await watcher.incidents.onAlert(event));
    return c.json({ received: events.length, incidents: incidents.filter(Boolean).map((i) => i?.id) });
  });
  app.notFound((c) => c.json({ error: `no such route: ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => c.json({ error: err.message }, 500));
  return app;
}

export function startServer(options: AgentServerOptions): Promise<AgentServer> {
  const app = createApp(options);
  return new Promise((resolve) => {
    const server = serve(
      { fetch: app.fetch, hostname: options.host, port: options.port },
      (info: AddressInfo) => {
        resolve({
          url: `http://${options.host}:${info.port}`,
          close: () => new Promise<void>((done) => server.close(() => done())),
        });
      },
    );
  });
}
