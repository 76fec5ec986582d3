// Every error a pool caller sees has a code: node-postgres raises some failures as plain errors
// without one (its client-side query_timeout, a connection that ended without a server message, its
// own connect timeout), and the pool gives those a stable PGWARDEN_* code, in place.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  adminClient,
  startTcpProxy,
  type TcpProxy,
  testDatabaseUrl,
  uniqueName,
  waitFor,
} from '@pgwarden/testkit';
import { Pool } from './pool.js';
import { isConnectionLostError, withCode } from './transient.js';

describe('withCode', () => {
  it("codes node-postgres's codeless errors and leaves every other error alone", () => {
    const cases: [string, string | undefined][] = [
      ['Query read timeout', 'PGWARDEN_QUERY_TIMEOUT'],
      ['Connection terminated unexpectedly', 'PGWARDEN_CONNECTION_LOST'],
      ['Connection terminated', 'PGWARDEN_CONNECTION_LOST'],
      ['Client has encountered a connection error and is not queryable', 'PGWARDEN_CONNECTION_LOST'],
      ['Connection terminated due to connection timeout', 'PGWARDEN_CONNECT_TIMEOUT'],
      ['something else went wrong', undefined],
    ];
    for (const [message, code] of cases) {
      const err = new Error(message);
      const stack = err.stack;
      assert.equal(withCode(err), err, 'the same error object');
      assert.equal((err as { code?: string }).code, code, message);
      assert.equal(err.message, message);
      assert.equal(err.stack, stack);
    }
    const coded = Object.assign(new Error('Connection terminated unexpectedly'), { code: '57P01' });
    assert.equal(withCode(coded).code, '57P01', 'an existing code is kept');
    assert.equal(withCode('not an error'), 'not an error');
    const lost = withCode(new Error('Connection terminated unexpectedly'));
    assert.equal(isConnectionLostError(lost), true);
  });
});

describe('codes on errors that reach pool callers', () => {
  let url: string;
  let proxy: TcpProxy;
  before(async () => {
    url = await testDatabaseUrl();
    proxy = await startTcpProxy({ targetPort: Number(new URL(url).port) });
  });
  after(async () => {
    await proxy?.close();
  });

  function viaProxy(): string {
    const u = new URL(url);
    u.port = String(proxy.port);
    return u.toString();
  }

  it("pg's query_timeout rejects with PGWARDEN_QUERY_TIMEOUT and the connection is dropped", async () => {
    const app = uniqueName('query-timeout');
    const pool = new Pool({ connectionString: url, name: app, application_name: app, query_timeout: 100 });
    try {
      await assert.rejects(pool.query('SELECT pg_sleep(1)'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'PGWARDEN_QUERY_TIMEOUT');
        assert.equal(err.message, 'Query read timeout');
        return true;
      });
      await waitFor('the timed-out connection to be dropped', () => pool.totalCount === 0);
      assert.equal(pool.inspect().stats.errors.PGWARDEN_QUERY_TIMEOUT, 1);
      assert.equal((await pool.query('SELECT 1 AS one')).rows[0].one, 1);
    } finally {
      await pool.end();
    }
  });

  it('a connection cut under a statement rejects with PGWARDEN_CONNECTION_LOST, pooled or checked out', async () => {
    const app = uniqueName('cut');
    const pool = new Pool({ connectionString: viaProxy(), name: app, application_name: app, max: 2 });
    pool.on('error', () => {});
    try {
      const viaPool = pool.query('SELECT pg_sleep(2)');
      const client = await pool.connect();
      const viaClient = client.query('SELECT pg_sleep(2)');
      viaPool.catch(() => {});
      viaClient.catch(() => {});
      await waitFor('both statements on their way', () => proxy.connections === 2);
      proxy.dropAll();
      for (const running of [viaPool, viaClient]) {
        await assert.rejects(running, (err: Error & { code?: string }) => {
          assert.equal(err.code, 'PGWARDEN_CONNECTION_LOST', err.message);
          assert.match(err.message, /Connection terminated/);
          return true;
        });
      }
      client.release(true);
      await waitFor('the cut connections to be dropped', () => pool.totalCount === 0);
      // Still a lost connection for the retry of idempotent statements.
      const admin = await adminClient(url);
      try {
        const retried = pool.query({ text: 'SELECT pg_sleep(0.3), 7 AS seven', idempotent: true });
        await waitFor('the statement to run', async () => {
          const res = await admin.query(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND state = 'active' AND position('seven' in query) > 0",
            [app],
          );
          return res.rows.length === 1;
        });
        proxy.dropAll();
        assert.equal((await retried).rows[0].seven, 7);
        // The statement's first connection was cut under it, and it ran again on a new one.
        const stats = pool.inspect().stats;
        assert.equal(stats.created, 4);
        assert.equal(stats.closed.released_with_error, 3);
      } finally {
        await admin.end();
      }
    } finally {
      await pool.end();
    }
  });
});
