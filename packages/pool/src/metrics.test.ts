import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createStubClientClass } from '@pgwarden/testkit';
import { Registry } from 'prom-client';
import { Pool, defaultRegistry } from './pool.js';
import { POOL_METRICS } from './metrics.js';

describe('metrics', () => {
  it("exports the runbook's metric names with pool and environment labels", async () => {
    const registry = new Registry();
    const Stub = createStubClientClass({
      failQuery: (t) => (t === 'bad' ? Object.assign(new Error('syntax'), { code: '42601' }) : undefined),
    });
    const pool = new Pool(
      { name: 'writer', metrics: { registry, environment: 'production' }, env: {} },
      Stub as never,
    );
    const held = await pool.connect();
    await pool.query('SELECT 1');
    await assert.rejects(pool.query('bad'));
    const text = await registry.metrics();
    for (const metric of POOL_METRICS) assert.match(text, new RegExp(`# TYPE ${metric.name} ${metric.type}`));
    assert.match(text, /database_connections_active\{pool="writer",environment="production"\} 1/);
    assert.match(text, /database_connections_max\{pool="writer",environment="production"\} 10/);
    assert.match(
      text,
      /database_connection_wait_time_seconds_bucket\{pool="writer",environment="production",le="0.001"\} \d+/,
    );
    assert.match(text, /database_query_duration_seconds_count\{pool="writer",environment="production"\} 2/);
    assert.match(text, /database_errors_total\{pool="writer",environment="production",code="42601"\} 1/);
    assert.match(text, /database_connections_created_total\{pool="writer",environment="production"\} \d/);
    assert.match(
      text,
      /database_connections_closed_total\{pool="writer",environment="production",reason="released_with_error"\} 1/,
    );
    held.release();
    await pool.end();
    assert.doesNotMatch(await registry.metrics(), /pool="writer"/, 'an ended pool leaves the registry');
  });

  it('shows several pools in one registry and refuses two pools with one name', async () => {
    const registry = new Registry();
    const Stub = createStubClientClass();
    const a = new Pool({ name: 'a', metrics: { registry }, env: {} }, Stub as never);
    const b = new Pool({ name: 'b', metrics: { registry }, env: {} }, Stub as never);
    assert.throws(
      () => new Pool({ name: 'a', metrics: { registry }, env: {} }, Stub as never),
      /already registered/,
    );
    const text = await registry.metrics();
    assert.match(text, /database_connections_idle\{pool="a"/);
    assert.match(text, /database_connections_idle\{pool="b"/);
    await Promise.all([a.end(), b.end()]);
  });

  it('turns on with DB_POOL_MONITOR=true and off with DB_POOL_MONITOR=false', async () => {
    const Stub = createStubClientClass();
    const on = new Pool({ name: 'monitored', env: { DB_POOL_MONITOR: 'true' } }, Stub as never);
    assert.match(await defaultRegistry.metrics(), /pool="monitored"/);
    const registry = new Registry();
    const off = new Pool(
      { name: 'quiet', metrics: { registry }, env: { DB_POOL_MONITOR: 'false' } },
      Stub as never,
    );
    assert.doesNotMatch(await registry.metrics(), /pool="quiet"/);
    await Promise.all([on.end(), off.end()]);
  });
});
