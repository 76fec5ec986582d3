// The watch loop end to end on a real PostgreSQL: sessions idle in transaction open one incident,
// `auto` mode ends them through the remedy engine (on the incident's timeline and in the audit log),
// the incident resolves itself, the API refuses actions without the token, and a server that goes
// away is an incident, not a crash.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type EmbeddedServer, adminClient, startPostgres, uniqueName, waitFor } from '@pgwarden/testkit';
import pg from 'pg';
import { parseConfig } from './config.js';
import { type AgentServer, startServer } from './server.js';
import { Watcher } from './watch.js';

const FAST = {
  'sessions.idle_in_transaction': { forMillis: 300, clearForMillis: 300 },
  'server.unreachable': { forMillis: 300, clearForMillis: 300 },
  'connections.usage': { forMillis: 300, clearForMillis: 300 },
};

/** `count` sessions of `application` left idle in an open transaction (the leak the agent must see). */
async function idleTransactions(url: string, application: string, count: number): Promise<pg.Client[]> {
  const clients: pg.Client[] = [];
  for (let i = 0; i < count; i++) {
    const c = new pg.Client({ connectionString: url, application_name: application });
    c.on('error', () => {});
    await c.connect();
    await c.query('BEGIN; SELECT 1');
    clients.push(c);
  }
  return clients;
}

