import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AcquireTimeoutError,
  isAcquireTimeoutError,
  isCircuitOpenError,
  isQueueFullError,
} from './errors.js';
import { fakePool, keepEventLoopAlive, stubPool, until } from './stub-pools.fixture.js';

keepEventLoopAlive();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('sizing', () => {
  it('creates min connections at start and keeps them warm', async () => {
    const { pool, Stub } = stubPool({ min: 3, max: 5, idleTimeoutMillis: 10 });
    await until(() => pool.idleCount === 3);
    await sleep(30);
    assert.equal(pool.totalCount, 3, 'idle timeout must not close connections at or below min');
    assert.equal(Stub.stats.created, 3);
    await pool.end();
  });

  it('closes overflow connections on release while nobody waits', async () => {
    const { pool } = stubPool({ max: 2, maxOverflow: 2 });
    const clients = await Promise.all([pool.connect(), pool.connect(), pool.connect(), pool.connect()]);
    assert.equal(pool.totalCount, 4);
    const fifth = pool.connect();
    assert.equal(pool.waitingCount, 1, 'max + maxOverflow is a hard limit');
    clients[0].release();
    const handed = await fifth;
    assert.equal(handed, clients[0], 'an overflow connection goes to a waiter before it is closed');
    for (const c of [handed, clients[1], clients[2]]) c.release();
    assert.equal(pool.totalCount, 2, 'back to max once nobody waits');
    assert.equal(pool.idleCount, 1);
    assert.equal(pool.inspect().stats.closed.overflow, 2);
    clients[3].release();
    await pool.end();
  });

  it('ends a HikariCP-style spike with fewer than 10 connections', async () => {
    // HikariCP's SpikeLoadTest: 150 ms to connect, 2 ms per query, max 50, min 5, 50 callers at once.
    const { pool, Stub } = stubPool(
      { max: 50, min: 5, idleTimeoutMillis: 400 },
      { connectDelayMs: 150, queryDelayMs: 2 },
    );
    await until(() => pool.idleCount === 5);
    const results = await Promise.all(Array.from({ length: 50 }, () => pool.query('SELECT 1')));
    assert.equal(results.length, 50);
    await sleep(200); // let connections still being made arrive
    assert.ok(Stub.stats.created < 10, `spike opened ${Stub.stats.created} connections`);
    await until(() => pool.totalCount === 5, 2000);
    await pool.end();
  });

  it('resizes at run time without losing work', async () => {
    const { pool } = stubPool({ max: 4 }, { queryDelayMs: 3 });
    const work = Array.from({ length: 60 }, (_, i) => pool.query(`SELECT ${i}`));
    pool.resize({ max: 1 });
    await sleep(5);
    pool.resize({ max: 6, min: 2 });
    const results = await Promise.all(work);
    assert.equal(results.length, 60);
    assert.ok(pool.totalCount <= 6);
    assert.equal(pool.inspect().settings.max, 6);
    assert.throws(() => pool.resize({ max: 0 }), RangeError);
    await pool.end();
  });
});

