import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import pg from 'pg';
import { type EmbeddedServer, freePort, startPostgres, testDatabaseUrl } from './postgres.js';

const CLIENT_BACKENDS =
  "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend'";

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Alive and not a zombie. */
function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

describe('freePort', () => {
  it('returns a port that can be bound on 127.0.0.1', async () => {
    const port = await freePort();
    assert.ok(port > 0 && port < 65536);
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    await new Promise((r) => server.close(r));
  });
});

describe('testDatabaseUrl', () => {
  it('returns PGWARDEN_TEST_DATABASE_URL when set, else a lazily started server; the same one each time', async () => {
    const url = await testDatabaseUrl();
    if (process.env.PGWARDEN_TEST_DATABASE_URL) assert.equal(url, process.env.PGWARDEN_TEST_DATABASE_URL);
    assert.equal(await testDatabaseUrl(), url);
    const client = await connect(url);
    try {
      const { rows } = await client.query('SELECT 1 AS one');
      assert.deepEqual(rows, [{ one: 1 }]);
    } finally {
      await client.end();
    }
  });
});

describe('startPostgres', () => {
  let server: EmbeddedServer;

  before(async () => {
    server = await startPostgres({ settings: { max_connections: 30, work_mem: '8MB' } });
  });

  after(async () => {
    await server?.destroy();
  });

  it('describes itself without the password', () => {
    assert.equal(server.host, '127.0.0.1');
    assert.equal(server.user, 'postgres');
    assert.equal(server.database, 'postgres');
    assert.ok(server.password.length >= 20);
    assert.equal(server.url, `postgres://postgres:${server.password}@127.0.0.1:${server.port}/postgres`);
    for (const text of [inspect(server), String(server), JSON.stringify(server), inspect({ server })]) {
      assert.ok(!text.includes(server.password), `password leaked in ${text}`);
    }
    assert.ok(!server.logTail(1 << 20).includes(server.password));
    assert.ok(existsSync(path.join(server.dataDir, 'PG_VERSION')));
    assert.equal(server.running, true);
    assert.equal(typeof server.pid, 'number');
  });

  it('serves queries with the configured settings', async () => {
    const client = await connect(server.url);
    try {
      const { rows } = await client.query(
        `SELECT current_setting('max_connections') AS max_connections, current_setting('work_mem') AS work_mem,
                current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc,
                current_setting('full_page_writes') AS fpw, current_setting('listen_addresses') AS listen,
                current_setting('unix_socket_directories') AS sockets, current_user AS usr`,
      );
      assert.deepEqual(rows, [
        {
          max_connections: '30',
          work_mem: '8MB',
          fsync: 'off',
          sc: 'off',
          fpw: 'off',
          listen: '127.0.0.1',
          sockets: '',
          usr: 'postgres',
        },
      ]);
    } finally {
      await client.end();
    }
  });

  it('rejects a wrong password', async () => {
    const client = new pg.Client({
      host: server.host,
      port: server.port,
      user: 'postgres',
      password: 'nope',
    });
    await assert.rejects(client.connect(), /password authentication failed/);
  });

  it('has pg_stat_statements when the binaries ship it', async () => {
    const client = await connect(server.url);
    try {
      const { rows } = await client.query("SELECT current_setting('shared_preload_libraries') AS libs");
      if (!server.pgStatStatements) {
        assert.equal(rows[0].libs, '');
        return;
      }
      assert.equal(rows[0].libs, 'pg_stat_statements');
      await client.query('SELECT 42 AS answer');
      const stats = await client.query(
        "SELECT calls FROM pg_stat_statements WHERE query LIKE 'SELECT $1 AS answer%' AND calls > 0",
      );
      assert.equal(stats.rowCount, 1);
    } finally {
      await client.end();
    }
  });

  it('counts client backends', async () => {
    const clients = await Promise.all([1, 2, 3].map(() => connect(server.url)));
    try {
      const count = async () => (await (clients[0] as pg.Client).query(CLIENT_BACKENDS)).rows[0].n as number;
      await waitFor('3 client backends', async () => (await count()) === 3);
      await (clients.pop() as pg.Client).end();
      await waitFor('2 client backends', async () => (await count()) === 2);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it('stop() keeps the data and start() comes back on the same port (fast and immediate)', async () => {
    const port = server.port;
    const url = server.url;
    const setup = await connect(url);
    await setup.query('CREATE TABLE kept (v int)');
    await setup.query('INSERT INTO kept VALUES (1)');

    const errors: Error[] = [];
    setup.on('error', (err) => errors.push(err));
    await server.stop('fast');
    assert.equal(server.running, false);
    assert.equal(server.pid, undefined);
    await waitFor('client to notice the shutdown', () => errors.length > 0);
    await assert.rejects(connect(url), /ECONNREFUSED/);

    await server.start();
    assert.equal(server.port, port);
    assert.equal(server.url, url);
    const client = await connect(url);
    client.on('error', () => {});
    // synchronous_commit is off server-wide: an immediate stop may lose the last commits unless the
    // session asks for them to be written (fsync stays off; the OS keeps what was written).
    await client.query('SET synchronous_commit = on');
    await client.query('INSERT INTO kept VALUES (2)');

    await server.stop('immediate');
    await assert.rejects(connect(url), /ECONNREFUSED/);
    await server.start(); // crash recovery
    const afterCrash = await connect(url);
    afterCrash.on('error', () => {});
    const { rows } = await afterCrash.query('SELECT array_agg(v ORDER BY v) AS vs FROM kept');
    assert.deepEqual(rows, [{ vs: [1, 2] }]);

    const pidBefore = server.pid;
    await server.restart('immediate');
    assert.notEqual(server.pid, pidBefore);
    const again = await connect(url);
    assert.deepEqual((await again.query('SELECT count(*)::int AS n FROM kept')).rows, [{ n: 2 }]);
    await again.end();

    await server.stop(); // stopping twice is fine
    await server.stop();
    await server.start();
    await server.start(); // so is starting twice
    const last = await connect(url);
    await last.end();
  });
});

describe('server clean-up', { concurrency: 3 }, () => {
  it('destroy() stops the server and removes its files', async () => {
    const server = await startPostgres();
    const pid = server.pid as number;
    const baseDir = path.dirname(server.dataDir);
    assert.ok(processAlive(pid));
    await server.destroy();
    assert.equal(processAlive(pid), false);
    assert.equal(existsSync(baseDir), false);
    await server.destroy(); // idempotent
    await assert.rejects(server.start(), /destroyed/);
  });

  // A child process starts a server and then ends in different ways; nothing may be left behind.
  const tsx = import.meta.resolve('tsx');
  const postgresModule = new URL('./postgres.ts', import.meta.url).href;
  const endings = {
    'returns without destroy()': '',
    'an uncaught exception': "setTimeout(() => { throw new Error('boom'); }, 1);",
    SIGTERM: "setInterval(() => {}, 1000); process.kill(process.pid, 'SIGTERM');",
    'SIGKILL (the watchdog cleans up)': "setInterval(() => {}, 1000); process.kill(process.pid, 'SIGKILL');",
  };

  for (const [name, ending] of Object.entries(endings)) {
    it(`leaves no server behind when the process ends by ${name}`, async () => {
      const code = `
        import { startPostgres } from ${JSON.stringify(postgresModule)};
        const server = await startPostgres();
        process.stdout.write(JSON.stringify({ pid: server.pid, dataDir: server.dataDir }) + '\\n', () => { ${ending} });
      `;
      const child = spawn(process.execPath, ['--import', tsx, '--input-type=module', '-e', code], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
      });
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
      });
      const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
        child.on('exit', (c, s) => resolve([c, s])),
      );
      const line = stdout.split('\n')[0] ?? '';
      assert.ok(
        line.startsWith('{'),
        `child printed no server info (exit ${exitCode}, ${signal}): ${stderr}`,
      );
      const { pid, dataDir } = JSON.parse(line) as { pid: number; dataDir: string };
      assert.ok(!stdout.includes('postgres://') && !stderr.includes('postgres://'));
      await waitFor(`postmaster ${pid} to exit`, () => !processAlive(pid));
      await waitFor(`${dataDir} to be removed`, () => !existsSync(path.dirname(dataDir)));
    });
  }
});
