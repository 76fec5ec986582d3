// Integration tests against a real PostgreSQL: the server-side guards every new connection gets
// (statement_timeout, idle_in_transaction_session_timeout, application_name), whether they are sent
// as startup parameters or applied with set_config() after connecting (for PgBouncer).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { adminClient, testDatabaseUrl, uniqueName } from '@pgwarden/testkit';
import type pg from 'pg';
import type { PoolOptions } from './options.js';
import { Pool } from './pool.js';
import type { PooledClient } from './slot.js';

const MODES: NonNullable<PoolOptions['sessionSettingsVia']>[] = ['startup', 'query'];

describe('server-side guards on every new connection', () => {
  let url: string;
  let admin: pg.Client;
  before(async () => {
    url = await testDatabaseUrl();
    admin = await adminClient(url);
  });
  after(async () => {
    await admin?.end();
  });

  for (const mode of MODES) {
    it(`sets statement_timeout, idle_in_transaction_session_timeout and application_name (via ${mode})`, async () => {
      // The application_name must be exactly "vitals:writer": this pool's backends are found by pid.
      const pool = new Pool({
        connectionString: url,
        service: 'vitals',
        name: 'writer',
        statementTimeoutMillis: 1234,
        idleInTransactionTimeoutMillis: 5678,
        sessionSettingsVia: mode,
        max: 3,
      });
      try {
        // Three connections at once: each one is new and must carry the guards.
        const clients: PooledClient[] = await Promise.all([pool.connect(), pool.connect(), pool.connect()]);
        try {
          assert.equal(pool.totalCount, 3);
          for (const client of clients) {
            assert.equal((await client.query('SHOW statement_timeout')).rows[0].statement_timeout, '1234ms');
            assert.equal(
              (await client.query('SHOW idle_in_transaction_session_timeout')).rows[0]
                .idle_in_transaction_session_timeout,
              '5678ms',
            );
          }
          const pids = clients.map((c) => c.processID as number);
          const res = await admin.query(
            'SELECT pid, application_name FROM pg_stat_activity WHERE pid = ANY($1::int[]) ORDER BY pid',
            [pids],
          );
          assert.deepEqual(
            res.rows.map((r) => r.application_name),
            ['vitals:writer', 'vitals:writer', 'vitals:writer'],
          );
        } finally {
          for (const c of clients) c.release();
        }
        // A connection made later (after one was dropped) gets them too.
        const dropped = await pool.connect();
        dropped.release(true);
        const replaced = await Promise.all([pool.connect(), pool.connect(), pool.connect()]);
        try {
          assert.equal(pool.inspect().stats.created, 4);
          for (const client of replaced) {
            assert.equal((await client.query('SHOW statement_timeout')).rows[0].statement_timeout, '1234ms');
          }
        } finally {
          for (const c of replaced) c.release();
        }
        assert.equal(pool.inspect().settings.applicationName, 'vitals:writer');
      } finally {
        await pool.end();
      }
    });

    it(`cancels a statement that runs past statementTimeoutMillis with 57014 (via ${mode})`, async () => {
      const name = uniqueName(`guard-timeout-${mode}`);
      const pool = new Pool({
        connectionString: url,
        name,
        statementTimeoutMillis: 100,
        sessionSettingsVia: mode,
      });
      try {
        const started = performance.now();
        await assert.rejects(pool.query('SELECT pg_sleep(5)'), (err: Error & { code?: string }) => {
          assert.equal(err.code, '57014');
          assert.match(err.message, /statement timeout/);
          return true;
        });
        const took = performance.now() - started;
        assert.ok(took < 2000, `the statement ran ${took.toFixed(0)}ms despite a 100ms statement_timeout`);
        // Like pg.Pool, pool.query() releases the connection with the error (it is closed); the next
        // connection gets the guard too.
        assert.equal((await pool.query('SHOW statement_timeout')).rows[0].statement_timeout, '100ms');
      } finally {
        await pool.end();
      }
    });
  }
});
