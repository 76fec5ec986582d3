// `pgwarden doctor` end to end: exit codes, the three output formats, and one-line errors for bad
// input that never show the password. Runs against its own small server (max_connections 12).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type EmbeddedServer, freePort, startPostgres, uniqueName } from '@pgwarden/testkit';
import pg from 'pg';
import { type DoctorFlags, runDoctor } from './doctor.js';
import { captured } from './io.fixture.js';

const SECRET = `S3cret-${Math.random().toString(36).slice(2, 10)}`;

const doctor = (flags: DoctorFlags, env: Record<string, string | undefined> = {}) =>
  captured(runDoctor, flags, env);

describe('pgwarden doctor', () => {
  let server: EmbeddedServer;
  const clients: pg.Client[] = [];
  let appUrl: string;

  before(async () => {
    server = await startPostgres({ settings: { max_connections: 12 } });
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query(`CREATE ROLE app_user LOGIN PASSWORD '${SECRET}'`);
    await admin.end();
    const u = new URL(server.url);
    u.username = 'app_user';
    u.password = SECRET;
    appUrl = u.toString();
  });
  after(async () => {
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
    await server?.destroy();
  });

  it('exits 0 with a healthy report on a quiet server, in each format', async () => {
    const json = await doctor({ url: server.url, json: true });
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    for (const key of ['server', 'connections', 'findings', 'sessions', 'locks', 'slowQueries', 'tables']) {
      assert.ok(key in report, `--json has ${key}`);
    }
    assert.equal(report.status, 'healthy');
    assert.equal(report.connections.total, 0);
    const text = await doctor({ url: server.url });
    assert.equal(text.code, 0);
    assert.match(text.stdout, /healthy/);
    assert.ok(!text.stdout.includes('\u001b['), 'no colour when not a TTY');
    const md = await doctor({ url: server.url, markdown: true });
    assert.equal(md.code, 0);
    assert.match(md.stdout, /^#+ .*healthy/m);
  });

  it('exits 1 on a warning and 2 on a critical finding', async () => {
    const app = uniqueName('stuck');
    for (let i = 0; i < 2; i++) {
      const c = new pg.Client({ connectionString: server.url, application_name: app });
      c.on('error', () => {});
      await c.connect();
      await c.query('BEGIN; SELECT 1');
      clients.push(c);
    }
    const warning = await doctor({ url: server.url, json: true, idleInTransaction: '0s' });
    assert.equal(warning.code, 1, JSON.parse(warning.stdout).headline);
    const critical = await doctor({
      url: server.url,
      json: true,
      idleInTransaction: '0s',
      terminateAfter: '0s',
    });
    assert.equal(critical.code, 2);
    const report = JSON.parse(critical.stdout);
    assert.equal(report.findings[0].id, 'sessions.idle_in_transaction');
    await Promise.all(clients.splice(0).map((c) => c.end()));
  });

  it('says the server is full (53300) and explains the reserved-slot role', async () => {
    const u = new URL(server.url);
    const probe = await doctor({ url: server.url, json: true });
    const usable = JSON.parse(probe.stdout).server.usableConnections as number;
    for (let i = 0; i < usable; i++) {
      const c = new pg.Client({ connectionString: appUrl, application_name: 'filler' });
      c.on('error', () => {});
      await c.connect();
      clients.push(c);
    }
    const refused = await doctor({ url: appUrl });
    assert.equal(refused.code, 3);
    assert.match(refused.stderr, /53300/);
    assert.match(refused.stderr, /pg_use_reserved_connections/);
    assert.ok(!refused.stderr.includes(SECRET) && !refused.stdout.includes(SECRET));
    // A superuser still gets in through the reserved slots, and sees the saturation.
    const full = await doctor({ url: server.url, json: true });
    assert.equal(full.code, 2);
    assert.equal(
      JSON.parse(full.stdout).findings.some(
        (f: { id: string; severity: string }) =>
          f.id === 'connections.saturation' && f.severity === 'critical',
      ),
      true,
    );
    await Promise.all(clients.splice(0).map((c) => c.end()));
    assert.ok(u.port);
  });

  it('gives one-line errors with exit 3 for bad input, never the password', async () => {
    const closed = await freePort();
    const cases: { flags: DoctorFlags; expect: RegExp }[] = [
      { flags: { url: `postgres://app_user:${SECRET}@127.0.0.1:notaport/x` }, expect: /malformed/ },
      { flags: { url: 'http://127.0.0.1/' }, expect: /must start with postgres:\/\// },
      {
        flags: { url: `postgres://app_user:${SECRET}@127.0.0.1:${closed}/postgres` },
        expect: /connection refused/,
      },
      { flags: { url: appUrl.replace(SECRET, `${SECRET}x`) }, expect: /authentication failed/ },
      { flags: {}, expect: /pass --url/ },
      { flags: { url: server.url, longRunning: 'soon' }, expect: /--long-running takes a duration/ },
      { flags: { url: server.url, usageWarning: '150%' }, expect: /--usage-warning must be between/ },
    ];
    for (const c of cases) {
      const res = await doctor(c.flags);
      assert.equal(res.code, 3, `${JSON.stringify(c.flags)} -> ${res.stderr}`);
      assert.match(res.stderr, c.expect);
      assert.equal(res.stderr.trim().split('\n').length, 1, `one line: ${res.stderr}`);
      assert.ok(!res.stderr.includes(SECRET), 'the password never appears');
      assert.doesNotMatch(res.stderr, /\n\s+at /, 'no stack without --verbose');
    }
  });

  it('recognises a port that is not PostgreSQL', async () => {
    const web = http.createServer((_req, res) => res.end('hello'));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
    const silent = net.createServer((socket) => socket.resume());
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (web.address() as net.AddressInfo).port;
      const httpRes = await doctor({ url: `postgres://u:${SECRET}@127.0.0.1:${port}/db` });
      assert.equal(httpRes.code, 3);
      assert.match(httpRes.stderr, /did not answer like a PostgreSQL server|no answer/);
      assert.ok(!httpRes.stderr.includes(SECRET));
      const quietPort = (silent.address() as net.AddressInfo).port;
      const started = Date.now();
      const quiet = await doctor({ url: `postgres://u@127.0.0.1:${quietPort}/db`, json: true });
      assert.equal(quiet.code, 3);
      assert.ok(Date.now() - started < 10_000);
      assert.equal(JSON.parse(quiet.stdout).findings[0].id, 'server.unreachable');
    } finally {
      web.close();
      silent.close();
    }
  });

  it('runs as the pgwarden command', () => {
    const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/cli.js');
    const res = spawnSync(process.execPath, [cli, 'doctor', '--json'], {
      env: { ...process.env, DATABASE_URL: server.url },
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(res.status, 0, res.stderr);
    assert.equal(JSON.parse(res.stdout).status, 'healthy');
    const bad = spawnSync(process.execPath, [cli, 'doctor', '--no-such-flag'], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(bad.status, 3);
    assert.match(bad.stderr, /unknown option/);
  });
});
