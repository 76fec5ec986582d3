import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientOptionsFrom, resolveSettings } from './options.js';

describe('options', () => {
  it("accepts the runbook's database.yaml keys as they are", () => {
    const s = resolveSettings({
      max_connections: 50,
      min_connections: 5,
      max_overflow: 20,
      connection_timeout: 30,
      recycle: 3600,
      env: {},
    });
    assert.equal(s.max, 50);
    assert.equal(s.min, 5);
    assert.equal(s.maxOverflow, 20);
    assert.equal(s.connectionTimeoutMillis, 30_000);
    assert.equal(s.maxLifetimeSeconds, 3600);
  });

  it("keeps pg.Pool's defaults and names", () => {
    const s = resolveSettings({ env: {} });
    assert.equal(s.max, 10);
    assert.equal(s.min, 0);
    assert.equal(s.idleTimeoutMillis, 10_000);
    assert.equal(s.connectionTimeoutMillis, 0);
    assert.equal(s.maxUses, Number.POSITIVE_INFINITY);
    assert.equal(resolveSettings({ poolSize: 7, env: {} }).max, 7);
  });

  it('lets DB_POOL_TIMEOUT, DB_POOL_RECYCLE and DB_POOL_MONITOR override the options', () => {
    const s = resolveSettings({
      connection_timeout: 30,
      recycle: 3600,
      metrics: false,
      env: { DB_POOL_TIMEOUT: '5', DB_POOL_RECYCLE: '600', DB_POOL_MONITOR: 'true' },
    });
    assert.equal(s.connectionTimeoutMillis, 5000);
    assert.equal(s.maxLifetimeSeconds, 600);
    assert.notEqual(s.metrics, false);
    const off = resolveSettings({ metrics: true, env: { DB_POOL_MONITOR: 'false' } });
    assert.equal(off.metrics, false);
  });

  it('names the bad value in its error', () => {
    assert.throws(() => resolveSettings({ env: { DB_POOL_TIMEOUT: 'soon' } }), /DB_POOL_TIMEOUT.*"soon"/);
    assert.throws(() => resolveSettings({ env: { DB_POOL_MONITOR: 'maybe' } }), /DB_POOL_MONITOR.*"maybe"/);
    assert.throws(
      () => resolveSettings({ max: -1, env: {} }),
      (e: unknown) => e instanceof RangeError && /max/.test(e.message),
    );
    assert.throws(() => resolveSettings({ min: 5, max: 2, env: {} }), /min \(5\) must not exceed max \(2\)/);
    assert.throws(() => resolveSettings({ maxOverflow: 1.5, env: {} }), /maxOverflow/);
    assert.throws(() => resolveSettings({ captureSites: 'sometimes' as never, env: {} }), /captureSites/);
  });

  it('passes client options through, hides the password and adds the server-side guards', () => {
    const given = {
      host: '127.0.0.1',
      password: 's3cret',
      maxOverflow: 3,
      statementTimeoutMillis: 1500,
      service: 'vitals',
      name: 'writer',
    };
    const snapshot = JSON.stringify(given);
    const out = clientOptionsFrom(given, resolveSettings({ ...given, env: {} }));
    assert.equal(JSON.stringify(given), snapshot, 'the caller’s object is not changed');
    assert.equal(out.host, '127.0.0.1');
    assert.equal(out.maxOverflow, undefined, 'pgwarden keys are not client options');
    assert.equal(out.statement_timeout, 1500);
    assert.equal(out.application_name, 'vitals:writer');
    assert.equal(out.password, 's3cret');
    assert.ok(!JSON.stringify(out).includes('s3cret'));
  });
});
