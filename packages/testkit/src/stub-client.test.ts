import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import pg from 'pg';
import { FakeClock } from './fake-clock.js';
import { createStubClientClass, type StubClient, type StubClientClass } from './stub-client.js';

const require = createRequire(import.meta.url);
// pg-pool has no type declarations; this is the constructor shape we use.
const PgPool = require('pg-pool') as new (options: object, Client?: unknown) => pg.Pool;

const asPgClient = (Stub: StubClientClass) => Stub as unknown as typeof pg.Client;
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('stub client', () => {
  it('connects, queries and ends with promises and callbacks', async () => {
    const Stub = createStubClientClass();
    const client = new Stub({ user: 'x', pipeline: true });
    assert.deepEqual(client.options, { user: 'x', pipeline: true });
    assert.equal(client.pipeline, true);
    assert.equal(client._queryable, false);
    assert.equal(client._ending, false);
    assert.equal(client.processID, null);
    assert.equal(await client.connect(), client);
    assert.equal(client._queryable, true);
    assert.equal(client._connected, true);
    assert.equal(typeof client.processID, 'number');
    assert.equal(client.getTransactionStatus(), 'I');
    client.ref();
    client.unref();

    const res = await client.query('SELECT 1');
    assert.deepEqual(res, { rows: [], rowCount: 0, command: 'SELECT', fields: [] });
    await client.query({ text: 'SELECT $1', values: [1] });
    await new Promise<void>((resolve, reject) =>
      client.query('SELECT 2', [], (err) => (err ? reject(err) : resolve())),
    );
    await new Promise<void>((resolve, reject) =>
      client.query('SELECT 3', (err, r) => (err || !r ? reject(err) : resolve())),
    );
    assert.deepEqual(client.queries, ['SELECT 1', 'SELECT $1', 'SELECT 2', 'SELECT 3']);
    assert.equal(Stub.stats.queries, 4);

    let endEvents = 0;
    client.on('end', () => endEvents++);
    await new Promise<void>((resolve) => client.end(() => resolve()));
    assert.equal(client._ending, true);
    assert.equal(client._queryable, false);
    assert.equal(endEvents, 1);
    await client.end(); // idempotent
    assert.equal(endEvents, 1);
    await assert.rejects(client.query('SELECT 4'), /closed and is not queryable/);
    assert.deepEqual(
      { ...Stub.stats },
      {
        created: 1,
        connected: 1,
        ended: 1,
        open: 0,
        maxOpen: 1,
        queries: 4,
        connectAttempts: 1,
        connectFailures: 0,
        queryFailures: 0,
      },
    );
    assert.deepEqual(Stub.instances, [client]);
  });

  it('gives unique increasing process ids', async () => {
    const Stub = createStubClientClass();
    const a = new Stub();
    const b = new Stub();
    await a.connect();
    await b.connect();
    assert.ok((b.processID as number) > (a.processID as number));
    await Promise.all([a.end(), b.end()]);
  });

  it('honours failConnect with the attempt number', async () => {
    const attempts: number[] = [];
    const Stub = createStubClientClass({
      failConnect: (attempt) => {
        attempts.push(attempt);
        return attempt === 2 ? new Error('connect refused') : undefined;
      },
    });
    await new Stub().connect();
    await assert.rejects(new Stub().connect(), /connect refused/);
    const third = new Stub();
    await new Promise<void>((resolve, reject) =>
      third.connect((err, client) => (err || client !== third ? reject(err) : resolve())),
    );
    assert.deepEqual(attempts, [1, 2, 3]);
    assert.equal(Stub.stats.connected, 2);
    assert.equal(Stub.stats.connectFailures, 1);
    assert.equal(Stub.stats.open, 2);
  });

  it('hangConnect never completes until end(), which fails the connect', async () => {
    const Stub = createStubClientClass({ hangConnect: true });
    const client = new Stub();
    let settled = false;
    const outcome = client.connect().then(
      () => undefined,
      (err: Error) => err,
    );
    void outcome.finally(() => {
      settled = true;
    });
    for (let i = 0; i < 5; i++) await tick();
    assert.equal(settled, false);
    assert.equal(client._connecting, true);
    await client.end();
    assert.match(String(await outcome), /Connection terminated/);
    assert.equal(Stub.stats.open, 0);
    assert.equal(Stub.stats.connected, 0);
  });

  it('honours failQuery and keeps the client usable', async () => {
    const Stub = createStubClientClass({
      failQuery: (text) => (text.includes('boom') ? new Error('syntax error at boom') : undefined),
    });
    const client = new Stub();
    await client.connect();
    await assert.rejects(client.query('SELECT boom'), /syntax error/);
    await client.query('SELECT ok');
    assert.equal(Stub.stats.queryFailures, 1);
    assert.equal(Stub.stats.queries, 2);
    await client.end();
  });

  it('respond shapes query results', async () => {
    const Stub = createStubClientClass({
      respond: (text, values) =>
        text === 'SELECT $1::int AS n' ? { rows: [{ n: values?.[0] }], rowCount: 1 } : undefined,
    });
    const client = new Stub();
    await client.connect();
    const res = await client.query('SELECT $1::int AS n', [7]);
    assert.deepEqual(res.rows, [{ n: 7 }]);
    assert.equal(res.rowCount, 1);
    await client.end();
  });

  it('runs queries one at a time in order', async () => {
    const Stub = createStubClientClass({ queryDelayMs: 5 });
    const client = new Stub();
    await client.connect();
    const done: string[] = [];
    await Promise.all(['a', 'b', 'c'].map((q) => client.query(q).then(() => done.push(q))));
    assert.deepEqual(done, ['a', 'b', 'c']);
    await client.end();
  });

  it('queues queries issued while connecting', async () => {
    const Stub = createStubClientClass({ connectDelayMs: 5 });
    const client = new Stub();
    const connecting = client.connect();
    const q = client.query('SELECT early');
    await connecting;
    await q;
    assert.deepEqual(client.queries, ['SELECT early']);
    await client.end();
  });

  it('runs delays on the given clock', async () => {
    const clock = new FakeClock();
    const Stub = createStubClientClass({ clock, connectDelayMs: 1000, queryDelayMs: 250 });
    const client = new Stub();
    let connected = false;
    const connecting = client.connect().then(() => {
      connected = true;
    });
    await tick();
    assert.equal(connected, false);
    assert.equal(clock.pending(), 1);
    await clock.advanceAsync(999);
    assert.equal(connected, false);
    await clock.advanceAsync(1);
    await connecting;
    assert.equal(connected, true);

    let answered = false;
    const querying = client.query('SELECT 1').then(() => {
      answered = true;
    });
    await clock.advanceAsync(249);
    assert.equal(answered, false);
    await clock.advanceAsync(1);
    await querying;
    assert.equal(answered, true);
    await client.end();
    assert.equal(clock.pending(), 0);
  });

  it('simulateError makes the client unqueryable, fails its query and emits error', async () => {
    const Stub = createStubClientClass({ queryDelayMs: 50 });
    const client = new Stub();
    await client.connect();
    const errors: Error[] = [];
    client.on('error', (err) => errors.push(err));
    const pending = client.query('SELECT pg_sleep(1)');
    const boom = new Error('socket hang up');
    client.simulateError(boom);
    await assert.rejects(pending, /socket hang up/);
    assert.deepEqual(errors, [boom]);
    assert.equal(client._queryable, false);
    await assert.rejects(client.query('SELECT 1'), /connection error and is not queryable/);
    await client.end();
    assert.equal(Stub.stats.open, 0);
  });

  it('simulateTermination ends the client', async () => {
    const Stub = createStubClientClass();
    const client = new Stub();
    await client.connect();
    const events: string[] = [];
    client.on('error', (err: Error) => events.push(`error:${err.message}`));
    client.on('end', () => events.push('end'));
    client.simulateTermination();
    assert.deepEqual(events, ['error:Connection terminated unexpectedly', 'end']);
    assert.equal(Stub.stats.open, 0);
    assert.equal(Stub.stats.ended, 1);
    await client.end();
    assert.equal(Stub.stats.ended, 1);
  });

  it('a client cannot connect twice', async () => {
    const Stub = createStubClientClass();
    const client = new Stub();
    await client.connect();
    await assert.rejects(client.connect(), /already been connected/);
    await client.end();
  });

  it('reset() clears stats and instances in place; classes do not share state', async () => {
    const A = createStubClientClass();
    const B = createStubClientClass();
    const stats = A.stats;
    await new A().connect();
    assert.equal(A.stats.created, 1);
    assert.equal(B.stats.created, 0);
    A.reset();
    assert.equal(stats.created, 0);
    assert.equal(A.instances.length, 0);
  });
});

