// Integration tests against a real PostgreSQL: @pgwarden/pool as a drop-in for pg.Pool (subclassing,
// callbacks, events, CommonJS), and passwords that never leak.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { adminClient, testDatabaseUrl, uniqueName, waitFor } from '@pgwarden/testkit';
import pg from 'pg';
import type { PoolOptions } from './options.js';
import { Pool } from './pool.js';
import type { PooledClient } from './slot.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function deepFreeze<T extends object>(o: T): T {
  for (const value of Object.values(o)) if (value && typeof value === 'object') deepFreeze(value);
  return Object.freeze(o);
}

describe('drop-in compatibility with pg.Pool', () => {
  let url: string;
  before(async () => {
    url = await testDatabaseUrl();
  });

  it('works as a subclass that binds pg.Client through the constructor', async () => {
    class BoundPool extends Pool {
      constructor(options: PoolOptions) {
        super(options, pg.Client);
      }
    }
    const pool = new BoundPool({ connectionString: url, name: uniqueName('bound') });
    try {
      assert.ok(pool instanceof Pool);
      assert.equal(pool.Client, pg.Client);
      const res = await pool.query('SELECT $1::text AS t', ['bound']);
      assert.equal(res.rows[0].t, 'bound');
      const client = await pool.connect();
      try {
        assert.ok(client instanceof pg.Client);
      } finally {
        client.release();
      }
    } finally {
      await pool.end();
    }
  });

  it('connects with a callback and with a promise', async () => {
    const pool = new Pool({ connectionString: url, name: uniqueName('connect-styles') });
    try {
      const viaCallback = await new Promise<number>((resolve, reject) => {
        const returned = pool.connect((err, client, release) => {
          if (err || !client) {
            reject(err ?? new Error('no client'));
            return;
          }
          client.query('SELECT 1 AS one', (qerr: Error | undefined, res: pg.QueryResult) => {
            release();
            if (qerr) reject(qerr);
            else resolve(res.rows[0].one);
          });
        });
        assert.equal(returned, undefined);
      });
      assert.equal(viaCallback, 1);
      const client = await pool.connect();
      try {
        assert.equal((await client.query('SELECT 2 AS two')).rows[0].two, 2);
      } finally {
        client.release();
      }
      assert.equal(pool.totalCount, 1, 'the connection was reused');
      assert.equal(pool.idleCount, 1);
    } finally {
      await pool.end();
    }
  });

  it('type-checks where pg.Pool code does: await pool.query() gives a QueryResult', async () => {
    // Code written for pg.Pool destructures the awaited result directly. This test runs either way;
    // its failure would be a compile error under `npm run typecheck` (Pool.query needs pg's overloads).
    const pool = new Pool({ connectionString: url, name: uniqueName('typed-query') });
    try {
      const { rows } = await pool.query('SELECT 1 AS one');
      assert.equal(rows[0].one, 1);
    } finally {
      await pool.end();
    }
  });

  it('throws when a client is released twice', async () => {
    const pool = new Pool({ connectionString: url, name: uniqueName('double-release') });
    try {
      const client = await pool.connect();
      client.release();
      assert.throws(
        () => client.release(),
        /Release called on client which has already been released to the pool/,
      );
      // The second release did not corrupt the books.
      assert.equal(pool.idleCount, 1);
      assert.equal(pool.activeCount, 0);
      const again = await pool.connect();
      again.release();
      assert.equal(pool.totalCount, 1);
    } finally {
      await pool.end();
    }
  });

  it('returns undefined from pool.query with a callback and calls the callback with the result', async () => {
    const pool = new Pool({ connectionString: url, name: uniqueName('query-callback') });
    try {
      const result = await new Promise<pg.QueryResult>((resolve, reject) => {
        const returned = pool.query(
          'SELECT $1::int AS n',
          [5],
          (err: Error | undefined, res?: pg.QueryResult) => (err || !res ? reject(err) : resolve(res)),
        );
        assert.equal(returned, undefined);
      });
      assert.equal(result.rows[0].n, 5);
      const failed = await new Promise<Error | undefined>((resolve) => {
        const returned = pool.query('SELECT 1/0', (err: Error | undefined) => resolve(err));
        assert.equal(returned, undefined);
      });
      assert.equal((failed as Error & { code?: string }).code, '22012');
    } finally {
      await pool.end();
    }
  });

  it('does not mutate the options object it is given', async () => {
    const options = deepFreeze({
      connectionString: url,
      name: uniqueName('frozen'),
      max: 3,
      maxOverflow: 1,
      statementTimeoutMillis: 5000,
      service: 'compat',
      retry: { maxAttempts: 2 },
      circuitBreaker: { threshold: 3 },
    });
    const snapshot = JSON.stringify(options);
    const pool = new Pool(options);
    try {
      await Promise.all([pool.query('SELECT 1'), pool.query('SELECT 2')]);
      pool.resize({ max: 4 });
      assert.equal(JSON.stringify(options), snapshot);
      assert.equal(pool.options.max, 4);
    } finally {
      await pool.end();
    }
    assert.equal(JSON.stringify(options), snapshot);
  });

  it("emits connect, acquire, release and remove events pg.Pool's way", async () => {
    const pool = new Pool({ connectionString: url, name: uniqueName('events'), max: 2 });
    const counts = { connect: 0, acquire: 0, release: 0, remove: 0 };
    const releaseErrors: (Error | undefined)[] = [];
    pool.on('connect', () => counts.connect++);
    pool.on('acquire', () => counts.acquire++);
    pool.on('release', (err: Error | undefined) => {
      counts.release++;
      releaseErrors.push(err);
    });
    pool.on('remove', () => counts.remove++);
    let ended = false;
    try {
      const [a, b]: PooledClient[] = await Promise.all([pool.connect(), pool.connect()]);
      assert.deepEqual(counts, { connect: 2, acquire: 2, release: 0, remove: 0 });
      a.release();
      b.release();
      assert.deepEqual(counts, { connect: 2, acquire: 2, release: 2, remove: 0 });
      await pool.query('SELECT 1');
      assert.deepEqual(counts, { connect: 2, acquire: 3, release: 3, remove: 0 });
      const broken = await pool.connect();
      const boom = new Error('boom');
      broken.release(boom);
      assert.equal(releaseErrors[releaseErrors.length - 1], boom);
      await waitFor('the remove event of the client released with an error', () => counts.remove === 1);
      assert.deepEqual(counts, { connect: 2, acquire: 4, release: 4, remove: 1 });
      await pool.end();
      ended = true;
      await waitFor('the remove event of the last client', () => counts.remove === 2);
      assert.deepEqual(counts, { connect: 2, acquire: 4, release: 4, remove: 2 });
    } finally {
      if (!ended) await pool.end();
    }
  });

  it('can be required as CommonJS from a child process', () => {
    const script = [
      "const { Pool, isCircuitOpenError } = require('@pgwarden/pool');",
      "if (typeof Pool !== 'function' || typeof isCircuitOpenError !== 'function') process.exit(1);",
      "const pool = new Pool({ connectionString: process.env.PGWARDEN_CJS_URL, name: 'cjs' });",
      "pool.query('SELECT 41 + 1 AS n').then((r) => pool.end().then(() => process.exit(r.rows[0].n === 42 ? 0 : 3)),",
      '  (e) => { console.error(e.message); process.exit(2); });',
    ].join('\n');
    const run = spawnSync(process.execPath, ['-e', script], {
      cwd: repoRoot,
      env: { ...process.env, PGWARDEN_CJS_URL: url },
      encoding: 'utf8',
      timeout: 15_000,
    });
    assert.equal(run.status, 0, `child exited with ${run.status} ${run.signal ?? ''}: ${run.stderr}`);
  });
});

