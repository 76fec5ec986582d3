// Integration tests against a real PostgreSQL: what the pool does when the server or the network
// misbehaves (server down, backends terminated, a TCP peer that never answers, a connection that
// arrives after its caller gave up).
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  adminClient,
  type EmbeddedServer,
  sleep,
  startPostgres,
  testDatabaseUrl,
  uniqueName,
  waitFor,
} from '@pgwarden/testkit';
import pg from 'pg';
import { isAcquireTimeoutError, isCircuitOpenError, isPoolError } from './errors.js';
import { Pool } from './pool.js';

/** Terminates a backend and waits until it is gone (the one-argument form: PostgreSQL 12 has no timeout). */
async function terminate(admin: pg.Client, pid: number): Promise<void> {
  const res = await admin.query('SELECT pg_terminate_backend($1::int) AS ok', [pid]);
  assert.equal(res.rows[0].ok, true, `backend ${pid} was not terminated`);
  await waitFor(`backend ${pid} to exit`, async () => {
    const left = await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
    return left.rows.length === 0;
  });
}

/** Waits for a backend of `app` to be running a statement containing `fragment`, and terminates it. */
async function terminateWhenRunning(admin: pg.Client, app: string, fragment: string): Promise<number> {
  let pid: number | undefined;
  await waitFor(`a backend of ${app} running ${fragment}`, async () => {
    const res = await admin.query(
      `SELECT pid FROM pg_stat_activity
        WHERE application_name = $1 AND state = 'active' AND position($2 in query) > 0`,
      [app, fragment],
    );
    pid = res.rows[0]?.pid;
    return pid !== undefined;
  });
  await terminate(admin, pid as number);
  return pid as number;
}

async function countBackends(admin: pg.Client, app: string): Promise<number> {
  const res = await admin.query(
    'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
    [app],
  );
  return res.rows[0].n;
}

async function timed<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown; millis: number }> {
  const started = performance.now();
  try {
    const value = await promise;
    return { value, millis: performance.now() - started };
  } catch (error) {
    return { error, millis: performance.now() - started };
  }
}

describe('circuit breaker against a real server that goes away', () => {
  let server: EmbeddedServer;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.destroy();
  });

  it('opens while the server is stopped, fails fast, and closes once the server is back', async () => {
    const pool = new Pool({
      connectionString: server.url,
      name: uniqueName('breaker'),
      circuitBreaker: { threshold: 2, halfOpenAfterMillis: 300 },
      retry: { maxAttempts: 2, initialDelayMillis: 20 },
      connectionTimeoutMillis: 2000,
    });
    const idleErrors: Error[] = [];
    pool.on('error', (err: Error) => idleErrors.push(err));
    try {
      assert.equal((await pool.query('SELECT 1 AS one')).rows[0].one, 1);
      assert.equal(pool.inspect().breaker, 'closed');

      await server.stop();
      // The shutdown terminated the idle connection: the pool drops it and tells its error listener.
      await waitFor('the idle connection to be dropped', () => pool.totalCount === 0);
      assert.equal(idleErrors.length, 1);

      const refused: unknown[] = [];
      let open: { error?: unknown; millis: number } | undefined;
      for (let i = 0; i < 6 && open === undefined; i++) {
        const attempt = await timed(pool.connect());
        assert.equal(attempt.value, undefined, 'connect() succeeded while the server is stopped');
        if (isCircuitOpenError(attempt.error)) open = attempt;
        else refused.push(attempt.error);
      }
      const openedAt = performance.now();
      assert.ok(open, `the breaker never opened; errors: ${refused.map(String).join('; ')}`);
      // threshold 2: two failed connects (each with its retry) open it.
      assert.equal(refused.length, 2);
      for (const err of refused) assert.equal((err as { code?: string }).code, 'ECONNREFUSED');
      assert.equal((open.error as { code?: string }).code, 'PGWARDEN_CIRCUIT_OPEN');
      assert.ok(open.millis < 100, `an open breaker should fail fast, took ${open.millis.toFixed(1)}ms`);
      assert.equal(pool.inspect().breaker, 'open');

      // Failing fast stays fast, and nothing is left connecting.
      for (let i = 0; i < 3; i++) {
        const again = await timed(pool.query('SELECT 1'));
        assert.ok(isCircuitOpenError(again.error), `expected CircuitOpenError, got ${String(again.error)}`);
        assert.ok(again.millis < 100, `fail-fast took ${again.millis.toFixed(1)}ms`);
      }
      assert.equal(pool.totalCount, 0);

      await server.start();
      const halfOpenAt = openedAt + 300 + 30;
      if (performance.now() < halfOpenAt) await sleep(halfOpenAt - performance.now());
      const back = await pool.query('SELECT 2 AS two');
      assert.equal(back.rows[0].two, 2);
      assert.equal(pool.inspect().breaker, 'closed');
      assert.equal(pool.totalCount, 1);
    } finally {
      await pool.end();
    }
  });
});

