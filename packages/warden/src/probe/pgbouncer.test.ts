import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import {
  adminClient,
  type EmbeddedPgBouncer,
  type EmbeddedServer,
  freePort,
  skipWithoutPgBouncer,
  startPgBouncer,
  startPostgres,
  waitFor,
} from '@pgwarden/testkit';
import pg from 'pg';
import {
  type PgBouncerProbeErrorCode,
  parsePools,
  parseServers,
  parseStats,
  probePgBouncer,
} from './pgbouncer.js';

const SLEEP = 'SELECT pg_sleep(2)';

/** Asserts that probing `url` fails with `code`, and that no password of `secrets` is in the error. */
async function assertProbeFails(
  url: string,
  code: PgBouncerProbeErrorCode,
  message: RegExp,
  secrets: string[] = [],
  timeoutMillis?: number,
): Promise<Error> {
  const error = await probePgBouncer(url, timeoutMillis ? { timeoutMillis } : {}).then(
    () => assert.fail(`probing ${code} succeeded`),
    (err: unknown) => err as Error & { code?: string; target?: string },
  );
  assert.equal(error.name, 'PgBouncerProbeError', String(error));
  assert.equal((error as { code?: string }).code, code, error.message);
  assert.match(error.message, message);
  assert.ok(!error.message.includes('\n'), 'one line');
  for (const secret of secrets) {
    for (const text of [error.message, String(error), inspect(error), JSON.stringify(error)]) {
      assert.ok(!text.includes(secret), `password in ${text}`);
    }
  }
  return error;
}

function withPassword(url: string, password: string): string {
  const u = new URL(url);
  u.password = password;
  return u.href;
}

function withPath(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.href;
}

describe('parsePools, parseStats, parseServers', () => {
  it('skip the console database, convert numbers and times', () => {
    const consoleRow = { database: 'pgbouncer', user: 'pgbouncer' };
    const pools = parsePools([
      {
        ...consoleRow,
        cl_active: 1,
        cl_waiting: 0,
        sv_active: 0,
        sv_idle: 0,
        sv_used: 0,
        maxwait: 0,
        maxwait_us: 0,
        pool_mode: 'statement',
      },
      {
        database: 'app',
        user: 'u',
        cl_active: '2',
        cl_waiting: 4,
        sv_active: 2,
        sv_idle: 0,
        sv_used: 1,
        maxwait: 3,
        maxwait_us: 250000,
        pool_mode: 'transaction',
      },
    ]);
    assert.deepEqual(pools, [
      {
        database: 'app',
        user: 'u',
        clActive: 2,
        clWaiting: 4,
        svActive: 2,
        svIdle: 0,
        svUsed: 1,
        maxWaitSeconds: 3.25,
        poolMode: 'transaction',
      },
    ]);
    assert.deepEqual(
      parseStats([
        { database: 'pgbouncer', total_xact_count: '9' },
        { database: 'app', total_xact_count: '7', total_wait_time: '12051502', note: 'x' },
      ]),
      { app: { total_xact_count: 7, total_wait_time: 12051502 } },
    );
    assert.deepEqual(
      parseServers([
        {
          database: 'app',
          user: 'u',
          state: 'active',
          remote_pid: 42,
          connect_time: '2026-01-02 03:04:05 UTC',
        },
        {
          database: 'app',
          user: 'u',
          state: 'idle',
          remote_pid: '43',
          connect_time: '2026-01-02 03:04:05 CET',
        },
      ]),
      [
        { database: 'app', user: 'u', state: 'active', remotePid: 42, connectTime: '2026-01-02T03:04:05Z' },
        { database: 'app', user: 'u', state: 'idle', remotePid: 43, connectTime: '2026-01-02 03:04:05 CET' },
      ],
    );
  });

  it('name a missing or non-numeric column', () => {
    assert.throws(() => parsePools([{ database: 'app', user: 'u' }]), /SHOW POOLS has no column cl_active/);
    assert.throws(
      () =>
        parseServers([{ database: 'app', user: 'u', state: 'active', remote_pid: 'x', connect_time: '' }]),
      /SHOW SERVERS\.remote_pid is not a number/,
    );
  });
});

