// Integration tests against a real PostgreSQL: createPoolHandler() on a real HTTP server, serving
// inspect() of pools whose connections are real backends, and their Prometheus metrics.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { testDatabaseUrl, uniqueName } from '@pgwarden/testkit';
import { Registry } from 'prom-client';
import { createPoolHandler } from './http.js';
import type { CheckoutInfo, PoolInspection } from './inspect.js';
import { Pool } from './pool.js';

describe('createPoolHandler on a real HTTP server', () => {
  const token = `tok-${Math.random().toString(36).slice(2)}`;
  const environment = 'integration';
  const registry = new Registry();
  let pool: Pool;
  let server: http.Server;
  let base: string;

  before(async () => {
    const url = await testDatabaseUrl();
    pool = new Pool({
      connectionString: url,
      name: uniqueName('http'),
      max: 3,
      metrics: { registry, environment },
    });
    const handler = createPoolHandler({ pools: [pool], registry, token });
    server = http.createServer((req, res) => {
      if (!handler(req, res)) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not ours\n');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    await pool?.end();
  });

  const auth = () => ({ authorization: `Bearer ${token}` });

  it('refuses requests without the bearer token', async () => {
    for (const path of ['/pgwarden/pools', '/metrics']) {
      const none = await fetch(`${base}${path}`);
      assert.equal(none.status, 401, `${path} without a token`);
      await none.text();
      const wrong = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}x` } });
      assert.equal(wrong.status, 401, `${path} with a wrong token`);
      await wrong.text();
    }
  });

  it("lists a checked-out client's backend pid and last query", async () => {
    const client = await pool.connect();
    try {
      const sql = 'SELECT pg_backend_pid() AS pid';
      const pid = (await client.query(sql)).rows[0].pid as number;
      const res = await fetch(`${base}/pgwarden/pools`, { headers: auth() });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      const body = (await res.json()) as { pid: number; pools: PoolInspection[] };
      assert.equal(body.pid, process.pid);
      assert.equal(body.pools.length, 1);
      const inspected = body.pools[0] as PoolInspection;
      assert.equal(inspected.pool, pool.name);
      assert.equal(inspected.counts.active, 1);
      const checkout = inspected.checkouts.find((c: CheckoutInfo) => c.pid === pid);
      assert.ok(checkout, `no checkout with pid ${pid} in ${JSON.stringify(inspected.checkouts)}`);
      assert.equal(checkout.lastQuery, sql);
      assert.equal(checkout.state, 'busy');
    } finally {
      client.release();
    }
  });

  it('serves the Prometheus metrics with pool and environment labels', async () => {
    const client = await pool.connect();
    try {
      const res = await fetch(`${base}/metrics`, { headers: auth() });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
      const text = await res.text();
      assert.ok(
        text.includes(`database_connections_active{pool="${pool.name}",environment="${environment}"} 1`),
        text,
      );
      assert.match(text, /database_connection_wait_time_seconds_bucket\{/);
      assert.ok(text.includes(`database_connection_wait_time_seconds_bucket{pool="${pool.name}"`), text);
    } finally {
      client.release();
    }
    const after = await (await fetch(`${base}/metrics`, { headers: auth() })).text();
    assert.ok(
      after.includes(`database_connections_active{pool="${pool.name}",environment="${environment}"} 0`),
      after,
    );
  });

  it('answers 405 to anything but GET and HEAD, and leaves other paths to the application', async () => {
    for (const path of ['/pgwarden/pools', '/metrics']) {
      const post = await fetch(`${base}${path}`, { method: 'POST', headers: auth(), body: '{}' });
      assert.equal(post.status, 405, `POST ${path}`);
      await post.text();
    }
    const head = await fetch(`${base}/pgwarden/pools`, { method: 'HEAD', headers: auth() });
    assert.equal(head.status, 200);
    const other = await fetch(`${base}/health`, { headers: auth() });
    assert.equal(other.status, 404);
    assert.equal(await other.text(), 'not ours\n');
  });
});
