// The agent's HTTP API without a database: Alertmanager webhooks (payload version 4) open and resolve
// incidents, and every action needs the token.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from './config.js';
import { alertmanagerEvents, createApp } from './server.js';
import { Watcher } from './watch.js';

const PAYLOAD = (status: 'firing' | 'resolved') => ({
  version: '4',
  status,
  receiver: 'pgwarden',
  groupKey: '{}:{alertname="PostgresConnectionsHigh"}',
  groupLabels: { alertname: 'PostgresConnectionsHigh' },
  commonLabels: {},
  commonAnnotations: {},
  externalURL: 'http://alertmanager.local',
  alerts: [
    {
      status,
      labels: { alertname: 'PostgresConnectionsHigh', severity: 'critical', database: 'vitals' },
      annotations: { summary: 'connections at 95% of usable slots' },
      startsAt: '2026-11-26T10:00:00Z',
      endsAt: '0001-01-01T00:00:00Z',
      generatorURL: 'http://prometheus.local/graph',
      fingerprint: 'abc123',
    },
  ],
});

describe('agent HTTP API', () => {
  it('maps Alertmanager alerts to alert events and rejects other payloads', () => {
    const [event] = alertmanagerEvents(PAYLOAD('firing'), 1000);
    assert.equal(event?.ruleId, 'alertmanager.PostgresConnectionsHigh');
    assert.equal(event?.database, 'vitals');
    assert.equal(event?.severity, 'critical');
    assert.equal(event?.type, 'firing');
    assert.throws(() => alertmanagerEvents({ version: '3', alerts: [] }, 0), /version "4"/);
  });

  it('opens and resolves incidents from Alertmanager, only with the token', async () => {
    const config = parseConfig({
      databases: [{ name: 'vitals', url: 'postgres://u@127.0.0.1:1/db' }],
      store: ':memory:',
      autoResolveAfter: '0s',
    });
    const watcher = new Watcher({ config, env: {}, log: () => {} });
    const app = createApp({ watcher, token: 't0ken', environment: 'test' });
    const post = (body: unknown, token?: string) =>
      app.request('/api/alertmanager', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify(body),
      });
    assert.equal((await post(PAYLOAD('firing'))).status, 401);
    assert.equal((await post(PAYLOAD('firing'), 'wrong')).status, 401);
    const opened = await post(PAYLOAD('firing'), 't0ken');
    assert.equal(opened.status, 200);
    const [incident] = watcher.store.incidents({ limit: 10 });
    assert.equal(incident?.ruleId, 'alertmanager.PostgresConnectionsHigh');
    assert.equal(incident?.state, 'open');
    assert.equal((await post({ nonsense: true }, 't0ken')).status, 400);
    await post(PAYLOAD('resolved'), 't0ken');
    await watcher.incidents.tick();
    assert.equal(watcher.store.incident(incident?.id as string)?.state, 'resolved');
    const list = (await (await app.request('/api/incidents')).json()) as unknown[];
    assert.equal(list.length, 1);
    watcher.store.close();
  });

  it('answers in JSON: /api/status, unknown routes, and ack without a token', async () => {
    const config = parseConfig({
      databases: [{ name: 'vitals', url: 'postgres://u@127.0.0.1:1/db' }],
      store: ':memory:',
    });
    const watcher = new Watcher({ config, env: {}, log: () => {} });
    const app = createApp({ watcher, token: undefined, environment: 'test' });
    const status = await app.request('/api/status');
    assert.equal(status.status, 200);
    assert.deepEqual(
      ((await status.json()) as { databases: { name: string }[] }).databases.map((d) => d.name),
      ['vitals'],
    );
    const missing = await app.request('/api/nothing');
    assert.equal(missing.status, 404);
    assert.match(((await missing.json()) as { error: string }).error, /no such route/);
    const ack = await app.request('/api/incidents/x/ack', { method: 'POST' });
    assert.equal(ack.status, 401, 'read-only without a token');
    assert.match(((await ack.json()) as { error: string }).error, /--token/);
    watcher.store.close();
  });
});
