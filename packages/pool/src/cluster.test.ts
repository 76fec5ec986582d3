// Integration tests against a real PostgreSQL: primary/replica routing of createCluster(). The
// "replicas" are pools on the same server told apart by name and application_name; a replica that
// is down is a pool pointed at a 127.0.0.1 port nobody listens on.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { freePort, testDatabaseUrl, uniqueName } from '@pgwarden/testkit';
import { type PoolCluster, createCluster } from './cluster.js';
import type { PoolOptions } from './options.js';
import type { Pool } from './pool.js';

/** Options of a pool on the test server whose backends say who they are. */
function live(url: string, name: string): PoolOptions {
  return { connectionString: url, name, application_name: name, max: 2 };
}

/** Options of a pool whose server is down: nothing listens on the port. */
async function down(name: string): Promise<PoolOptions> {
  return {
    host: '127.0.0.1',
    port: await freePort(),
    user: 'postgres',
    database: 'postgres',
    name,
    connectionTimeoutMillis: 1000,
    retry: false,
  };
}

const WHO = "SELECT current_setting('application_name') AS app";

function acquired(pool: Pool): number {
  return pool.inspect().stats.acquired;
}

async function withCluster(cluster: PoolCluster, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } finally {
    await cluster.end();
  }
}

describe('createCluster against a real server', () => {
  let url: string;
  before(async () => {
    url = await testDatabaseUrl();
  });

  it('sends reads round-robin to the healthy replicas', async () => {
    const [p, r1, r2] = [uniqueName('primary'), uniqueName('replica-a'), uniqueName('replica-b')];
    const cluster = createCluster({ primary: live(url, p), replicas: [live(url, r1), live(url, r2)] });
    await withCluster(cluster, async () => {
      const [primary, a, b] = cluster.pools() as [Pool, Pool, Pool];
      assert.deepEqual([primary.name, a.name, b.name], [p, r1, r2]);
      const served: string[] = [];
      for (let i = 0; i < 6; i++) served.push((await cluster.read(WHO)).rows[0].app);
      assert.deepEqual(served, [r1, r2, r1, r2, r1, r2]);
      assert.equal(acquired(a), 3);
      assert.equal(acquired(b), 3);
      assert.equal(acquired(primary), 0);
    });
  });

  it('skips a replica that is down and keeps reading from the healthy one', async () => {
    const [p, dead, ok] = [uniqueName('primary'), uniqueName('replica-down'), uniqueName('replica-up')];
    const cluster = createCluster({ primary: live(url, p), replicas: [await down(dead), live(url, ok)] });
    await withCluster(cluster, async () => {
      const [primary, deadPool, okPool] = cluster.pools() as [Pool, Pool, Pool];
      const served: string[] = [];
      for (let i = 0; i < 4; i++) served.push((await cluster.read(WHO)).rows[0].app);
      assert.deepEqual(served, [ok, ok, ok, ok]);
      assert.equal(deadPool.inspect().stats.connectFailures, 1, 'the dead replica was tried more than once');
      assert.equal(acquired(okPool), 4);
      assert.equal(acquired(primary), 0);
      const health = cluster.inspect().replicas.map((r) => [r.pool, r.healthy]);
      assert.deepEqual(health, [
        [dead, false],
        [ok, true],
      ]);
    });
  });

  it('falls back to the primary when no replica is healthy', async () => {
    const [p, d1, d2] = [uniqueName('primary'), uniqueName('replica-down-a'), uniqueName('replica-down-b')];
    const cluster = createCluster({ primary: live(url, p), replicas: [await down(d1), await down(d2)] });
    await withCluster(cluster, async () => {
      const [primary, a, b] = cluster.pools() as [Pool, Pool, Pool];
      for (let i = 0; i < 3; i++) assert.equal((await cluster.read(WHO)).rows[0].app, p);
      assert.equal(acquired(primary), 3);
      assert.equal(a.inspect().stats.connectFailures, 1);
      assert.equal(b.inspect().stats.connectFailures, 1);
      assert.deepEqual(cluster.healthyReplicas(), []);
      const client = await cluster.connect({ readOnly: true });
      try {
        assert.equal((await client.query(WHO)).rows[0].app, p);
      } finally {
        client.release();
      }
    });
  });

  it('always sends writes (cluster.query) to the primary', async () => {
    const [p, r1, r2] = [uniqueName('primary'), uniqueName('replica-a'), uniqueName('replica-b')];
    const table = `pgw_cluster_${Math.random().toString(36).slice(2, 10)}`;
    const cluster = createCluster({ primary: live(url, p), replicas: [live(url, r1), live(url, r2)] });
    await withCluster(cluster, async () => {
      const [primary, a, b] = cluster.pools() as [Pool, Pool, Pool];
      try {
        await cluster.query(`CREATE TABLE ${table} (app text)`);
        for (let i = 0; i < 4; i++) {
          await cluster.query(`INSERT INTO ${table} SELECT current_setting('application_name')`);
        }
        const rows = (await cluster.query(`SELECT app, count(*)::int AS n FROM ${table} GROUP BY app`)).rows;
        assert.deepEqual(rows, [{ app: p, n: 4 }]);
        const client = await cluster.connect();
        try {
          assert.equal((await client.query(WHO)).rows[0].app, p);
        } finally {
          client.release();
        }
        assert.equal(acquired(primary), 7);
        assert.equal(acquired(a), 0);
        assert.equal(acquired(b), 0);
      } finally {
        await primary.query(`DROP TABLE IF EXISTS ${table}`);
      }
    });
  });

  it('does not retry a statement error from a replica elsewhere', async () => {
    const [p, r1, r2] = [uniqueName('primary'), uniqueName('replica-a'), uniqueName('replica-b')];
    const cluster = createCluster({ primary: live(url, p), replicas: [live(url, r1), live(url, r2)] });
    await withCluster(cluster, async () => {
      const [primary, a, b] = cluster.pools() as [Pool, Pool, Pool];
      await assert.rejects(cluster.read('SELECT 1/0'), (err: Error & { code?: string }) => {
        assert.equal(err.code, '22012');
        return true;
      });
      assert.equal(acquired(a), 1);
      assert.equal(acquired(b), 0, 'the failed read was retried on the other replica');
      assert.equal(acquired(primary), 0, 'the failed read was retried on the primary');
      // A statement error says nothing about the replica's health.
      assert.deepEqual(
        cluster.inspect().replicas.map((r) => r.healthy),
        [true, true],
      );
      assert.equal(cluster.healthyReplicas().length, 2);
    });
  });
});
