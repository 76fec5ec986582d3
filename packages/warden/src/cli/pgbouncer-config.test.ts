// `pgwarden pgbouncer-config`: the files it writes (no password in either, existing files kept unless
// --force), and the acceptance test: the generated pgbouncer.ini, pointing at an embedded server, with
// the userlist filled in by the test, runs a real PgBouncer (Debian's) that passes `SELECT 1` through
// in transaction mode with the pool sizes the plan computed.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type EmbeddedPgBouncer,
  type EmbeddedServer,
  freePort,
  skipWithoutPgBouncer,
  startPgBouncer,
  startPostgres,
} from '@pgwarden/testkit';
import pg from 'pg';
import { type PgBouncerConfigFlags, runPgBouncerConfig } from './pgbouncer-config.js';
import { captured } from './io.fixture.js';

const SECRET = `S3cret-${Math.random().toString(36).slice(2, 10)}`;

const config = (flags: PgBouncerConfigFlags) => captured(runPgBouncerConfig, flags);

async function tempDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'pgwarden-pgbouncer-config-'));
}

/** The ini's `key = value` lines of [pgbouncer] and [databases]. */
function iniSettings(text: string): Map<string, string> {
  return new Map(
    text
      .split('\n')
      .map((l) => /^([A-Za-z0-9_.-]+) =(?: (.*))?$/.exec(l))
      .filter((m) => m !== null)
      .map((m) => [m[1] as string, m[2] ?? '']),
  );
}

describe('pgwarden pgbouncer-config (offline)', () => {
  const dirs: string[] = [];
  after(async () => {
    await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })));
  });

  it("writes pgbouncer.ini and a userlist template for the runbook's fleet, without the password", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const out = path.join(dir, 'pgbouncer');
    const url = `postgres://vitals_app:${SECRET}@db.internal:5433/vitalstream`;
    const res = await config({ url, offline: true, runbook: true, replicas: '4', out });
    assert.equal(res.code, 0, res.stderr);
    const ini = await fs.readFile(path.join(out, 'pgbouncer.ini'), 'utf8');
    const userlist = await fs.readFile(path.join(out, 'userlist.txt'), 'utf8');
    for (const text of [ini, userlist, res.stdout, res.stderr])
      assert.ok(!text.includes(SECRET), 'no password');
    const s = iniSettings(ini);
    assert.equal(s.get('vitalstream'), 'host=db.internal port=5433 dbname=vitalstream');
    assert.equal(s.get('listen_addr'), '127.0.0.1');
    assert.equal(s.get('listen_port'), '6432');
    assert.equal(s.get('auth_file'), path.join(out, 'userlist.txt'));
    assert.equal(s.get('pool_mode'), 'transaction');
    // The runbook's Step 4 runs 2 PgBouncers: each gets half of the 157 the server can give.
    assert.equal(s.get('default_pool_size'), '71');
    assert.equal(s.get('reserve_pool_size'), '7');
    assert.equal(s.get('max_client_conn'), '360');
    assert.match(userlist, /^;"vitals_app" "<password or SCRAM secret of vitals_app, as on the server>"$/m);
    assert.match(userlist, /^;"pgbouncer_admin" /m);
    assert.match(userlist, /^;"pgwarden" /m);
    assert.equal((await fs.stat(path.join(out, 'userlist.txt'))).mode & 0o777, 0o600);
    assert.match(res.stdout, /^pgwarden pgbouncer-config: wrote\n {2}\/.*\/pgbouncer\.ini\n/);
    assert.match(res.stdout, /sessionSettingsVia: 'query'/);
  });

  it('keeps existing files unless --force', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const flags: PgBouncerConfigFlags = {
      url: 'postgres://app@127.0.0.1/app',
      offline: true,
      replicas: '2',
      poolMax: '10',
      maxConnections: '100',
      out: dir,
    };
    assert.equal((await config(flags)).code, 0);
    await fs.writeFile(path.join(dir, 'userlist.txt'), '"app" "filled in"\n');
    const refused = await config(flags);
    assert.equal(refused.code, 3);
    assert.match(refused.stderr, /pgbouncer\.ini exists: pass --force to overwrite it/);
    assert.equal(refused.stderr.trim().split('\n').length, 1);
    assert.equal(await fs.readFile(path.join(dir, 'userlist.txt'), 'utf8'), '"app" "filled in"\n');
    const forced = await config({ ...flags, force: true, listen: '*:7432' });
    assert.equal(forced.code, 0, forced.stderr);
    const s = iniSettings(await fs.readFile(path.join(dir, 'pgbouncer.ini'), 'utf8'));
    assert.equal(s.get('listen_addr'), '*');
    assert.equal(s.get('listen_port'), '7432');
    assert.doesNotMatch(await fs.readFile(path.join(dir, 'userlist.txt'), 'utf8'), /filled in/);
  });

  it('refuses bad input in one line with exit 3', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const base = { offline: true, replicas: '2', poolMax: '10', maxConnections: '100', out: dir };
    const cases: { flags: PgBouncerConfigFlags; expect: RegExp }[] = [
      { flags: { ...base }, expect: /no server given: pass --url/ },
      { flags: { ...base, url: `postgres://127.0.0.1/app` }, expect: /--url names no user/ },
      {
        flags: { ...base, url: `postgres://app:${SECRET}@127.0.0.1/app`, listen: 'nowhere' },
        expect: /--listen takes address:port/,
      },
      {
        flags: { ...base, url: `postgres://app:${SECRET}@127.0.0.1/my%20db` },
        expect: /the database name "my db" is not a plain name/,
      },
      {
        flags: { ...base, url: `postgres://app:${SECRET}@127.0.0.1/app`, replicas: '0' },
        expect: /--replicas must be a whole number/,
      },
    ];
    for (const c of cases) {
      const res = await config(c.flags);
      assert.equal(res.code, 3, `${JSON.stringify(c.flags)} -> ${res.stderr}`);
      assert.match(res.stderr, c.expect);
      assert.equal(res.stderr.trim().split('\n').length, 1, res.stderr);
      assert.ok(!res.stderr.includes(SECRET));
    }
    assert.deepEqual(await fs.readdir(dir), [], 'nothing written');
  });
});

