/**
 * Pools over the testkit's stub client, for the unit tests (not part of the build: tsconfig excludes
 * *.fixture.ts).
 */
import { after, before } from 'node:test';
import { FakeClock, type StubClientKnobs, createStubClientClass } from '@pgwarden/testkit';
import type { PoolOptions } from './options.js';
import { Pool } from './pool.js';

/** A pool of stub clients on real timers, reading no DB_POOL_* variables. */
export function stubPool(options: PoolOptions = {}, knobs: StubClientKnobs = {}) {
  const Stub = createStubClientClass(knobs);
  const pool = new Pool({ env: {}, ...options }, Stub as never);
  return { pool, Stub };
}

/** A pool of stub clients whose pool and client timers both run on one fake clock. */
export function fakePool(options: PoolOptions = {}, knobs: StubClientKnobs = {}) {
  const clock = new FakeClock();
  const Stub = createStubClientClass({ clock, ...knobs });
  const pool = new Pool({ env: {}, clock, ...options }, Stub as never);
  return { pool, Stub, clock };
}

/**
 * The pool unrefs its timers (as pg-pool does) and stub clients hold no sockets, so a test waiting on
 * the pool alone would let the process exit: keep the loop alive for the file's tests.
 */
export function keepEventLoopAlive(): void {
  let timer: NodeJS.Timeout;
  before(() => {
    timer = setInterval(() => {}, 1000);
  });
  after(() => clearInterval(timer));
}

/** Polls a synchronous condition on real time. */
export async function until(predicate: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