describe('acquire deadline', () => {
  it('names the holder site in the timeout error', async () => {
    const { pool } = stubPool({ max: 1, connectionTimeoutMillis: 40, captureSites: 'always' });
    const holder = await pool.connect();
    await holder.query('SELECT * FROM vitals WHERE patient_id = 42');
    const err = await pool.connect().then(
      () => assert.fail('expected a timeout'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof AcquireTimeoutError);
    assert.ok(isAcquireTimeoutError(err));
    assert.equal(err.code, 'PGWARDEN_ACQUIRE_TIMEOUT');
    assert.match(err.message, /timeout exceeded when trying to connect/);
    assert.match(err.message, /total=1, active=1, idle=0/);
    assert.match(err.message, /pool\.test\.ts:\d+:\d+/);
    const top = err.diagnosis.holders[0];
    assert.ok(top);
    assert.match(top.site ?? '', /packages\/pool\/src\/pool\.test\.ts:\d+:\d+$/);
    assert.ok(top.heldMillis >= 40);
    assert.equal(top.lastQuery, 'SELECT * FROM vitals WHERE patient_id = 42');
    holder.release();
    await pool.end();
  });

  it('gives a connection that arrives after its caller gave up to the pool', async () => {
    const { pool, Stub, clock } = fakePool({ max: 1, connectionTimeoutMillis: 100 }, { connectDelayMs: 0 });
    const first = pool.connect();
    await clock.advanceAsync(1);
    const holder = await first;
    const late = pool.connect().then(
      () => 'served',
      (e: unknown) => e,
    );
    await clock.advanceAsync(50);
    Stub.knobs.connectDelayMs = 80;
    holder.release(new Error('broken')); // a new connection starts for the waiter at t=50
    await clock.advanceAsync(60); // t=110: the waiter gave up at t=100
    assert.ok(isAcquireTimeoutError(await late));
    assert.equal(pool.totalCount, 1, 'the connection being made is still counted');
    await clock.advanceAsync(30); // t=140: it arrives
    assert.equal(pool.idleCount, 1, 'the late connection went back to the pool');
    assert.equal(Stub.stats.open, 1);
    const next = pool.connect();
    await clock.advanceAsync(1);
    (await next).release();
    assert.equal(Stub.stats.created, 2, 'no new connection was needed');
    const ended = pool.end();
    await clock.advanceAsync(1);
    await ended;
  });

  it('covers a connect that never completes (DNS or TCP stall)', async () => {
    const { pool, Stub, clock } = fakePool(
      { connectionTimeoutMillis: 100, retry: false },
      { hangConnect: true },
    );
    const attempt = pool.connect().then(
      () => 'connected',
      (e: unknown) => e,
    );
    await clock.advanceAsync(101);
    assert.ok(isAcquireTimeoutError(await attempt));
    await clock.advanceAsync(10);
    assert.equal(pool.totalCount, 0, 'the stalled attempt was torn down, not leaked');
    assert.equal(Stub.stats.open, 0);
    await pool.end();
  });

  it('sheds load at once past maxWaiting and serves waiters first-come first-served', async () => {
    const { pool } = stubPool({ max: 1, maxWaiting: 2 });
    const holder = await pool.connect();
    const order: number[] = [];
    const a = pool.connect().then((c) => {
      order.push(1);
      c.release();
    });
    const b = pool.connect().then((c) => {
      order.push(2);
      c.release();
    });
    const started = Date.now();
    const shed = await pool.connect().then(
      () => 'served',
      (e: unknown) => e,
    );
    assert.ok(isQueueFullError(shed));
    assert.ok(Date.now() - started < 50, 'rejected without waiting');
    holder.release();
    await Promise.all([a, b]);
    assert.deepEqual(order, [1, 2]);
    assert.equal(pool.inspect().stats.queueFull, 1);
    await pool.end();
  });
});

describe('connection life', () => {
  it('retires connections at max lifetime with jitter, never while in use', async () => {
    const { pool, clock } = fakePool({ maxLifetimeSeconds: 10, lifetimeJitter: 0.1, max: 20 });
    const busy = pool.connect();
    await clock.advanceAsync(1);
    const client = await busy;
    const retires = pool.inspect().connections[0]?.retiresInMillis ?? -1;
    assert.ok(retires >= 9000 && retires <= 10_000, `retires in ${retires}ms`);
    await clock.advanceAsync(11_000);
    assert.equal(pool.totalCount, 1, 'a busy connection is not closed for age');
    assert.equal(pool.expiredCount, 1);
    client.release();
    assert.equal(pool.totalCount, 0, 'retired when returned');
    assert.equal(pool.inspect().stats.closed.lifetime, 1);

    const idle = pool.connect();
    await clock.advanceAsync(1);
    (await idle).release();
    assert.equal(pool.idleCount, 1);
    await clock.advanceAsync(10_001);
    assert.equal(pool.totalCount, 0, 'an idle connection is closed at its lifetime');
    await pool.end();
  });

  it('spreads lifetimes so connections do not retire together', async () => {
    const { pool, clock } = fakePool({ maxLifetimeSeconds: 100, lifetimeJitter: 0.2, max: 20 });
    const pending = Array.from({ length: 20 }, () => pool.connect());
    await clock.advanceAsync(1);
    const clients = await Promise.all(pending);
    const retires = new Set(pool.inspect().connections.map((c) => Math.round(c.retiresInMillis ?? 0)));
    assert.ok(retires.size > 10, 'lifetimes are jittered');
    for (const r of retires) assert.ok(r >= 80_000 && r <= 100_000);
    for (const c of clients) c.release();
    await pool.end();
  });

  it('closes idle connections above min after idleTimeoutMillis', async () => {
    const { pool, clock } = fakePool({ min: 1, max: 3, idleTimeoutMillis: 1000 });
    await clock.advanceAsync(1);
    const pending = [pool.connect(), pool.connect(), pool.connect()];
    await clock.advanceAsync(1);
    for (const c of await Promise.all(pending)) c.release();
    assert.equal(pool.idleCount, 3);
    await clock.advanceAsync(999);
    assert.equal(pool.totalCount, 3);
    await clock.advanceAsync(2);
    assert.equal(pool.totalCount, 1);
    assert.equal(pool.inspect().stats.closed.idle_timeout, 2);
    await pool.end();
  });

  it('replaces a connection after maxUses', async () => {
    const { pool } = stubPool({ maxUses: 2 });
    const a = await pool.connect();
    a.release();
    const b = await pool.connect();
    assert.equal(a, b);
    b.release();
    const c = await pool.connect();
    assert.notEqual(c, a);
    c.release();
    await pool.end();
  });

  it('validates a long-idle connection and replaces a broken one transparently', async () => {
    let failValidation = false;
    const { pool, Stub, clock } = fakePool(
      { validateAfterIdleMillis: 1000 },
      {
        failQuery: (text) =>
          failValidation && text === 'SELECT 1' ? new Error('server closed the connection') : undefined,
      },
    );
    const first = pool.connect();
    await clock.advanceAsync(1);
    const a = await first;
    a.release();
    await clock.advanceAsync(2000);
    const queriesBefore = Stub.stats.queries;
    const again = pool.connect();
    await clock.advanceAsync(1);
    assert.equal(await again, a, 'a healthy connection passes validation');
    assert.equal(Stub.stats.queries, queriesBefore + 1, 'it was checked with one statement');
    a.release();
    await clock.advanceAsync(2000);
    failValidation = true;
    const replaced = pool.connect();
    await clock.advanceAsync(1);
    await clock.advanceAsync(1);
    const b = await replaced;
    assert.notEqual(b, a, 'the broken connection was replaced');
    assert.equal(pool.inspect().stats.closed.validation_failed, 1);
    b.release();
    const ended = pool.end();
    await clock.advanceAsync(1);
    await ended;
  });
});

describe('errors', () => {
  it('turns an error on an idle client into a pool error event with err.client', async () => {
    const { pool } = stubPool();
    const client = await pool.connect();
    client.release();
    const seen: { err: Error & { client?: unknown }; client: unknown }[] = [];
    pool.on('error', (err, c) => seen.push({ err, client: c }));
    client.simulateError(new Error('terminating connection due to administrator command'));
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.err.client, client);
    assert.equal(pool.totalCount, 0);
    await pool.end();
  });

  it('does not crash on an idle client error when nobody listens', async () => {
    const { pool } = stubPool();
    const client = await pool.connect();
    client.release();
    assert.doesNotThrow(() => client.simulateError(new Error('connection reset')));
    assert.equal(pool.totalCount, 0);
    (await pool.connect()).release();
    await pool.end();
  });

  it('keeps an errored checked-out client until release, then drops it', async () => {
    const { pool } = stubPool();
    let poolErrors = 0;
    pool.on('error', () => poolErrors++);
    const client = await pool.connect();
    assert.doesNotThrow(() => client.simulateError(new Error('connection lost')));
    assert.equal(poolErrors, 0, 'the holder handles it, not the pool');
    assert.equal(pool.totalCount, 1);
    client.release();
    assert.equal(pool.totalCount, 0);
    await pool.end();
  });

  it('throws on a double release', async () => {
    const { pool } = stubPool();
    const client = await pool.connect();
    const firstRelease = client.release;
    firstRelease();
    assert.throws(() => client.release(), /already been released/);
    const again = await pool.connect();
    assert.equal(again, client);
    assert.throws(
      () => firstRelease(),
      /already been released/,
      'a stale release cannot free a new checkout',
    );
    assert.equal(pool.activeCount, 1);
    again.release();
    await pool.end();
  });

  it('never calls a connect callback synchronously', async () => {
    const { pool } = stubPool();
    (await pool.connect()).release();
    let called = false;
    await new Promise<void>((resolve) => {
      pool.connect((err, client, release) => {
        called = true;
        assert.equal(err, undefined);
        assert.ok(client);
        release();
        resolve();
      });
      assert.equal(called, false);
    });
    await pool.end();
  });

  it('rejects use after end and a second end', async () => {
    const { pool } = stubPool();
    await pool.end();
    await assert.rejects(pool.connect(), /Cannot use a pool after calling end on the pool/);
    await assert.rejects(pool.query('SELECT 1'), /Cannot use a pool after calling end/);
    await assert.rejects(pool.end(), /Called end on pool more than once/);
  });
});