describe('statements whose backend is terminated', () => {
  let url: string;
  let admin: pg.Client;
  before(async () => {
    url = await testDatabaseUrl();
    admin = await adminClient(url);
  });
  after(async () => {
    await admin?.end();
  });

  it('retries an idempotent statement whose backend was terminated mid-statement', async () => {
    const app = uniqueName('idem');
    const pool = new Pool({ connectionString: url, name: app, application_name: app, max: 2 });
    try {
      const running = pool.query({
        text: 'SELECT pg_sleep(1), pg_backend_pid() AS pid, 42 AS answer',
        idempotent: true,
      });
      const killed = await terminateWhenRunning(admin, app, 'pg_sleep');
      const res = await running;
      assert.equal(res.rows[0].answer, 42);
      assert.notEqual(res.rows[0].pid, killed, 'the answer must come from a new backend');
      const stats = pool.inspect().stats;
      assert.equal(stats.created, 2);
      assert.equal(stats.closed.released_with_error, 1);
    } finally {
      await pool.end();
    }
  });

  it('does not retry a statement not marked idempotent: it rejects with the connection error', async () => {
    const app = uniqueName('nonidem');
    const pool = new Pool({ connectionString: url, name: app, application_name: app, max: 2 });
    try {
      const running = pool.query({ text: 'SELECT pg_sleep(1), 42 AS answer' });
      running.catch(() => {}); // it may reject before the termination helper returns
      await terminateWhenRunning(admin, app, 'pg_sleep');
      await assert.rejects(running, (err: Error & { code?: string }) => {
        assert.equal(err.code, '57P01');
        assert.match(err.message, /terminating connection due to administrator command/);
        return true;
      });
      assert.equal(pool.inspect().stats.created, 1, 'the statement was retried');
      await waitFor('the broken connection to be dropped', () => pool.totalCount === 0);
      assert.equal((await pool.query('SELECT 1 AS one')).rows[0].one, 1);
    } finally {
      await pool.end();
    }
  });

  it("hands an idle client's error to the pool 'error' listener with err.client, and drops it", async () => {
    const app = uniqueName('idle-err');
    const pool = new Pool({ connectionString: url, name: app, application_name: app });
    const seen: { err: Error & { client?: unknown }; client: unknown }[] = [];
    pool.on('error', (err: Error, client: unknown) => seen.push({ err, client }));
    try {
      await pool.query('SELECT 1');
      assert.equal(pool.idleCount, 1);
      const client = pool._clients[0];
      const pid = pool.inspect().connections[0]?.pid;
      assert.equal(typeof pid, 'number');
      assert.equal(pid, client.processID);

      await terminate(admin, pid as number);
      await waitFor('the pool error event', () => seen.length > 0 && pool.totalCount === 0);
      assert.equal(seen.length, 1);
      const first = seen[0] as (typeof seen)[number];
      assert.equal(first.client, client);
      assert.equal(first.err.client, client);
      assert.equal((first.err as { code?: string }).code, '57P01');
      assert.equal(pool.inspect().stats.closed.error, 1);

      const res = await pool.query('SELECT pg_backend_pid() AS pid');
      assert.notEqual(res.rows[0].pid, pid);
    } finally {
      await pool.end();
    }
  });

  it('survives an idle client error without any pool error listener', async () => {
    const app = uniqueName('idle-nolistener');
    const logged: string[] = [];
    const pool = new Pool({
      connectionString: url,
      name: app,
      application_name: app,
      log: (...messages: unknown[]) => logged.push(String(messages[0])),
    });
    try {
      await pool.query('SELECT 1');
      assert.equal(pool.listenerCount('error'), 0);
      const pid = pool.inspect().connections[0]?.pid as number;
      await terminate(admin, pid);
      await waitFor('the broken idle connection to be dropped', () => pool.totalCount === 0);
      assert.ok(logged.includes('idle client error (no pool error listener)'), logged.join('\n'));
      const res = await pool.query('SELECT pg_backend_pid() AS pid');
      assert.notEqual(res.rows[0].pid, pid);
      assert.equal(pool.totalCount, 1);
    } finally {
      await pool.end();
    }
  });

  it('a checked-out client whose backend is terminated: its query rejects and release() drops it', async () => {
    const app = uniqueName('checked-out');
    const pool = new Pool({ connectionString: url, name: app, application_name: app });
    try {
      const client = await pool.connect();
      const pid = client.processID as number;
      assert.equal(pool.totalCount, 1);
      await terminate(admin, pid);
      await assert.rejects(client.query('SELECT 1'));
      client.release();
      await waitFor('the dead connection to be dropped', () => pool.totalCount === 0);
      const closed = pool.inspect().stats.closed;
      assert.equal((closed.broken ?? 0) + (closed.error ?? 0), 1, JSON.stringify(closed));
      const res = await pool.query('SELECT pg_backend_pid() AS pid');
      assert.notEqual(res.rows[0].pid, pid);
    } finally {
      await pool.end();
    }
  });
});