describe('stub client under pg.Pool / pg-pool', () => {
  it('pg.Pool({ Client }) runs queries and never opens more than max', async () => {
    const Stub = createStubClientClass({ queryDelayMs: 2 });
    const pool = new pg.Pool({ Client: asPgClient(Stub), max: 3 });
    await Promise.all(Array.from({ length: 20 }, (_, i) => pool.query(`SELECT ${i}`)));
    assert.equal(Stub.stats.queries, 20);
    assert.equal(Stub.stats.maxOpen, 3);
    assert.equal(Stub.stats.open, 3);
    assert.equal(pool.totalCount, 3);
    await pool.end();
    await tick(); // pg-pool resolves end() before its clients' end() calls complete
    assert.equal(Stub.stats.open, 0);
    assert.equal(Stub.stats.ended, 3);
  });

  it('new PgPool(options, Client) reports connect failures', async () => {
    const Stub = createStubClientClass({ failConnect: () => new Error('too many clients already') });
    const pool = new PgPool({ max: 1 }, Stub);
    await assert.rejects(pool.query('SELECT 1'), /too many clients already/);
    assert.equal(pool.totalCount, 0);
    await pool.end();
  });

  it('a hanging connect hits the pool connection timeout', async () => {
    const Stub = createStubClientClass({ hangConnect: true });
    const pool = new pg.Pool({ Client: asPgClient(Stub), max: 1, connectionTimeoutMillis: 20 });
    await assert.rejects(pool.connect(), /timeout/);
    assert.equal(Stub.stats.ended, 1);
    await pool.end();
  });

  it('an idle client error is reported by the pool and the client is removed', async () => {
    const Stub = createStubClientClass();
    const pool = new pg.Pool({ Client: asPgClient(Stub), max: 2 });
    const client = await pool.connect();
    client.release();
    const poolErrors: Error[] = [];
    pool.on('error', (err) => poolErrors.push(err));
    const stub = Stub.instances[0] as StubClient;
    stub.simulateError(new Error('terminating connection due to administrator command'));
    assert.equal(poolErrors.length, 1);
    await tick();
    await tick();
    assert.equal(pool.totalCount, 0);
    assert.equal(Stub.stats.open, 0);
    await pool.end();
  });

  it('release of an errored client removes it', async () => {
    const Stub = createStubClientClass();
    const pool = new pg.Pool({ Client: asPgClient(Stub), max: 2 });
    const client = await pool.connect();
    client.release(new Error('broken'));
    await tick();
    assert.equal(pool.totalCount, 0);
    assert.equal(Stub.stats.ended, 1);
    await pool.end();
  });
});
