// `pgwarden doctor --pgbouncer`: a real PgBouncer (Debian's) in front of the embedded PostgreSQL
// with its pool saturated. Doctor must report the waiting clients with the numbers SHOW POOLS gives
// and name the backend pids that serve the pool.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type EmbeddedPgBouncer,
  type EmbeddedServer,
  adminClient,
  skipWithoutPgBouncer,
  startPgBouncer,
  startPostgres,
  waitFor,
} from '@pgwarden/testkit';
import pg from 'pg';
import { type DoctorFlags, runDoctor } from './doctor.js';
import { captured } from './io.fixture.js';
import { runKill } from './kill.js';

const SLEEP = 'SELECT pg_sleep(3)';

const doctor = (flags: DoctorFlags) => captured(runDoctor, flags);

async function showPools(
  adminUrl: string,
): Promise<{ database: string; cl_waiting: number; sv_active: number }[]> {
  const client = new pg.Client({ connectionString: adminUrl });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query('SHOW POOLS')).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

describe('pgwarden doctor with PgBouncer', { skip: skipWithoutPgBouncer() }, () => {
  let server: EmbeddedServer;
  let bouncer: EmbeddedPgBouncer;
  before(async () => {
    server = await startPostgres();
    bouncer = await startPgBouncer({ postgres: server, poolMode: 'transaction', defaultPoolSize: 2 });
  });
  after(async () => {
    await bouncer?.destroy();
    await server?.destroy();
  });

  it('reports clients waiting in a saturated pool and the backends that serve it', async () => {
    const clients = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const c = new pg.Client({ connectionString: bouncer.url, application_name: 'vitals-api' });
        c.on('error', () => {});
        await c.connect();
        return c;
      }),
    );
    const running = clients.map((c) => c.query(SLEEP).catch(() => undefined));
    try {
      await waitFor(
        'the pool to saturate',
        async () => {
          const pools = await showPools(bouncer.adminUrl);
          return pools.some((p) => p.database === 'postgres' && p.sv_active === 2 && p.cl_waiting === 4);
        },
        5000,
        20,
      );
      const before = await showPools(bouncer.adminUrl);
      const res = await doctor({ url: server.url, pgbouncer: bouncer.adminUrl, json: true });
      const after = await showPools(bouncer.adminUrl);
      assert.equal(res.code, 1, res.stderr || JSON.parse(res.stdout).headline);
      const report = JSON.parse(res.stdout);
      const finding = report.findings.find((f: { id: string }) => f.id === 'pgbouncer.clients_waiting');
      assert.ok(finding, 'pgbouncer.clients_waiting');
      const waiting = finding.evidence.pools.find((p: { database: string }) => p.database === 'postgres');
      const raw = (rows: typeof before) => rows.find((p) => p.database === 'postgres')?.cl_waiting;
      assert.equal(waiting.clWaiting, 4);
      assert.equal(raw(before), 4);
      assert.equal(raw(after), 4, 'SHOW POOLS gave the same numbers around the probe');
      // The backends PgBouncer uses are the ones PostgreSQL shows running the statement.
      const admin = await adminClient(server.url);
      const sleeping = await admin.query<{ pid: number }>(
        'SELECT pid FROM pg_stat_activity WHERE query = $1',
        [SLEEP],
      );
      await admin.end();
      assert.deepEqual(
        [...finding.pids].sort((a: number, b: number) => a - b),
        sleeping.rows.map((r) => r.pid).sort((a, b) => a - b),
      );
      assert.equal(finding.pids.length, 2);
      const text = await doctor({ url: server.url, pgbouncer: bouncer.adminUrl });
      assert.match(text.stdout, /PgBouncer/);
      // pgwarden kill's plan says which backends serve a pooled client.
      let killOut = '';
      const killCode = await runKill(
        {
          url: server.url,
          pgbouncer: bouncer.adminUrl,
          olderThan: '0s',
          state: 'active',
          json: true,
          maxShare: '100%',
          allowSuperuser: true, // PgBouncer logs in to the server as postgres
        },
        { out: (t) => (killOut += t), err: () => {}, env: {}, isTTY: false, columns: 120 },
      );
      assert.equal(killCode, 1, 'a dry run with a plan');
      const plan = JSON.parse(killOut);
      for (const pid of finding.pids) {
        assert.ok(plan.actions.some((a: { pid: number }) => a.pid === pid));
        assert.equal(
          plan.pgbouncer[String(pid)],
          'postgres/postgres',
          `pid ${pid} serves the PgBouncer pool`,
        );
      }
    } finally {
      await Promise.all(running);
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    }
  });

  it('fails with one line and exit 3 for a PgBouncer user without admin rights', async () => {
    const u = new URL(bouncer.adminUrl);
    u.username = 'postgres';
    u.password = server.password;
    const res = await doctor({ url: server.url, pgbouncer: u.toString() });
    assert.equal(res.code, 3);
    assert.match(res.stderr, /not allowed|admin/i);
    assert.equal(res.stderr.trim().split('\n').length, 1);
    assert.ok(!res.stderr.includes(server.password));
  });
});