describe('pgwarden watch against a real server', () => {
  let server: EmbeddedServer;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.destroy();
  });

  function watcher(mode: 'observe' | 'suggest' | 'auto', lines: string[]) {
    const config = parseConfig({
      databases: [{ name: 'vitals', url: server.url }],
      interval: 0.2,
      mode,
      store: ':memory:',
      autoResolveAfter: '1s',
      notifiers: [{ id: 'stdout', kind: 'stdout' }],
      rules: { idleInTransaction: '1s', overrides: FAST },
      // The test's sessions log in as the embedded server's superuser.
      remedies: {
        idleInTransactionOlderThan: '1s',
        grace: '200ms',
        maxShareOfClients: 1,
        allowSuperusers: true,
      },
    });
    return new Watcher({ config, env: {}, log: (l) => lines.push(l) });
  }

  it('opens one incident for sessions idle in transaction, ends them in auto mode, and resolves', async () => {
    const lines: string[] = [];
    const w = watcher('auto', lines);
    const app = uniqueName('leaky-handler');
    const leaked = await idleTransactions(server.url, app, 3);
    let api: AgentServer | undefined;
    try {
      await w.start();
      api = await startServer({
        watcher: w,
        host: '127.0.0.1',
        port: 0,
        token: 'secret-token',
        environment: 'test',
      });
      await waitFor(
        'the incident to open',
        () => w.store.incidents({ limit: 10 }).some((i) => i.ruleId === 'sessions.idle_in_transaction'),
        15_000,
        50,
      );
      const incident = w.store
        .incidents({ limit: 10 })
        .find((i) => i.ruleId === 'sessions.idle_in_transaction');
      assert.ok(incident);
      const admin = await adminClient(server.url);
      await waitFor(
        'the leaked sessions to be terminated',
        async () =>
          (
            await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [
              app,
            ])
          ).rows[0].n === 0,
        15_000,
        100,
      );
      await admin.end();
      await waitFor(
        'the actions on the timeline',
        () => w.store.timeline(incident.id).some((t) => t.kind === 'action'),
        5000,
        20,
      );
      const timeline = w.store.timeline(incident.id);
      assert.ok(
        timeline.some((t) => t.kind === 'action' && /terminate ok/.test(t.text)),
        JSON.stringify(timeline.map((t) => t.text)),
      );
      assert.ok(w.store.actionsSince(0) >= 3, 'the audit log has the actions');
      await waitFor('auto-resolve', () => w.store.incident(incident.id)?.state === 'resolved', 15_000, 50);
      assert.equal(
        w.store.incidents({ limit: 10 }).filter((i) => i.ruleId === 'sessions.idle_in_transaction').length,
        1,
        'deduplicated',
      );

      const report = await fetch(`${api.url}/api/incidents/${incident.id}/report?format=markdown`);
      assert.equal(report.status, 200);
      assert.match(await report.text(), /idle in transaction/i);
      const refused = await fetch(`${api.url}/api/incidents/${incident.id}/acknowledge`, { method: 'POST' });
      assert.equal(refused.status, 401, 'actions need the token');
      const metrics = await (await fetch(`${api.url}/metrics`)).text();
      assert.match(metrics, /database_connections_active\{database="vitals",environment="test"\} \d+/);
      assert.doesNotMatch(metrics, /pool="/, 'server-side series never carry the pool label');
    } finally {
      await api?.close();
      await w.stop();
      await Promise.all(leaked.map((c) => c.end().catch(() => undefined)));
    }
  });

  it('treats an unreachable server as an incident, and acknowledges with the token', async () => {
    const lines: string[] = [];
    const config = parseConfig({
      databases: [{ name: 'gone', url: 'postgres://postgres@127.0.0.1:1/postgres' }],
      interval: 0.2,
      store: ':memory:',
      rules: { overrides: FAST },
    });
    const w = new Watcher({ config, env: {}, log: (l) => lines.push(l) });
    let api: AgentServer | undefined;
    try {
      await w.start();
      api = await startServer({
        watcher: w,
        host: '127.0.0.1',
        port: 0,
        token: 'secret-token',
        environment: 'test',
      });
      await waitFor(
        'server.unreachable',
        () => w.store.incidents({ limit: 10 }).some((i) => i.ruleId === 'server.unreachable'),
        15_000,
        50,
      );
      const incident = w.store.incidents({ limit: 10 }).find((i) => i.ruleId === 'server.unreachable');
      assert.equal(incident?.severity, 'critical');
      const ack = await fetch(`${api.url}/api/incidents/${incident?.id}/acknowledge`, {
        method: 'POST',
        headers: { authorization: 'Bearer secret-token', 'x-pgwarden-user': 'on-call' },
      });
      assert.equal(ack.status, 200);
      assert.equal(w.store.incident(incident?.id as string)?.state, 'acknowledged');
    } finally {
      await api?.close();
      await w.stop();
    }
  });

  it('elects exactly one leader among two agents, and the other takes over when it dies', async () => {
    const make = () =>
      new Watcher({
        config: parseConfig({
          databases: [{ name: 'vitals', url: server.url }],
          interval: 0.1,
          store: ':memory:',
        }),
        env: {},
        log: () => {},
      });
    const a = make();
    const b = make();
    let stoppedA = false;
    try {
      await a.start();
      await b.start();
      await waitFor('one leader', () => a.isLeader('vitals') !== b.isLeader('vitals'), 5000, 20);
      assert.equal(a.isLeader('vitals'), true, 'the first to start leads');
      assert.equal(b.isLeader('vitals'), false);
      await a.stop();
      stoppedA = true;
      await waitFor('the follower to take over', () => b.isLeader('vitals'), 5000, 20);
    } finally {
      if (!stoppedA) await a.stop();
      await b.stop();
    }
  });

  it('in suggest mode attaches the plan, and a person executes it through the API', async () => {
    const lines: string[] = [];
    const w = watcher('suggest', lines);
    const app = uniqueName('suggested');
    const leaked = await idleTransactions(server.url, app, 2);
    let api: AgentServer | undefined;
    try {
      await w.start();
      api = await startServer({ watcher: w, host: '127.0.0.1', port: 0, token: 'tok', environment: 'test' });
      await waitFor(
        'a suggested plan on the incident',
        () =>
          w.store
            .incidents({ limit: 10 })
            .some((i) => w.store.timeline(i.id).some((t) => t.kind === 'action' && /suggested/.test(t.text))),
        15_000,
        50,
      );
      const incident = w.store
        .incidents({ limit: 10 })
        .find((i) => i.ruleId === 'sessions.idle_in_transaction');
      assert.ok(incident);
      const admin = await adminClient(server.url);
      const count = async () =>
        (
          await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [
            app,
          ])
        ).rows[0].n;
      assert.equal(await count(), 2, 'suggest mode only suggests');
      const denied = await fetch(`${api.url}/api/incidents/${incident.id}/execute`, { method: 'POST' });
      assert.equal(denied.status, 401);
      const run = await fetch(`${api.url}/api/incidents/${incident.id}/execute`, {
        method: 'POST',
        headers: { authorization: 'Bearer tok', 'x-pgwarden-user': 'alice' },
      });
      assert.equal(run.status, 200, await run.clone().text());
      await waitFor('the sessions to end', async () => (await count()) === 0, 10_000, 100);
      await admin.end();
      assert.ok(w.store.timeline(incident.id).some((t) => /executed by alice/.test(t.text)));
      // The live feed: one server-sent "state" event arrives.
      const events = await fetch(`${api.url}/api/events`);
      const reader = events.body?.getReader();
      const first = await reader?.read();
      assert.match(new TextDecoder().decode(first?.value), /event: state/);
      await reader?.cancel();
      const metrics = await (await fetch(`${api.url}/metrics`)).text();
      assert.match(metrics, /pgwarden_leader\{database="vitals",environment="test"\} 1/);
      assert.match(
        metrics,
        /pgwarden_probe_duration_seconds\{database="vitals",environment="test"\} [0-9.]+/,
      );
    } finally {
      await api?.close();
      await w.stop();
      await Promise.all(leaked.map((c) => c.end().catch(() => undefined)));
    }
  });
});