describe('resilience', () => {
  const refused = () =>
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

  it('retries transient connect failures and not permanent ones', async () => {
    const tooMany = Object.assign(new Error('sorry, too many clients already'), { code: '53300' });
    const { pool, Stub } = stubPool(
      { retry: { maxAttempts: 3, initialDelayMillis: 1, maxDelayMillis: 5 } },
      { failConnect: (n) => (n <= 2 ? tooMany : undefined) },
    );
    (await pool.connect()).release();
    assert.equal(Stub.stats.connectAttempts, 3);
    await pool.end();

    const badPassword = Object.assign(new Error('password authentication failed'), { code: '28P01' });
    const other = stubPool(
      { retry: { maxAttempts: 3, initialDelayMillis: 1 } },
      { failConnect: () => badPassword },
    );
    await assert.rejects(other.pool.connect(), /password authentication failed/);
    assert.equal(other.Stub.stats.connectAttempts, 1, 'a wrong password is not retried');
    await other.pool.end();
  });

  it('opens the breaker after repeated failures, fails fast, and closes when the server is back', async () => {
    let down = true;
    const { pool, Stub } = stubPool(
      { retry: false, circuitBreaker: { threshold: 2, halfOpenAfterMillis: 60 } },
      { failConnect: () => (down ? refused() : undefined) },
    );
    await assert.rejects(pool.connect(), /ECONNREFUSED/);
    await assert.rejects(pool.connect(), /ECONNREFUSED/);
    const attempts = Stub.stats.connectAttempts;
    const started = Date.now();
    const err = await pool.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(isCircuitOpenError(err), `expected an open circuit, got ${String(err)}`);
    assert.ok(Date.now() - started < 50);
    assert.equal(Stub.stats.connectAttempts, attempts, 'no connection was attempted while open');
    assert.equal(pool.inspect().breaker, 'open');
    down = false;
    await sleep(80);
    (await pool.connect()).release();
    assert.equal(pool.inspect().breaker, 'closed');
    await pool.end();
  });
});

