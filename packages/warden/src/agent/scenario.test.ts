// The runbook's incident on a real PostgreSQL: a leak fills the server; the agent opens an incident
// within 3 s of usage crossing critical and a correctly signed webhook arrives; after a restart the
// incident is still there and its escalation timer still fires (level 1 at 15 minutes).
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type EmbeddedServer, FakeClock, adminClient, startPostgres, waitFor } from '@pgwarden/testkit';
import pg from 'pg';
import { parseConfig } from './config.js';
import { verifyStandardWebhook } from './notifiers/index.js';
import { Watcher } from './watch.js';

const SECRET = 'whsec_cGd3YXJkZW4tc2NlbmFyaW8tc2VjcmV0';

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  json: { type: string; incidentId: string; level: number; event: string };
}

describe('the runbook incident, end to end', () => {
  let server: EmbeddedServer;
  let sink: http.Server;
  let sinkUrl: string;
  const received: Received[] = [];
  let requests = 0;
  let dir: string;

  before(async () => {
    server = await startPostgres({ settings: { max_connections: 20 } });
    const admin = await adminClient(server.url);
    await admin.query("CREATE ROLE app LOGIN PASSWORD 'app-pw'");
    await admin.end();
    sink = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        // The first delivery fails: the agent must retry it and log both attempts on the incident.
        if (++requests === 1) {
          res.writeHead(503).end('busy');
          return;
        }
        received.push({ headers: req.headers, body, json: JSON.parse(body) });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));
    sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/hook`;
    dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-scenario-'));
  });
  after(async () => {
    sink?.close();
    await server?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('pages on a leak within 3 s of crossing critical, and escalates after a restart', async () => {
    const store = path.join(dir, 'pgwarden.db');
    const config = parseConfig({
      databases: [{ name: 'vitals', url: server.url }],
      interval: 0.25,
      store,
      notifiers: [{ id: 'hook', kind: 'webhook', url: sinkUrl, secret: SECRET }],
    });
    const first = new Watcher({ config, env: {}, log: () => {} });
    const leaked: pg.Client[] = [];
    let crossedAt = 0;
    try {
      await first.start();
      const usable = (await waitForSnapshot(first)).connections.usable;
      const appUrl = new URL(server.url);
      appUrl.username = 'app';
      appUrl.password = 'app-pw';
      // The leak: connections checked out and never returned, until 90% of the usable slots are gone.
      const target = Math.ceil(usable * 0.9);
      for (let i = 0; i < target; i++) {
        const c = new pg.Client({ connectionString: appUrl.toString(), application_name: 'vitals-api' });
        c.on('error', () => {});
        await c.connect();
        leaked.push(c);
      }
      crossedAt = Date.now();
      await waitFor(
        'the critical incident',
        () => first.store.incidents({ limit: 10 }).some((i) => i.ruleId === 'connections.usage.critical'),
        10_000,
        20,
      );
      const openedIn = Date.now() - crossedAt;
      assert.ok(openedIn <= 3000, `opened ${openedIn} ms after crossing critical`);
      await waitFor(
        'the webhook',
        () => received.some((r) => r.json.type === 'pgwarden.incident.opened'),
        10_000,
        20,
      );
      const hook = received.find((r) => r.json.type === 'pgwarden.incident.opened') as Received;
      assert.equal(
        verifyStandardWebhook(hook.headers as Record<string, string>, hook.body, SECRET),
        true,
        'correctly signed',
      );
      assert.equal(
        verifyStandardWebhook(hook.headers as Record<string, string>, hook.body, 'whsec_b3RoZXI='),
        false,
      );
      const opened = first.store
        .incidents({ limit: 10 })
        .find((i) => i.ruleId === 'connections.usage.critical');
      await waitFor(
        'the attempts on the incident',
        () => first.store.notifications(opened?.id as string).some((n) => n.ok),
        5000,
        20,
      );
      const attempts = first.store.notifications(opened?.id as string).filter((n) => n.event === 'opened');
      assert.deepEqual(
        attempts.map((n) => [n.attempt, n.ok]),
        [
          [1, false],
          [2, true],
        ],
        'the failed attempt was retried, and both are logged',
      );
    } finally {
      await first.stop();
    }

    // Restart: a new agent over the same store, 16 minutes after the incident opened.
    const incident = new Watcher({ config, env: {}, log: () => {} }).store
      .incidents({ limit: 10 })
      .find((i) => i.ruleId === 'connections.usage.critical');
    assert.ok(incident && incident.state === 'open', 'the incident survived the restart');
    const clock = new FakeClock({ start: incident.openedAt + 16 * 60_000 });
    const second = new Watcher({ config, env: {}, log: () => {}, clock });
    try {
      await second.start();
      await waitFor(
        'the level 1 escalation',
        () =>
          received.some(
            (r) => r.json.type === 'pgwarden.incident.escalated' && r.json.incidentId === incident.id,
          ),
        10_000,
        20,
      );
      const escalation = received.find((r) => r.json.type === 'pgwarden.incident.escalated') as Received;
      assert.equal(escalation.json.level, 1);
      assert.equal(second.store.incident(incident.id)?.escalationLevel, 1);
    } finally {
      await second.stop();
      await Promise.all(leaked.map((c) => c.end().catch(() => undefined)));
    }
  });
});

async function waitForSnapshot(w: Watcher) {
  await waitFor('a first snapshot', () => w.latest.get('vitals')?.snapshot !== undefined, 10_000, 20);
  const snap = w.latest.get('vitals')?.snapshot;
  assert.ok(snap);
  return snap;
}