describe('pgwarden pgbouncer-config: the generated ini runs a real PgBouncer', {
  skip: skipWithoutPgBouncer(),
}, () => {
  let server: EmbeddedServer;
  let bouncer: EmbeddedPgBouncer | undefined;
  let dir: string;
  before(async () => {
    server = await startPostgres({ settings: { max_connections: 40 } });
    dir = await tempDir();
  });
  after(async () => {
    await bouncer?.destroy();
    await server?.destroy();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('passes SELECT 1 through, in transaction mode, with the computed pool sizes', async () => {
    const port = await freePort();
    const res = await config({
      url: server.url,
      replicas: '6',
      poolMax: '10',
      overflow: '5',
      other: '0',
      meanMs: '40',
      rate: '450',
      out: dir,
      listen: `127.0.0.1:${port}`,
      sample: '0.2s',
    });
    assert.equal(res.code, 0, res.stderr);
    assert.ok(!res.stdout.includes(server.password), 'no password in the output');
    const iniFile = path.join(dir, 'pgbouncer.ini');
    const ini = await fs.readFile(iniFile, 'utf8');
    assert.ok(!ini.includes(server.password), 'no password in the ini');
    const s = iniSettings(ini);
    // 450/s × 40 ms = 18 busy: 5 per instance with the margin, 6 × 5 = 30 > 29 (80% of 40 - 3):
    // PgBouncer is recommended, and the 29 it may open (27 + 2) cover the 27 the load needs at once.
    assert.match(ini, /PgBouncer is recommended/);
    assert.doesNotMatch(ini, /WARNING/);
    assert.equal(s.get('postgres'), `host=127.0.0.1 port=${server.port} dbname=postgres`);
    assert.equal(s.get('default_pool_size'), '27');
    assert.equal(s.get('reserve_pool_size'), '2');
    assert.equal(s.get('max_client_conn'), String(8 * 15 + 10));

    // The test fills in the userlist: the server's password for its user, one for the console.
    const consolePassword = `console-${Math.random().toString(36).slice(2, 10)}`;
    const userlistFile = path.join(dir, 'userlist.txt');
    const template = await fs.readFile(userlistFile, 'utf8');
    const filled = template
      .replace(/^;"postgres" .*$/m, `"postgres" "${server.password}"`)
      .replace(/^;"pgbouncer_admin" .*$/m, `"pgbouncer_admin" "${consolePassword}"`);
    assert.notEqual(filled, template);
    await fs.writeFile(userlistFile, filled);

    bouncer = await startPgBouncer({ postgres: server, configFile: iniFile });
    assert.equal(bouncer.port, port);

    const client = new pg.Client({ connectionString: bouncer.url, application_name: 'through-pgbouncer' });
    client.on('error', () => {});
    await client.connect();
    try {
      const one = await client.query<{ one: number }>('SELECT 1 AS one');
      assert.equal(one.rows[0]?.one, 1);
    } finally {
      await client.end();
    }

    // The console reports the configuration the plan computed.
    const admin = new pg.Client({
      connectionString: `postgres://pgbouncer_admin:${encodeURIComponent(consolePassword)}@127.0.0.1:${port}/pgbouncer`,
    });
    admin.on('error', () => {});
    await admin.connect();
    try {
      const rows = (await admin.query<{ key: string; value: string }>('SHOW CONFIG')).rows;
      const shown = new Map(rows.map((r) => [r.key, r.value]));
      assert.equal(shown.get('pool_mode'), 'transaction');
      assert.equal(shown.get('default_pool_size'), '27');
      assert.equal(shown.get('max_client_conn'), '130');
      assert.equal(shown.get('auth_type'), 'scram-sha-256');
    } finally {
      await admin.end();
    }

    // What the ini's comment says: PgBouncer 1.18 refuses statement_timeout as a startup parameter.
    const withStartup = new pg.Client({ connectionString: bouncer.url, statement_timeout: 1000 });
    withStartup.on('error', () => {});
    await assert.rejects(withStartup.connect(), /unsupported startup parameter/);
    await withStartup.end().catch(() => undefined);
  });
});
