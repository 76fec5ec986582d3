// Robustness: the pool keeps its books straight when listeners throw, sizes change, lifetimes end mid-validation and constructors fail.
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { createStubClientClass } from '@pgwarden/testkit';
import { Pool } from './pool.js';
import { fakePool, keepEventLoopAlive, stubPool, until } from './stub-pools.fixture.js';

keepEventLoopAlive();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('robustness', () => {
  it('a pool whose constructor throws (duplicate metrics name) opens no connections', async () => {
    const registry = new Registry();
    const first = stubPool({ name: 'dup', min: 2, metrics: { registry } });
    const Stub2 = createStubClientClass();
    assert.throws(
      () => new Pool({ env: {}, name: 'dup', min: 2, metrics: { registry } }, Stub2 as never),
      /already registered/,
    );
    await sleep(30);
    try {
      assert.equal(
        Stub2.stats.created,
        0,
        `the constructor threw, yet ${Stub2.stats.created} connections were opened that nothing can close`,
      );
    } finally {
      for (const c of Stub2.instances) c.end();
      await first.pool.end();
    }
  });

  it('lowering min with resize() lets idle connections above it time out', async () => {
    const { pool, clock } = fakePool({ min: 2, max: 5, idleTimeoutMillis: 1000 });
    await until(() => pool.idleCount === 2);
    pool.resize({ min: 0 });
    await clock.advanceAsync(60_000);
    assert.equal(pool.totalCount, 0, 'idle connections above the new min were never reaped');
    await pool.end();
  });

  it('a connection whose lifetime ends while it is being validated is not kept past its lifetime', async () => {
    const { pool, clock, Stub } = fakePool({
      max: 2,
      maxLifetimeSeconds: 10,
      lifetimeJitter: 0,
      validateAfterIdleMillis: 1000,
      validationTimeoutMillis: 5000,
      connectionTimeoutMillis: 2000,
      idleTimeoutMillis: 0,
    });
    const client = await pool.connect();
    client.release();
    await clock.advanceAsync(9000); // idle 9s: needs validation, 1s of life left
    Stub.knobs.queryDelayMs = 3000; // validation SELECT 1 takes 3s
    const waiting = pool.connect().then(
      (c) => c,
      (e: Error) => e,
    );
    await clock.advanceAsync(1500); // lifetime timer fires during validation
    await clock.advanceAsync(1500); // waiter times out at 11s, validation succeeds at 12s
    const got = await waiting;
    if (!(got instanceof Error)) got.release();
    await clock.advanceAsync(60_000);
    const first = Stub.instances[0] as { _ending: boolean };
    assert.equal(pool.expiredCount, 0, 'an expired connection sits in the pool');
    assert.equal(first._ending, true, 'the connection is still open 60s past its max lifetime');
    await pool.end();
  });

  it('a throwing "connect" listener does not leave a phantom connecting connection', async () => {
    // With a process-level unhandledRejection handler (common in servers) the pool survives the throw,
    // but the slot stays 'connecting' forever: total=1, connecting=0, and max=1 means the pool is dead.
    const { pool } = stubPool({ max: 1, connectionTimeoutMillis: 100 });
    let calls = 0;
    pool.on('connect', () => {
      if (calls++ === 0) throw new Error('listener bug');
    });
    await pool.connect().then(
      (c) => c.release(),
      () => undefined,
    );
    const states = pool.inspect().connections.map((c) => c.state);
    assert.ok(
      !states.includes('connecting') || pool._connecting > 0,
      `phantom slot: ${JSON.stringify(states)}, _connecting=${pool._connecting}`,
    );
    const next = await pool.connect().then(
      (c) => c,
      (e: Error) => e,
    );
    assert.ok(!(next instanceof Error), `the pool is dead: ${(next as Error).message?.split('\n')[0]}`);
  });

  it('a throwing "release" listener does not strand the connection as busy-but-uncounted', async () => {
    const { pool } = stubPool({ max: 1, connectionTimeoutMillis: 100 });
    const client = await pool.connect();
    pool.on('release', () => {
      throw new Error('listener bug');
    });
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    assert.doesNotThrow(() => client.release(), 'a listener bug is reported, not thrown into the pool');
    await new Promise((r) => setImmediate(r));
    process.off('warning', onWarning);
    assert.ok(warnings.some((w) => /"release" listener threw: listener bug/.test(w.message)));
    pool.removeAllListeners('release');
    const ins = pool.inspect();
    assert.equal(
      ins.checkouts.length,
      pool.activeCount,
      `books drifted: activeCount=${pool.activeCount} but ${ins.checkouts.length} connection(s) in state busy`,
    );
    const next = await pool.connect().then(
      (c) => c,
      (e: Error) => e,
    );
    assert.ok(!(next instanceof Error), `the pool is dead: ${(next as Error).message?.split('\n')[0]}`);
  });

  it('maxWaiting: 0 still lets a caller open a new connection when the pool has room', async () => {
    const { pool } = stubPool({ max: 5, maxWaiting: 0 });
    const got = await pool.connect().then(
      (c) => c,
      (e: Error) => e,
    );
    assert.ok(
      !(got instanceof Error),
      `empty pool with room refused: ${(got as Error).message?.split('\n')[0]}`,
    );
    if (!(got instanceof Error)) got.release();
    await pool.end();
  });

  it('a password inside connectionString stays out of util.inspect(pool)', async () => {
    const secret = 'Zq9-secret-pw';
    const { pool } = stubPool({ connectionString: `postgres://app:${secret}@db.example:5432/app` });
    assert.ok(!JSON.stringify(pool.inspect()).includes(secret), 'in inspect()');
    assert.ok(!inspect(pool, { depth: 2 }).includes(secret), 'in util.inspect(pool)');
    await pool.end();
  });
});
