import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock, createStubClientClass } from '@pgwarden/testkit';
import { isPoolError } from './errors.js';
import { Pool } from './pool.js';
import { keepEventLoopAlive } from './stub-pools.fixture.js';

keepEventLoopAlive();

describe('ending', () => {
  it('lets checked-out clients finish, closes idle ones, and fails callers still in line', async () => {
    const Stub = createStubClientClass();
    const pool = new Pool({ max: 1, env: {} }, Stub as never);
    const held = await pool.connect();
    const queued = pool.connect().then(
      () => 'served',
      (e: unknown) => e,
    );
    let ended = false;
    const ending = pool.end().then(() => {
      ended = true;
    });
    const err = await queued;
    assert.ok(
      isPoolError(err) && err.code === 'PGWARDEN_POOL_ENDED',
      'a queued caller is told, not left hanging',
    );
    await new Promise((r) => setImmediate(r));
    assert.equal(ended, false, 'end waits for the checked-out client');
    held.release();
    await ending;
    assert.equal(pool.ended, true);
    assert.equal(pool.totalCount, 0);
    assert.equal(Stub.stats.open, 0);
  });

  it('finishes when a connection being validated comes back during end()', async () => {
    const clock = new FakeClock();
    const Stub = createStubClientClass({ clock, queryDelayMs: 50 });
    const pool = new Pool({ validateAfterIdleMillis: 100, env: {}, clock }, Stub as never);
    const first = pool.connect();
    await clock.advanceAsync(1);
    (await first).release();
    await clock.advanceAsync(200);
    const validating = pool.connect();
    await clock.advanceAsync(1);
    const ending = pool.end();
    await clock.advanceAsync(60);
    (await validating).release();
    await clock.advanceAsync(1);
    await ending;
    assert.equal(pool.totalCount, 0);
  });
});

describe('growth under load', () => {
  it('opens at most maxConnecting connections at once while others are busy', async () => {
    const Stub = createStubClientClass({ connectDelayMs: 30 });
    const pool = new Pool({ max: 20, maxConnecting: 2, env: {} }, Stub as never);
    const first = await pool.connect();
    const waiting = Array.from({ length: 10 }, () => pool.connect());
    assert.equal(pool.totalCount, 3, 'one busy, two being made');
    first.release();
    const clients = await Promise.all(waiting);
    for (const c of clients) c.release();
    assert.ok(Stub.stats.created <= 11);
    await pool.end();
  });

  it('opens one connection per caller when none is busy (pg.Pool behaviour)', async () => {
    const Stub = createStubClientClass({ connectDelayMs: 5 });
    const pool = new Pool({ max: 9, env: {} }, Stub as never);
    const pending = Array.from({ length: 30 }, () => pool.connect().then((c) => c.release()));
    assert.equal(pool.totalCount, 9, 'totalCount changes synchronously inside connect()');
    await Promise.all(pending);
    await pool.end();
  });
});

describe('pipelined sharing', () => {
  it('shares a busy pool.query connection only at the limit, never a checked-out client', async () => {
    const Stub = createStubClientClass({ queryDelayMs: 5 });
    const pool = new Pool({ max: 2, pipeline: true, env: {} }, Stub as never);
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => pool.query('SELECT $1::int', [i])),
    );
    assert.equal(results.length, 40);
    assert.ok(Stub.stats.created <= 2, `made ${Stub.stats.created} connections`);

    const held = await pool.connect();
    const other = await pool.connect();
    let ran = false;
    const q = pool.query('SELECT 2').then(() => {
      ran = true;
    });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(ran, false, 'checked-out clients are never shared');
    held.release();
    await q;
    other.release();
    await pool.end();
  });

  it('never shares transaction or session statements', async () => {
    const Stub = createStubClientClass({ queryDelayMs: 5 });
    const pool = new Pool({ max: 1, pipeline: true, env: {} }, Stub as never);
    const a = pool.query('SELECT pg_sleep(0.01)');
    const b = pool.query('BEGIN');
    assert.equal(pool.waitingCount, 1, 'BEGIN waits for a connection of its own');
    await Promise.all([a, b]);
    await pool.end();
  });
});