describe('connections that stall or arrive late', () => {
  it('gives up on a TCP peer that never answers within connectionTimeoutMillis and leaks nothing', async () => {
    const sockets = new Set<net.Socket>();
    let accepted = 0;
    const server = net.createServer((socket) => {
      accepted++;
      sockets.add(socket);
      // Read (and ignore) what the client sends, so its hang-up is seen; never answer.
      socket.resume();
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const timeout = 250;
    const pool = new Pool({
      host: '127.0.0.1',
      port,
      user: 'nobody',
      password: 'irrelevant',
      database: 'nothing',
      name: uniqueName('stall'),
      connectionTimeoutMillis: timeout,
      retry: { maxAttempts: 2, initialDelayMillis: 10 },
    });
    try {
      const attempt = await timed(pool.connect());
      assert.equal(attempt.value, undefined);
      assert.ok(isPoolError(attempt.error), `expected a pool error, got ${String(attempt.error)}`);
      assert.match((attempt.error as Error).message, /timeout/i);
      assert.ok(
        attempt.millis >= timeout - 5 && attempt.millis < timeout + 150,
        `connect() settled after ${attempt.millis.toFixed(0)}ms, expected about ${timeout}ms`,
      );
      assert.ok(accepted >= 1, 'the stalled server never saw a connection');
      // The attempt (and its retry) are torn down: no client left, no socket left open on the server.
      await waitFor(
        'the stalled attempts to be torn down',
        () => pool.totalCount === 0 && pool.inspect().counts.connecting === 0 && sockets.size === 0,
      );
    } finally {
      await pool.end();
      for (const socket of sockets) socket.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it('keeps a connection that arrives after its waiter timed out (node-postgres#3543)', async () => {
    const url = await testDatabaseUrl();
    const admin = await adminClient(url);
    const app = uniqueName('late');
    // Once `gate` is set, connects wait for it: the connection is made only after the waiter gave
    // up, yet well within the attempt's own deadline.
    let gate: Promise<unknown> | undefined;
    class LateClient extends pg.Client {
      override connect(): Promise<pg.Client>;
      override connect(callback: (err: Error) => void): void;
      override connect(callback?: (err: Error) => void): Promise<pg.Client> | undefined {
        const wait = gate;
        if (callback) {
          if (wait === undefined) super.connect(callback);
          else void wait.then(() => super.connect(callback));
          return undefined;
        }
        return wait === undefined ? super.connect() : wait.then(() => super.connect());
      }
    }
    const timeout = 150;
    const pool = new Pool({
      connectionString: url,
      name: app,
      application_name: app,
      max: 1,
      connectionTimeoutMillis: timeout,
      Client: LateClient,
    });
    try {
      const holder = await pool.connect();
      const holderPid = holder.processID;
      let openGate: () => void = () => {};
      gate = new Promise<void>((resolve) => {
        openGate = resolve;
      });
      const waiting = timed(pool.connect());
      // The holder gives its connection back broken at ~100 ms: a new connect starts for the waiter,
      // 50 ms before the waiter's deadline and 150 ms before the attempt's.
      setTimeout(() => holder.release(new Error('broken on purpose')), 100);
      const waited = await waiting;
      openGate();
      gate = undefined;

      const err = waited.error as Error & { diagnosis?: Record<string, unknown>; timeoutMillis?: number };
      assert.ok(isAcquireTimeoutError(err), `expected AcquireTimeoutError, got ${String(err)}`);
      assert.match(err.message, /timeout/);
      assert.equal(err.timeoutMillis, timeout);
      assert.ok(waited.millis >= timeout - 5 && waited.millis < timeout + 100, `waited ${waited.millis}ms`);
      assert.deepEqual(
        {
          pool: err.diagnosis?.pool,
          total: err.diagnosis?.total,
          active: err.diagnosis?.active,
          idle: err.diagnosis?.idle,
          connecting: err.diagnosis?.connecting,
          max: err.diagnosis?.max,
          waiting: err.diagnosis?.waiting,
        },
        { pool: app, total: 1, active: 0, idle: 0, connecting: 1, max: 1, waiting: 0 },
      );

      await waitFor('the late connection to become idle', () => pool.idleCount === 1);
      assert.equal(pool.totalCount, 1);
      assert.equal(await countBackends(admin, app), 1);
      const latePid = pool.inspect().connections[0]?.pid;
      assert.notEqual(latePid, holderPid);

      const next = await pool.connect();
      try {
        assert.equal(next.processID, latePid);
        assert.equal(await countBackends(admin, app), 1);
        assert.equal(pool.inspect().stats.created, 2);
      } finally {
        next.release();
      }
    } finally {
      gate = undefined;
      await pool.end();
      await admin.end();
    }
  });
});
