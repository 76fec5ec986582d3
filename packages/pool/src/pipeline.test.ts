// Integration tests against a real PostgreSQL: `pipeline: true`, where pool.query() statements share
// busy connections through pg's pipeline mode once the pool is at its limit.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { adminClient, countBackends, sleep, testDatabaseUrl, uniqueName, waitFor } from '@pgwarden/testkit';
import type pg from 'pg';
import { Pool } from './pool.js';

/** Records, on every turn of the event loop until stopped, the most the pool ever had. */
function watchPool(pool: Pool) {
  let running = true;
  let maxTotal = 0;
  let maxInFlight = 0;
  const tick = () => {
    maxTotal = Math.max(maxTotal, pool.totalCount);
    for (const c of pool.inspect().checkouts) maxInFlight = Math.max(maxInFlight, c.inFlight);
    if (running) setImmediate(tick);
  };
  tick();
  return {
    stop() {
      running = false;
      tick();
      return { maxTotal, maxInFlight };
    },
  };
}

describe('pipelined pool.query() against a real server', () => {
  let url: string;
  let admin: pg.Client;
  before(async () => {
    url = await testDatabaseUrl();
    admin = await adminClient(url);
  });
  after(async () => {
    await admin?.end();
  });

  const backends = (app: string) => countBackends(admin, app);

  /** Samples the server's count of the pool's backends until stopped. */
  function watchBackends(app: string) {
    let running = true;
    let max = 0;
    let samples = 0;
    const loop = (async () => {
      while (running) {
        max = Math.max(max, await backends(app));
        samples++;
      }
    })();
    return {
      async stop() {
        running = false;
        await loop;
        return { max, samples };
      },
    };
  }

  for (const pipeline of [true, false]) {
    it(`answers 64 concurrent statements each with its own row on at most 2 backends (pipeline: ${pipeline})`, async () => {
      const app = uniqueName(`pipe-${pipeline}`);
      const pool = new Pool({ connectionString: url, name: app, application_name: app, max: 2, pipeline });
      const server = watchBackends(app);
      const local = watchPool(pool);
      try {
        const results = await Promise.all(
          Array.from({ length: 64 }, (_, i) => pool.query('SELECT $1::int AS n', [i])),
        );
        const { maxTotal, maxInFlight } = local.stop();
        const seen = await server.stop();
        assert.deepEqual(
          results.map((r) => r.rows),
          Array.from({ length: 64 }, (_, i) => [{ n: i }]),
        );
        assert.ok(maxTotal <= 2, `the pool had ${maxTotal} connections`);
        assert.ok(seen.samples > 0);
        assert.ok(seen.max <= 2, `the server saw ${seen.max} backends for the pool`);
        // A second connection may still be authenticating after the first one served everything.
        await waitFor('the pool and the server to agree', async () => {
          return pool.inspect().counts.connecting === 0 && (await backends(app)) === pool.totalCount;
        });
        if (pipeline) assert.ok(maxInFlight > 1, 'no connection was ever shared: nothing was pipelined');
        else assert.equal(maxInFlight, 1);
      } finally {
        local.stop();
        await server.stop();
        await pool.end();
      }
    });
  }

  it('rejects only the failing statement among pipelined ones and keeps the connection', async () => {
    const app = uniqueName('pipe-error');
    const pool = new Pool({
      connectionString: url,
      name: app,
      application_name: app,
      max: 2,
      pipeline: true,
    });
    try {
      // Warm up both connections.
      await Promise.all([pool.query('SELECT pg_sleep(0.01)'), pool.query('SELECT pg_sleep(0.01)')]);
      assert.equal(pool.totalCount, 2);
      const pidsBefore = pool
        .inspect()
        .connections.map((c) => c.pid)
        .sort();
      const local = watchPool(pool);
      const outcomes = await Promise.allSettled(
        Array.from({ length: 32 }, (_, i) =>
          pool.query(i === 13 ? 'SELECT 1/0 AS n' : 'SELECT $1::int AS n', i === 13 ? undefined : [i]),
        ),
      );
      const { maxInFlight } = local.stop();
      assert.ok(maxInFlight > 1, 'nothing was pipelined: the test proves nothing');
      outcomes.forEach((outcome, i) => {
        if (i === 13) {
          assert.equal(outcome.status, 'rejected');
          assert.equal((outcome as PromiseRejectedResult).reason.code, '22012');
        } else {
          assert.equal(
            outcome.status,
            'fulfilled',
            `statement ${i} failed: ${String((outcome as PromiseRejectedResult).reason)}`,
          );
          assert.equal((outcome as PromiseFulfilledResult<pg.QueryResult>).value.rows[0].n, i);
        }
      });
      assert.equal(pool.totalCount, 2);
      assert.deepEqual(
        pool
          .inspect()
          .connections.map((c) => c.pid)
          .sort(),
        pidsBefore,
      );
      assert.deepEqual(pool.inspect().stats.closed, {});
      assert.equal((await pool.query('SELECT 7 AS n')).rows[0].n, 7);
    } finally {
      await pool.end();
    }
  });

  it('never shares a checked-out client: pool.query waits for release instead of joining its transaction', async () => {
    const app = uniqueName('pipe-checkout');
    const table = `pgw_pipe_${Math.random().toString(36).slice(2, 10)}`;
    await admin.query(`CREATE TABLE ${table} (id int)`);
    const pool = new Pool({
      connectionString: url,
      name: app,
      application_name: app,
      max: 1,
      pipeline: true,
    });
    try {
      const client = await pool.connect();
      let answered: number | undefined;
      let pending: Promise<void> | undefined;
      try {
        await client.query('BEGIN');
        await client.query(`INSERT INTO ${table} VALUES (1)`);
        pending = pool.query(`SELECT count(*)::int AS n FROM ${table}`).then((res) => {
          answered = res.rows[0].n;
        });
        await sleep(100);
        assert.equal(answered, undefined, 'pool.query ran on the checked-out connection');
        assert.equal(pool.inspect().counts.waiting, 1);
        await client.query('ROLLBACK');
      } finally {
        client.release();
      }
      await pending;
      assert.equal(answered, 0, 'pool.query saw the uncommitted row');
    } finally {
      await pool.end();
      await admin.query(`DROP TABLE IF EXISTS ${table}`);
    }
  });

  it('never shares a connection running a transaction statement sent through pool.query', async () => {
    const app = uniqueName('pipe-begin');
    const pool = new Pool({
      connectionString: url,
      name: app,
      application_name: app,
      max: 1,
      pipeline: true,
    });
    try {
      await pool.query('SELECT 1');
      const order: string[] = [];
      const track = (label: string, p: unknown) =>
        (p as Promise<pg.QueryResult>).then((res) => {
          order.push(label);
          return res;
        });

      // BEGIN first: the selects must wait for it rather than ride its connection.
      const begin = track('begin', pool.query('BEGIN'));
      const selects = Array.from({ length: 4 }, (_, i) =>
        track(`select${i}`, pool.query('SELECT $1::int AS n', [i])),
      );
      const inspected = pool.inspect();
      assert.equal(inspected.checkouts.length, 1);
      assert.equal(inspected.checkouts[0]?.state, 'busy');
      assert.equal(inspected.checkouts[0]?.inFlight, 1);
      assert.equal(inspected.counts.waiting, 4);
      await Promise.all([begin, ...selects]);
      assert.equal(order[0], 'begin');
      // The connection came back inside the transaction (as with pg.Pool): end it.
      await pool.query('ROLLBACK');

      // Pipelined selects first: BEGIN must wait until they are done rather than join them.
      order.length = 0;
      const riders = Array.from({ length: 6 }, (_, i) =>
        track(`sleep${i}`, pool.query('SELECT pg_sleep(0.02), $1::int AS n', [i])),
      );
      const lateBegin = track('begin', pool.query('BEGIN'));
      const during = pool.inspect();
      assert.equal(during.checkouts.length, 1);
      assert.equal(during.checkouts[0]?.state, 'shared');
      assert.equal(during.checkouts[0]?.inFlight, 6);
      assert.equal(during.counts.waiting, 1);
      await Promise.all([...riders, lateBegin]);
      assert.equal(order[order.length - 1], 'begin');
      assert.equal(order.length, 7);
      await pool.query('ROLLBACK');
    } finally {
      await pool.end();
    }
  });
});