describe('passwords never leak', () => {
  let url: string;
  let admin: pg.Client;
  const role = `pgw_role_${randomBytes(6).toString('hex')}`;
  const password = `pw${randomBytes(12).toString('hex')}`;
  before(async () => {
    url = await testDatabaseUrl();
    admin = await adminClient(url);
    // DDL takes no bound parameters: the role and password are identifier- and literal-safe hex.
    await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
  });
  after(async () => {
    await admin?.query(`DROP ROLE IF EXISTS ${role}`);
    await admin?.end();
  });

  function target() {
    const u = new URL(url);
    return { host: u.hostname, port: Number(u.port), database: 'postgres', user: role };
  }

  it('keeps the password out of inspect(), util.inspect(pool) and errors', async () => {
    const pool = new Pool({ ...target(), password, name: uniqueName('secret') });
    try {
      const client = await pool.connect();
      try {
        assert.equal((await client.query('SELECT current_user AS u')).rows[0].u, role);
      } finally {
        client.release();
      }
      assert.equal(pool.options.password, password, 'pg.Pool keeps the password on pool.options');
      const json = JSON.stringify(pool.inspect());
      assert.ok(json.includes(role), 'inspect() should name the user');
      assert.ok(!json.includes(password), 'the password is in inspect()');
      for (const depth of [2, 6]) {
        assert.ok(
          !inspect(pool, { depth }).includes(password),
          `the password is in util.inspect(pool, depth ${depth})`,
        );
      }
      assert.ok(!JSON.stringify(pool.options).includes(password));
    } finally {
      await pool.end();
    }
  });

  it('keeps a wrong password out of the authentication error', async () => {
    const wrong = `wrong${randomBytes(12).toString('hex')}`;
    const pool = new Pool({ ...target(), password: wrong, name: uniqueName('wrong-secret') });
    try {
      await assert.rejects(pool.query('SELECT 1'), (err: Error & { code?: string }) => {
        assert.equal(err.code, '28P01');
        assert.match(err.message, /password authentication failed/);
        assert.ok(!err.message.includes(wrong));
        assert.ok(!(err.stack ?? '').includes(wrong));
        return true;
      });
      const json = JSON.stringify(pool.inspect());
      assert.ok(json.includes('28P01'), 'inspect() should record the failure');
      assert.ok(!json.includes(wrong));
      assert.ok(!inspect(pool, { depth: 6 }).includes(wrong));
      assert.equal(pool.inspect().breaker, 'closed', 'a bad password says nothing about the server');
    } finally {
      await pool.end();
    }
  });
});