describe('leak detection', () => {
  it('reports a leak once with its site, and again when it is returned', async () => {
    const { pool, clock } = fakePool({ leakDetectionThresholdMillis: 1000, captureSites: 'always' });
    const leaks: { site?: string; heldMillis: number }[] = [];
    const returned: { heldMillis: number }[] = [];
    pool.on('leak', (info) => leaks.push(info));
    pool.on('leakReturned', (info) => returned.push(info));
    const pending = pool.connect();
    await clock.advanceAsync(1);
    const client = await pending;
    await clock.advanceAsync(900);
    assert.equal(leaks.length, 0);
    await clock.advanceAsync(600);
    assert.equal(leaks.length, 1);
    assert.match(leaks[0]?.site ?? '', /pool\.test\.ts:\d+:\d+/);
    await clock.advanceAsync(5000);
    assert.equal(leaks.length, 1, 'logged once');
    assert.equal(pool.inspect().checkouts[0]?.leakSuspected, true);
    client.release();
    assert.equal(returned.length, 1);
    assert.ok((returned[0]?.heldMillis ?? 0) >= 6000);
    assert.equal(pool.inspect().stats.leaks, 1);
    await pool.end();
  });

  it('frees the slot of a leaked connection whose server connection ended, and ignores its release', async () => {
    const { pool, clock } = fakePool({ max: 1, leakDetectionThresholdMillis: 1000, captureSites: 'always' });
    const reclaimed: { site?: string; pid?: number }[] = [];
    pool.on('leak', () => {});
    pool.on('leakReclaimed', (info) => reclaimed.push(info));
    const first = pool.connect();
    await clock.advanceAsync(1);
    const leaked = await first;
    const waiting = pool.connect();
    await clock.advanceAsync(500);
    (leaked as unknown as { simulateTermination(): void }).simulateTermination();
    assert.equal(reclaimed.length, 0, 'before the leak threshold the holder still owns it');
    assert.equal(pool.totalCount, 1);
    leaked.release();
    const again = await waiting;
    again.release();

    const second = pool.connect();
    await clock.advanceAsync(1);
    const leaked2 = await second;
    const waiter = pool.connect();
    await clock.advanceAsync(1500);
    assert.equal(pool.waitingCount, 1);
    (leaked2 as unknown as { simulateTermination(): void }).simulateTermination();
    await clock.advanceAsync(10);
    const served = await waiter;
    assert.equal(reclaimed.length, 1);
    assert.match(reclaimed[0]?.site ?? '', /pool\.test\.ts:\d+:\d+/);
    assert.notEqual(served, leaked2, 'the waiter got a new connection');
    assert.doesNotThrow(() => leaked2.release(), 'a reclaimed client is released as a no-op');
    assert.doesNotThrow(() => leaked2.release(new Error('late')), 'with an error too');
    served.release();
    assert.equal(pool.totalCount, 1);
    const stats = pool.inspect().stats;
    assert.equal(stats.leaksReclaimed, 1);
    assert.equal(stats.closed.leak_reclaimed, 1);
    await pool.end();
  });

  it('ignores the done callback of a reclaimed checkout and emits release for it', async () => {
    const { pool, clock } = fakePool({ max: 1, leakDetectionThresholdMillis: 100 });
    pool.on('leak', () => {});
    pool.on('leakReclaimed', () => {});
    const released: (Error | undefined)[] = [];
    pool.on('release', (err) => released.push(err));
    let done: ((err?: Error | boolean) => void) | undefined;
    let held: unknown;
    pool.connect((err, client, release) => {
      assert.ifError(err);
      held = client;
      done = release;
    });
    await clock.advanceAsync(200);
    (held as { simulateTermination(): void }).simulateTermination();
    await clock.advanceAsync(1);
    assert.equal(released.length, 1, 'the reclaimed checkout counts as released');
    assert.match(String(released[0]?.message), /terminated/);
    assert.doesNotThrow(() => done?.(), 'the saved done callback does nothing');
    assert.equal(released.length, 1);
    const next = pool.connect();
    await clock.advanceAsync(1);
    (await next).release();
    assert.equal(pool.totalCount, 1);
    assert.equal(pool.inspect().counts.active, 0);
    await pool.end();
  });

  it('captures every site after a leak in adaptive mode', async () => {
    const { pool, clock } = fakePool({ leakDetectionThresholdMillis: 100 });
    const leaks: { site?: string }[] = [];
    pool.on('leak', (info) => leaks.push(info));
    pool.on('leakReturned', () => {});
    const first = pool.connect();
    await clock.advanceAsync(1);
    const a = await first;
    await clock.advanceAsync(150);
    assert.equal(leaks.length, 1);
    a.release();
    const second = pool.connect();
    await clock.advanceAsync(1);
    const b = await second;
    await clock.advanceAsync(150);
    assert.equal(leaks.length, 2);
    assert.match(
      leaks[1]?.site ?? '',
      /pool\.test\.ts:\d+:\d+/,
      'after a leak every checkout records its site',
    );
    b.release();
    await pool.end();
  });
});

describe('inspect', () => {
  it('lists checkouts with pid, site, age and truncated last query, and never the password', async () => {
    const { pool } = stubPool({ password: 'hunter2-secret', captureSites: 'always', name: 'writer' });
    const client = await pool.connect();
    await client.query(`SELECT '${'x'.repeat(1000)}'`);
    const view = pool.inspect();
    const text = JSON.stringify(view);
    assert.ok(!text.includes('hunter2-secret'));
    assert.equal(view.pool, 'writer');
    assert.equal(view.counts.active, 1);
    assert.equal(view.checkouts.length, 1);
    const checkout = view.checkouts[0];
    assert.equal(checkout?.pid, client.processID);
    assert.match(checkout?.site ?? '', /pool\.test\.ts/);
    assert.ok((checkout?.lastQuery?.length ?? 0) <= 500);
    assert.equal(Object.keys(pool.options).includes('password'), false, 'the password is not enumerable');
    assert.equal(pool.options.password, 'hunter2-secret', 'but the client still gets it');
    client.release();
    await pool.end();
  });
});
