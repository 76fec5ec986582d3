// Integration tests against a real PostgreSQL: resizing a pool while statements are running.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { adminClient, countBackends, sleep, testDatabaseUrl, uniqueName, waitFor } from '@pgwarden/testkit';
import type pg from 'pg';
import { Pool } from './pool.js';

describe('resize against a real server', () => {
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

  it('loses no query when resized down, up and down again under load', async () => {
    const app = uniqueName('resize-load');
    const pool = new Pool({ connectionString: url, name: app, application_name: app, max: 10 });
    try {
      const total = 300;
      let done = 0;
      const resizes: [number, { min?: number; max: number }][] = [
        [75, { max: 2 }],
        [150, { max: 8 }],
        [225, { min: 2, max: 4 }],
      ];
      const queries: Promise<number>[] = [];
      for (let id = 0; id < total; id++) {
        queries.push(
          pool.query('SELECT pg_sleep(0.005), $1::int AS id', [id]).then((res) => {
            done++;
            const next = resizes[0];
            if (next && done >= next[0]) {
              resizes.shift();
              pool.resize(next[1]);
            }
            return res.rows[0].id as number;
          }),
        );
      }
      const ids = await Promise.all(queries);
      assert.deepEqual(
        ids,
        Array.from({ length: total }, (_, i) => i),
      );
      assert.equal(resizes.length, 0, 'not every resize happened');
      assert.equal(pool.inspect().settings.max, 4);
      assert.equal(pool.inspect().settings.min, 2);
      assert.ok(pool.totalCount <= 4, `totalCount ${pool.totalCount} exceeds max 4 + maxOverflow 0`);
      assert.ok(pool.totalCount >= 2, `totalCount ${pool.totalCount} is below min 2`);
      assert.equal(pool.waitingCount, 0);
      assert.equal(pool.activeCount, 0);
      await waitFor('the server to see at most 4 backends', async () => (await backends(app)) <= 4);
    } finally {
      await pool.end();
    }
  });

  it('closes connections above a shrunk max when they are returned, even while callers wait', async () => {
    const app = uniqueName('resize-shrink');
    const pool = new Pool({ connectionString: url, name: app, application_name: app, max: 8 });
    try {
      const queries: Promise<unknown>[] = [];
      for (let i = 0; i < 100; i++) queries.push(pool.query('SELECT pg_sleep(0.005)'));
      await waitFor(
        'the pool to reach 8 connections',
        () => pool.totalCount === 8 && pool.inspect().counts.connecting === 0,
      );
      pool.resize({ max: 2 });
      // Every busy connection comes back within a few milliseconds: the six above the new max must be
      // closed then, not handed to the callers still in line.
      let waitingWhenShrunk = -1;
      await waitFor('totalCount to drop to 2', () => {
        if (pool.totalCount > 2) return false;
        waitingWhenShrunk = pool.waitingCount;
        return true;
      });
      assert.ok(
        waitingWhenShrunk > 0,
        'the pool kept its 8 connections until the line was empty: resize({ max: 2 }) had no effect under load',
      );
      await Promise.all(queries);
      assert.ok(pool.totalCount <= 2);
      assert.equal(pool.inspect().stats.closed.resize ?? 0, 6);
    } finally {
      await pool.end();
    }
  });

  it('lets waiting callers proceed at once when it grows', async () => {
    const app = uniqueName('resize-grow');
    const pool = new Pool({ connectionString: url, name: app, application_name: app, max: 1 });
    try {
      const holder = await pool.connect();
      try {
        const waiters = [pool.connect(), pool.connect(), pool.connect()];
        await sleep(50);
        assert.equal(pool.waitingCount, 3, 'the callers should be waiting for the only connection');
        const grownAt = performance.now();
        pool.resize({ max: 4 });
        const clients = await Promise.all(waiters);
        const took = performance.now() - grownAt;
        try {
          assert.ok(took < 500, `waiters got their connections ${took.toFixed(0)}ms after the resize`);
          assert.equal(pool.totalCount, 4);
          const pids = new Set([holder.processID, ...clients.map((c) => c.processID)]);
          assert.equal(pids.size, 4, 'every caller has its own backend');
          assert.equal(await backends(app), 4);
        } finally {
          for (const c of clients) c.release();
        }
      } finally {
        holder.release();
      }
    } finally {
      await pool.end();
    }
  });
});
