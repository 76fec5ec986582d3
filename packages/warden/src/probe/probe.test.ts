// Probe and diagnosis against a real PostgreSQL: each condition of the runbook is created for real
// and the finding must name the right sessions. A dedicated server keeps other test files' sessions
// out of the counts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type EmbeddedServer, sleep, startPostgres, uniqueName, waitFor } from '@pgwarden/testkit';
import pg from 'pg';
import { diagnose } from '../diagnose/index.js';
import type { Finding } from '../finding.js';
import { PostgresProbe, takeSnapshot } from './postgres.js';

const MAX_CONNECTIONS = 20;

describe('probe and diagnosis against a real server', () => {
  let server: EmbeddedServer;
  let url: string;
  const opened: pg.Client[] = [];

  before(async () => {
    server = await startPostgres({ settings: { max_connections: MAX_CONNECTIONS } });
    url = server.url;
  });
  after(async () => {
    await closeAll();
    await server?.destroy();
  });

  async function open(application: string, connectionString = url): Promise<pg.Client & { pid: number }> {
    const client = new pg.Client({ connectionString, application_name: application }) as pg.Client & {
      pid: number;
    };
    client.on('error', () => {});
    await client.connect();
    client.pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]
      ?.pid as number;
    opened.push(client);
    return client;
  }

  async function closeAll(): Promise<void> {
    const clients = opened.splice(0);
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }

  const find = (findings: Finding[], id: Finding['id']) => findings.filter((f) => f.id === id);

  it('counts client backends only, never itself, and finds nothing wrong on a quiet server', async () => {
    const snap = await takeSnapshot(url);
    assert.equal(snap.connections.total, 0, 'the probe does not count its own backend');
    assert.ok(snap.connections.otherBackends >= 3, 'background processes are seen but not counted');
    assert.equal(snap.server.maxConnections, MAX_CONNECTIONS);
    assert.equal(
      snap.server.usableConnections,
      MAX_CONNECTIONS - snap.server.superuserReservedConnections - snap.server.reservedConnections,
    );
    assert.ok(snap.server.major >= 12);
    assert.ok(snap.probeMillis < 1000);
    const d = diagnose(snap);
    assert.equal(d.status, 'healthy', d.findings.map((f) => `${f.severity} ${f.id}`).join(', '));
    assert.deepEqual(
      d.findings.filter((f) => f.severity !== 'info'),
      [],
    );
    const one = await open(uniqueName('quiet'));
    assert.equal((await takeSnapshot(url)).connections.total, 1);
    await one.end();
    opened.length = 0;
  });

  it('finds sessions idle in transaction, with their pids and identity-checked actions', async () => {
    const app = uniqueName('leaky');
    const clients = await Promise.all([open(app), open(app), open(app)]);
    for (const c of clients) await c.query('BEGIN; SELECT 1');
    await sleep(1100);
    const snap = await takeSnapshot(url);
    const d = diagnose(snap, { idleInTransactionSeconds: 1 });
    const [finding] = find(d.findings, 'sessions.idle_in_transaction');
    assert.ok(finding, 'idle in transaction finding');
    assert.deepEqual([...finding.pids].sort(), clients.map((c) => c.pid).sort());
    assert.equal(d.cause?.id, 'sessions.idle_in_transaction', 'named as the most likely cause');
    const session = snap.sessions.find((s) => s.pid === clients[0]?.pid);
    assert.ok(session && (session.xactAgeSeconds ?? 0) >= 1, 'transaction age comes from xact_start');
    assert.equal(session.queryAgeSeconds, null, 'an idle session has no query age');
    const action = finding.actions.find(
      (a) => a.kind === 'terminate' && a.target === `pid ${clients[0]?.pid}`,
    );
    assert.ok(action);
    assert.match(
      action.text,
      /pg_terminate_backend\(pid\) FROM pg_stat_activity WHERE pid = \d+ AND backend_start = '[^']+'::timestamptz;/,
    );
    // The action's identity matches the live session exactly: run it and the session ends.
    const admin = await open(uniqueName('admin'));
    const res = await admin.query(action.text);
    assert.equal(res.rows[0]?.pg_terminate_backend, true);
    await waitFor(
      'the session to end',
      async () => !(await takeSnapshot(url)).sessions.some((s) => s.pid === clients[0]?.pid),
    );
    await closeAll();
  });

  it('finds an active query past the threshold, measured from query_start', async () => {
    const app = uniqueName('slowpoke');
    const sleeper = await open(app);
    const running = sleeper.query('SELECT pg_sleep(5)').catch(() => undefined);
    await sleep(1200);
    const snap = await takeSnapshot(url);
    const d = diagnose(snap, { longRunningSeconds: 1, terminateAfterSeconds: 60 });
    const [finding] = find(d.findings, 'sessions.long_running');
    assert.ok(finding);
    assert.deepEqual(finding.pids, [sleeper.pid]);
    assert.ok(finding.actions.some((a) => a.kind === 'cancel' && a.text.includes(`pid = ${sleeper.pid}`)));
    assert.ok(!finding.actions.some((a) => a.kind === 'terminate'), 'not yet a termination candidate');
    const admin = await open(uniqueName('admin'));
    const cancel = finding.actions.find((a) => a.kind === 'cancel');
    await admin.query(cancel?.text ?? '');
    await running;
    await closeAll();
  });

  it('names the root blocker of a 3-level lock chain, not the middle', async () => {
    const table = `chain_${Math.random().toString(36).slice(2, 8)}`;
    const setup = await open(uniqueName('setup'));
    await setup.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int)`);
    await setup.query(`INSERT INTO ${table} VALUES (1, 0), (2, 0)`);
    const [root, middle, leaf] = await Promise.all([open('root'), open('middle'), open('leaf')]);
    assert.ok(root && middle && leaf);
    await root.query(`BEGIN; UPDATE ${table} SET v = 1 WHERE id = 1`);
    await middle.query(`BEGIN; UPDATE ${table} SET v = 1 WHERE id = 2`);
    const middleWaits = middle.query(`UPDATE ${table} SET v = 2 WHERE id = 1`).catch(() => undefined);
    const leafWaits = leaf.query(`UPDATE ${table} SET v = 3 WHERE id = 2`).catch(() => undefined);
    await waitFor('both to wait on locks', async () => {
      const s = await takeSnapshot(url);
      return s.sessions.filter((x) => x.waitEventType === 'Lock').length >= 2;
    });
    const snap = await takeSnapshot(url);
    assert.equal(snap.locks.length, 1);
    const chain = snap.locks[0];
    assert.equal(chain?.rootPid, root.pid);
    assert.deepEqual(
      chain?.blockedPids,
      [middle.pid, leaf.pid].sort((a, b) => a - b),
    );
    assert.equal(chain?.depth, 2);
    const d = diagnose(snap);
    const [finding] = find(d.findings, 'locks.blocking_chain');
    assert.ok(finding);
    assert.equal(finding.pids[0], root.pid);
    assert.ok(finding.actions.some((a) => a.kind === 'terminate' && a.target === `pid ${root.pid}`));
    await root.query('ROLLBACK');
    await middleWaits;
    await middle.query('ROLLBACK');
    await leafWaits;
    await setup.query(`DROP TABLE ${table}`);
    await closeAll();
  });

  it('reports connections filled to the limit as critical', async () => {
    const base = await takeSnapshot(url);
    const fill = base.server.usableConnections - base.connections.total;
    const app = uniqueName('filler');
    await Promise.all(Array.from({ length: fill }, () => open(app)));
    const snap = await takeSnapshot(url);
    assert.equal(snap.connections.total, snap.server.usableConnections);
    const d = diagnose(snap);
    const [saturation] = find(d.findings, 'connections.saturation');
    assert.equal(saturation?.severity, 'critical');
    assert.equal(d.status, 'critical');
    const [consumer] = find(d.findings, 'connections.by_consumer');
    assert.equal(consumer?.severity, 'warning', 'one application holds most connections');
    assert.match(consumer?.title ?? '', new RegExp(app));
    await closeAll();
  });

  it('reads slow statements with the column names of the server version', async () => {
    const c = await open(uniqueName('slowq'));
    for (let i = 0; i < 3; i++) await c.query('SELECT pg_sleep(0.15)');
    const snap = await takeSnapshot(url);
    assert.equal(snap.statStatements.installed, true);
    assert.equal(snap.statStatements.error, null);
    const d = diagnose(snap, { slowMeanMillis: 100 });
    const [slow] = find(d.findings, 'queries.slow');
    assert.ok(slow, 'slow statement finding');
    const column = snap.server.major >= 13 ? 'mean_exec_time' : 'mean_time';
    assert.ok(slow.actions.some((a) => a.text.includes(column)));
    assert.ok(snap.statStatements.top.some((q) => /pg_sleep/.test(q.query) && q.meanMs >= 100));
    await closeAll();
  });

  it('gives the exact set-up steps when pg_stat_statements is missing', async () => {
    const db = `nopgss_${Math.random().toString(36).slice(2, 8)}`;
    const admin = await open(uniqueName('admin'));
    await admin.query(`CREATE DATABASE ${db}`);
    const dbUrl = new URL(url);
    dbUrl.pathname = `/${db}`;
    const snap = await takeSnapshot(dbUrl.toString());
    assert.equal(snap.statStatements.installed, false);
    const d = diagnose(snap);
    const [missing] = find(d.findings, 'extension.pg_stat_statements_missing');
    assert.ok(missing);
    assert.ok(missing.actions.some((a) => a.text === 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements;'));
    assert.equal(d.status, 'healthy', 'a missing extension limits diagnosis but is not an incident');
    await admin.query(`DROP DATABASE ${db}`);
    await closeAll();
  });

  it('works as a pg_monitor role, and says what a plain role cannot see', async () => {
    const admin = await open(uniqueName('admin'));
    const monitor = `mon_${Math.random().toString(36).slice(2, 8)}`;
    const plain = `plain_${Math.random().toString(36).slice(2, 8)}`;
    const password = Math.random().toString(36).slice(2);
    await admin.query(`CREATE ROLE ${monitor} LOGIN PASSWORD '${password}' IN ROLE pg_monitor`);
    await admin.query(`CREATE ROLE ${plain} LOGIN PASSWORD '${password}'`);
    const other = await open(uniqueName('someone-else'));
    await other.query('BEGIN; SELECT 1');
    const as = (role: string) => {
      const u = new URL(url);
      u.username = role;
      u.password = password;
      return u.toString();
    };
    const seen = await takeSnapshot(as(monitor));
    assert.equal(seen.visibility.monitor, true);
    assert.equal(seen.visibility.superuser, false);
    assert.equal(seen.visibility.hiddenSessions, 0);
    assert.ok(seen.sessions.some((s) => s.pid === other.pid && s.state === 'idle in transaction'));
    const limited = await takeSnapshot(as(plain));
    assert.equal(limited.visibility.monitor, false);
    assert.ok(limited.visibility.hiddenSessions >= 1);
    const d = diagnose(limited);
    assert.ok(find(d.findings, 'visibility.limited')[0]?.actions[0]?.text.includes('GRANT pg_monitor'));
    await other.query('ROLLBACK');
    await closeAll();
    const cleanup = await open(uniqueName('admin'));
    await cleanup.query(`DROP ROLE ${monitor}`);
    await cleanup.query(`DROP ROLE ${plain}`);
    await closeAll();
  });

  it('keeps one connection across snapshots', async () => {
    const probe = new PostgresProbe(url);
    try {
      const first = await probe.snapshot();
      const second = await probe.snapshot();
      assert.equal(first.connections.total, 0);
      assert.equal(second.connections.total, 0);
      const watcher = await open(uniqueName('watcher'));
      const res = await watcher.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgwarden'",
      );
      assert.equal(res.rows[0]?.n, 1, 'exactly one pgwarden connection');
    } finally {
      await probe.close();
      await closeAll();
    }
  });
});
