import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import pg from 'pg';
import { adminClient, waitFor } from './helpers.js';
import {
  type EmbeddedPgBouncer,
  hasPgBouncer,
  pgBouncerBinary,
  skipWithoutPgBouncer,
  startPgBouncer,
} from './pgbouncer.js';
import { type EmbeddedServer, startPostgres } from './postgres.js';
import { isAlive } from './processes.js';

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  return client;
}

function uidOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Uid:'));
  return Number(line?.split(/\s+/)[1]);
}

function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const set = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  set(vars);
  try {
    return fn();
  } finally {
    set(saved);
  }
}

describe('skipWithoutPgBouncer', () => {
  it('skips with a reason when PgBouncer is missing, and fails instead under CI=true', () => {
    withEnv({ PGWARDEN_PGBOUNCER: '/nonexistent/pgbouncer', CI: undefined }, () => {
      assert.equal(pgBouncerBinary(), '/nonexistent/pgbouncer');
      assert.equal(hasPgBouncer(), false);
      assert.match(String(skipWithoutPgBouncer()), /PgBouncer is not installed \(\/nonexistent\/pgbouncer/);
    });
    withEnv({ PGWARDEN_PGBOUNCER: '/nonexistent/pgbouncer', CI: 'true' }, () => {
      assert.throws(() => skipWithoutPgBouncer(), /not installed.*CI must install it/);
    });
  });
});

describe('startPgBouncer', { skip: skipWithoutPgBouncer() }, () => {
  let server: EmbeddedServer;
  let bouncer: EmbeddedPgBouncer;

  before(async () => {
    server = await startPostgres();
    bouncer = await startPgBouncer({
      postgres: server,
      poolMode: 'transaction',
      defaultPoolSize: 1,
      queryWaitTimeoutSeconds: 1,
      statsOnlyUser: true,
    });
  });

  after(async () => {
    await bouncer?.destroy();
    await server?.destroy();
  });

  it('forwards to the server as its user, and runs as the postgres user when we are root', async () => {
    const client = await connect(bouncer.url);
    try {
      const { rows } = await client.query('SELECT current_user AS usr, inet_server_port() AS port');
      assert.deepEqual(rows, [{ usr: server.user, port: server.port }]);
    } finally {
      await client.end();
    }
    assert.equal(bouncer.host, '127.0.0.1');
    assert.ok(bouncer.url.startsWith(`postgres://${server.user}:`));
    assert.ok(bouncer.url.endsWith(`@127.0.0.1:${bouncer.port}/${server.database}`));
    assert.ok(bouncer.adminUrl.startsWith('postgres://pgwarden_admin:'));
    assert.ok(bouncer.adminUrl.endsWith(`@127.0.0.1:${bouncer.port}/pgbouncer`));
    assert.ok(bouncer.statsUrl?.startsWith('postgres://pgwarden_stats:'));
    const pid = bouncer.pid as number;
    if (process.getuid?.() === 0) assert.notEqual(uidOf(pid), 0);
    assert.equal(statSync(bouncer.configFile).mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(bouncer.configFile)).mode & 0o777, 0o700);
  });

  it('describes itself, and logs, without any password', () => {
    const secrets = [bouncer.url, bouncer.adminUrl, bouncer.statsUrl as string].map(
      (u) => new URL(u).password,
    );
    assert.ok(secrets.every((s) => s.length >= 20));
    assert.ok(secrets.includes(server.password));
    for (const text of [
      inspect(bouncer),
      String(bouncer),
      JSON.stringify(bouncer),
      bouncer.logTail(1 << 20),
    ]) {
      for (const secret of secrets) assert.ok(!text.includes(secret), `password leaked in ${text}`);
    }
    assert.ok(!readFileSync(bouncer.configFile, 'utf8').includes(server.password));
  });

  it('serves the console to the admin user, and SHOW but not PAUSE to the stats user', async () => {
    const admin = await adminClient(bouncer.adminUrl);
    try {
      const { rows } = await admin.query('SHOW CONFIG');
      const config = Object.fromEntries(rows.map((r) => [r.key, r.value]));
      assert.equal(config.listen_addr, '127.0.0.1');
      assert.equal(config.listen_port, String(bouncer.port));
      assert.equal(config.pool_mode, 'transaction');
      assert.equal(config.default_pool_size, '1');
      assert.equal(config.query_wait_timeout, '1');
      assert.equal(config.auth_type, 'scram-sha-256');
      assert.equal(config.stats_users, 'pgwarden_stats');
    } finally {
      await admin.end();
    }
    const stats = await adminClient(bouncer.statsUrl as string);
    try {
      assert.ok((await stats.query('SHOW POOLS')).rows.length >= 1);
      await assert.rejects(stats.query('PAUSE'), /admin access needed/);
    } finally {
      await stats.end();
    }
  });

  it('disconnects a client that waited longer than query_wait_timeout', async () => {
    const [holder, waiter] = await Promise.all([connect(bouncer.url), connect(bouncer.url)]);
    try {
      const started = Date.now();
      const held = holder.query('SELECT pg_sleep(2.5)');
      await new Promise((r) => setTimeout(r, 100));
      await assert.rejects(waiter.query('SELECT 1'), /query_wait_timeout/);
      const waited = Date.now() - started;
      assert.ok(waited >= 900 && waited < 2400, `waited ${waited} ms`);
      await held;
    } finally {
      await Promise.all([holder.end(), waiter.end()]);
    }
  });

  it('stop() refuses connections and start() comes back on the same port', async () => {
    const { port, url } = bouncer;
    const pid = bouncer.pid as number;
    await bouncer.stop();
    assert.equal(bouncer.running, false);
    assert.equal(isAlive(pid), false);
    await assert.rejects(connect(url), /ECONNREFUSED/);
    await bouncer.stop(); // twice is fine
    await bouncer.start();
    assert.equal(bouncer.port, port);
    const client = await connect(url);
    assert.deepEqual((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    await client.end();
  });

  it('rejects bad options naming them', async () => {
    await assert.rejects(startPgBouncer({ postgres: server, defaultPoolSize: 0 }), /defaultPoolSize.*got 0/);
    await assert.rejects(startPgBouncer({ postgres: server, adminUser: 'a b' }), /adminUser/);
    await assert.rejects(startPgBouncer({ postgres: server, settings: { 'x\ny': 1 } }), /setting name/);
  });
});

describe('PgBouncer clean-up', { skip: skipWithoutPgBouncer(), concurrency: 2 }, () => {
  it('destroy() stops PgBouncer and removes its files', async () => {
    const server = await startPostgres();
    try {
      const bouncer = await startPgBouncer({ postgres: server });
      const pid = bouncer.pid as number;
      const dir = path.dirname(bouncer.configFile);
      assert.ok(isAlive(pid));
      await bouncer.destroy();
      assert.equal(isAlive(pid), false);
      assert.equal(existsSync(dir), false);
      await bouncer.destroy(); // idempotent
      await assert.rejects(bouncer.start(), /destroyed/);
    } finally {
      await server.destroy();
    }
  });

  // A child process starts PostgreSQL and PgBouncer and then ends; nothing may be left behind.
  const tsx = import.meta.resolve('tsx');
  const moduleUrl = (file: string) => new URL(file, import.meta.url).href;
  const endings = {
    'returns without destroy()': '',
    'SIGKILL (the watchdog cleans up)': "setInterval(() => {}, 1000); process.kill(process.pid, 'SIGKILL');",
  };
  for (const [name, ending] of Object.entries(endings)) {
    it(`leaves no PgBouncer behind when the process ends by ${name}`, async () => {
      const code = `
        import { startPostgres } from ${JSON.stringify(moduleUrl('./postgres.ts'))};
        import { startPgBouncer } from ${JSON.stringify(moduleUrl('./pgbouncer.ts'))};
        const server = await startPostgres();
        const bouncer = await startPgBouncer({ postgres: server });
        process.stdout.write(JSON.stringify({ pid: bouncer.pid, configFile: bouncer.configFile }) + '\\n', () => { ${ending} });
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
        `child printed no PgBouncer info (exit ${exitCode}, ${signal}): ${stderr}`,
      );
      const { pid, configFile } = JSON.parse(line) as { pid: number; configFile: string };
      await waitFor(`pgbouncer ${pid} to exit`, () => !isAlive(pid), 15_000, 25);
      await waitFor(`${configFile} to be removed`, () => !existsSync(path.dirname(configFile)), 15_000, 25);
    });
  }
});