describe('probePgBouncer', { skip: skipWithoutPgBouncer() }, () => {
  let server: EmbeddedServer;
  let bouncer: EmbeddedPgBouncer;
  let secrets: string[];

  before(async () => {
    server = await startPostgres();
    bouncer = await startPgBouncer({
      postgres: server,
      poolMode: 'transaction',
      defaultPoolSize: 2,
      statsOnlyUser: true,
    });
    secrets = [
      server.password,
      new URL(bouncer.adminUrl).password,
      new URL(bouncer.statsUrl as string).password,
    ];
  });

  after(async () => {
    await bouncer?.destroy();
    await server?.destroy();
  });

  it('sees the clients waiting on a saturated pool, and the pids of the server connections', async () => {
    const clients = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const client = new pg.Client({ connectionString: bouncer.url });
        client.on('error', () => {});
        await client.connect();
        return client;
      }),
    );
    const adminConsole = await adminClient(bouncer.adminUrl);
    const direct = await adminClient(server.url);
    const sleeps = clients.map((client) =>
      client.query(SLEEP).then(
        () => 'done',
        () => 'cut',
      ),
    );
    try {
      const rawPool = async () => {
        const { rows } = await adminConsole.query('SHOW POOLS');
        return rows.find((r) => r.database === server.database && r.user === server.user);
      };
      // Steady once both server connections run a sleep (the second one logs in first).
      await waitFor(
        '2 sleeps running and 4 clients waiting',
        async () => {
          const pool = await rawPool();
          return pool?.sv_active === 2 && pool.cl_waiting === 4;
        },
        1500,
      );
      const before = await rawPool();
      const info = await probePgBouncer(bouncer.adminUrl);
      const afterwards = await rawPool();
      const sleeping = await direct.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE query = $1 AND state = 'active' ORDER BY pid",
        [SLEEP],
      );

      // The first two sleeps run for 2 s: all of this happened while the pool stood still.
      assert.equal(before.cl_waiting, afterwards.cl_waiting);
      assert.ok(info.pools.every((p) => p.database !== 'pgbouncer'));
      const pool = info.pools.find((p) => p.database === server.database && p.user === server.user);
      assert.ok(pool, JSON.stringify(info.pools));
      assert.ok(pool.clWaiting >= 4);
      assert.equal(pool.clWaiting, before.cl_waiting);
      assert.equal(pool.clActive, before.cl_active);
      assert.equal(pool.svActive, 2);
      assert.equal(pool.poolMode, 'transaction');
      assert.ok(pool.maxWaitSeconds >= 0);
      assert.ok(pool.maxWaitSeconds >= before.maxwait + before.maxwait_us / 1e6);

      const remotePids = info.servers.map((s) => s.remotePid).sort((a, b) => a - b);
      assert.equal(sleeping.rows.length, 2);
      assert.deepEqual(
        remotePids,
        sleeping.rows.map((r) => r.pid),
      );
      for (const s of info.servers) {
        assert.equal(s.state, 'active');
        assert.equal(s.database, server.database);
        assert.match(s.connectTime ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      }
      assert.equal(typeof info.stats[server.database]?.total_xact_count, 'number');
      assert.equal(info.stats.pgbouncer, undefined);
      assert.equal(info.error, null);
    } finally {
      // Hanging up is quicker than waiting for the queue (6 x 2 s over 2 connections).
      await Promise.all(clients.map((client) => client.end()));
      await Promise.all(sleeps);
      await adminConsole.end();
      await direct.end();
    }
  });

  it('works as a stats-only user: every SHOW it needs is allowed on 1.18', async () => {
    const info = await probePgBouncer(bouncer.statsUrl as string);
    assert.ok(Array.isArray(info.pools) && Array.isArray(info.servers));
    assert.ok(info.pools.some((p) => p.database === server.database));
  });

  it('says "auth" for a wrong password, without the password', async () => {
    const wrong = `wrong-${secrets[1]}`;
    await assertProbeFails(withPassword(bouncer.adminUrl, wrong), 'auth', /refused user "pgwarden_admin"/, [
      wrong,
      ...secrets,
    ]);
  });

  it('says "not_admin" for a user that is neither admin nor stats user', async () => {
    await assertProbeFails(
      withPath(bouncer.url, 'pgbouncer'),
      'not_admin',
      /neither admin_users nor stats_users/,
      secrets,
    );
  });

  it('says "not_pgbouncer" for a URL to another database or to plain PostgreSQL', async () => {
    await assertProbeFails(
      bouncer.url,
      'not_pgbouncer',
      /names database "postgres", not PgBouncer's admin console/,
      secrets,
    );
    await assertProbeFails(server.url, 'not_pgbouncer', /names database "postgres"/, secrets);
    const inQuery = `${withPassword(server.url, '')}?password=${encodeURIComponent(server.password)}`;
    const error = await assertProbeFails(
      inQuery,
      'not_pgbouncer',
      /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres names/,
      secrets,
    );
    assert.equal(
      (error as { target?: string }).target,
      `postgres://postgres@127.0.0.1:${server.port}/postgres`,
    );
    await assertProbeFails(
      withPath(server.url, 'pgbouncer'),
      'not_pgbouncer',
      /has no database "pgbouncer"/,
      secrets,
    );
    const direct = await adminClient(server.url);
    try {
      await direct.query('CREATE DATABASE pgbouncer');
      await assertProbeFails(
        withPath(server.url, 'pgbouncer'),
        'not_pgbouncer',
        /answered SHOW POOLS like PostgreSQL \(unrecognized configuration parameter "pools"\)/,
        secrets,
      );
    } finally {
      await direct.query('DROP DATABASE IF EXISTS pgbouncer WITH (FORCE)');
      await direct.end();
    }
  });

  it('says "unreachable" for a closed port', async () => {
    const url = withPath(bouncer.adminUrl, 'pgbouncer').replace(`:${bouncer.port}/`, `:${await freePort()}/`);
    await assertProbeFails(url, 'unreachable', /connection refused .*\(ECONNREFUSED\)/, secrets);
  });

  it('says "timeout" when nothing answers, at the deadline', async () => {
    const sockets: net.Socket[] = [];
    let closed = 0;
    const silent = net.createServer((socket) => {
      sockets.push(socket);
      socket.resume();
      socket.on('close', () => closed++);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as net.AddressInfo;
      const url = bouncer.adminUrl.replace(`:${bouncer.port}/`, `:${port}/`);
      const started = Date.now();
      await assertProbeFails(url, 'timeout', /within 300 ms \(connecting\)/, secrets, 300);
      const took = Date.now() - started;
      assert.ok(took >= 290 && took < 1000, `took ${took} ms`);
      await waitFor('the probe to hang up', () => sockets.length === 1 && closed === 1, 1000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('says "protocol" when the other end does not speak PostgreSQL', async () => {
    const sockets: net.Socket[] = [];
    const http = net.createServer((socket) => {
      sockets.push(socket);
      socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = http.address() as net.AddressInfo;
      const url = bouncer.adminUrl.replace(`:${bouncer.port}/`, `:${port}/`);
      await assertProbeFails(
        url,
        'protocol',
        /unexpected answer from PgBouncer at 127\.0\.0\.1:\d+ \(connecting\)/,
        secrets,
      );
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => http.close(resolve));
    }
  });

  it('rejects a malformed URL without repeating it', async () => {
    await assert.rejects(probePgBouncer('not a url secret-pw'), (err: Error) => {
      assert.ok(err instanceof TypeError);
      assert.ok(!err.message.includes('secret-pw'));
      return true;
    });
    await assert.rejects(probePgBouncer(bouncer.adminUrl, { timeoutMillis: 0 }), RangeError);
  });
});
