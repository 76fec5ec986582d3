// `pgwarden kill` against a real PostgreSQL: what a broad --execute leaves alive, how a stale
// identity is refused, the cancel-then-terminate ladder, the limits, and the audit log.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type EmbeddedServer,
  adminClient,
  sleep,
  startPostgres,
  uniqueName,
  waitFor,
} from '@pgwarden/testkit';
import pg from 'pg';
import type { AuditEntry } from '../remedy/audit.js';
import { MemoryAuditLog } from '../remedy/audit.js';
import { executePlan } from '../remedy/executor.js';
import { DEFAULT_POLICY, planRemedies } from '../remedy/planner.js';
import { PostgresProbe } from '../probe/postgres.js';
import { type KillFlags, runKill } from './kill.js';

interface Held extends pg.Client {
  pid: number;
  lastError?: Error;
}

describe('pgwarden kill against a real server', () => {
  let server: EmbeddedServer;
  let appUrl: string;
  let dir: string;
  const held: Held[] = [];

  before(async () => {
    server = await startPostgres({ settings: { max_connections: 40 } });
    const admin = await adminClient(server.url);
    await admin.query("CREATE ROLE app LOGIN PASSWORD 'app-pw'");
    await admin.end();
    const u = new URL(server.url);
    u.username = 'app';
    u.password = 'app-pw';
    appUrl = u.toString();
    dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-kill-'));
  });
  after(async () => {
    await Promise.all(held.splice(0).map((c) => c.end().catch(() => undefined)));
    await server?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  async function open(url: string, application: string): Promise<Held> {
    const c = new pg.Client({ connectionString: url, application_name: application }) as Held;
    c.on('error', (err) => {
      c.lastError = err;
    });
    await c.connect();
    c.pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number;
    held.push(c);
    return c;
  }

  async function alive(pid: number): Promise<boolean> {
    const admin = await adminClient(server.url);
    try {
      return (await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rows.length > 0;
    } finally {
      await admin.end();
    }
  }

  async function kill(flags: KillFlags) {
    let stdout = '';
    let stderr = '';
    const code = await runKill(
      { url: server.url, grace: '300ms', ...flags },
      { out: (t) => (stdout += t), err: (t) => (stderr += t), env: {}, isTTY: false, columns: 120 },
    );
    return { code, stdout, stderr };
  }

  function audit(file: string): AuditEntry[] {
    return readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditEntry);
  }

  it('is a dry run by default, and a broad --execute spares what it must', async () => {
    const victims = await Promise.all([
      open(appUrl, 'vitals-api'),
      open(appUrl, 'vitals-api'),
      open(appUrl, 'report-job'),
    ]);
    for (const v of victims) await v.query('BEGIN; SELECT 1');
    const superuser = await open(server.url, 'dba-console');
    await superuser.query('BEGIN; SELECT 1');
    const protectedApp = await open(appUrl, 'billing');
    await protectedApp.query('BEGIN; SELECT 1');
    const log = path.join(dir, 'broad.jsonl');

    const dry = await kill({ olderThan: '0s', auditLog: log, protectApp: ['billing'], maxShare: '100%' });
    assert.equal(dry.code, 1, dry.stderr);
    assert.match(dry.stdout, /dry run/);
    for (const v of victims) assert.ok(await alive(v.pid), 'a dry run kills nothing');

    const admin = await adminClient(server.url);
    const background = (
      await admin.query("SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'")
    ).rows.map((r) => r.pid as number);
    await admin.end();
    const run = await kill({
      olderThan: '0s',
      auditLog: log,
      protectApp: ['billing'],
      execute: true,
      maxShare: '100%',
    });
    assert.equal(run.code, 0, run.stdout + run.stderr);
    for (const v of victims) {
      await waitFor(`pid ${v.pid} to end`, async () => !(await alive(v.pid)));
    }
    assert.ok(await alive(superuser.pid), 'the superuser session is left alone');
    assert.ok(await alive(protectedApp.pid), 'the protected application is left alone');
    for (const pid of background) assert.ok(await alive(pid), `background process ${pid} is left alone`);
    const entries = audit(log);
    const refused = entries.filter((e) => e.event === 'refuse').map((e) => e.pid);
    assert.ok(refused.includes(superuser.pid) && refused.includes(protectedApp.pid));
    for (const v of victims) {
      const lines = entries.filter((e) => e.pid === v.pid);
      assert.deepEqual(
        lines.map((l) => `${l.event}:${l.result}`),
        ['terminate:ok'],
        'one line per action: sessions idle in transaction are terminated without a cancel',
      );
      assert.equal(lines[0]?.rule, 'idle_in_transaction');
      assert.match(lines[0]?.queryFingerprint ?? '', /^[0-9a-f]{16}$/);
      assert.equal(lines[0]?.backendStart.length, 27);
    }
    await superuser.query('ROLLBACK');
    await protectedApp.query('ROLLBACK');
  });

  it('never terminates its own backend', async () => {
    const probe = new PostgresProbe(server.url);
    try {
      const own = (
        await probe.execute<{ pid: number; start: string }>(
          `SELECT pg_backend_pid() AS pid, to_char(backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS start
           FROM pg_stat_activity WHERE pid = pg_backend_pid()`,
        )
      ).rows[0];
      assert.ok(own);
      const snapshot = await probe.snapshot();
      const plan = planRemedies(snapshot, { olderThanSeconds: 0 }, DEFAULT_POLICY);
      plan.actions.push({
        pid: own.pid,
        backendStart: own.start,
        user: 'postgres',
        application: 'pgwarden',
        state: 'active',
        ageSeconds: 1,
        query: null,
        rule: 'requested',
        reason: 'forced into the plan by the test',
        guilt: { xactStart: null, queryStart: null },
      });
      const report = await executePlan((t, v) => probe.execute(t, v), plan, {
        policy: { ...DEFAULT_POLICY, graceMillis: 10, allowSuperusers: true },
        audit: new MemoryAuditLog(),
        serverMajor: probe.serverMajor,
      });
      const self = report.outcomes.find((o) => o.action.pid === own.pid);
      assert.equal(self?.cancel, 'no_longer_guilty', 'the statement itself refuses pg_backend_pid()');
      assert.equal((await probe.execute('SELECT 1 AS ok')).rows[0]?.ok, 1, 'still connected');
    } finally {
      await probe.close();
    }
  });

  it('refuses and logs a stale (pid, backend_start)', async () => {
    const victim = await open(appUrl, uniqueName('stale'));
    await victim.query('BEGIN; SELECT 1');
    const probe = new PostgresProbe(server.url);
    const audit = new MemoryAuditLog();
    try {
      const snapshot = await probe.snapshot();
      const plan = planRemedies(
        snapshot,
        { olderThanSeconds: 0, pids: [victim.pid] },
        { ...DEFAULT_POLICY, maxShareOfClients: 1 },
      );
      assert.equal(plan.actions.length, 1);
      // The session the plan saw is gone; a new one could have its pid. Same pid, another start:
      (plan.actions[0] as { backendStart: string }).backendStart = '2000-01-01T00:00:00.000000Z';
      const report = await executePlan((t, v) => probe.execute(t, v), plan, {
        policy: { ...DEFAULT_POLICY, graceMillis: 10 },
        audit,
        serverMajor: probe.serverMajor,
      });
      // Idle in its transaction: terminated at once, and the statement finds no such session.
      assert.equal(report.outcomes[0]?.terminate, 'gone');
      assert.ok(await alive(victim.pid), 'the live session with that pid is untouched');
      assert.deepEqual(
        audit.entries.map((e) => `${e.event}:${e.result}`),
        ['terminate:gone'],
      );
    } finally {
      await probe.close();
      await victim.query('ROLLBACK');
    }
  });

  it('climbs the ladder: a cancelled query fails with 57014; an idle transaction, which a cancel cannot end, is terminated at once', async () => {
    const query = await open(appUrl, 'ladder');
    const idle = await open(appUrl, 'ladder');
    await idle.query('BEGIN; SELECT 1');
    const running = query.query('SELECT pg_sleep(30)').then(
      () => undefined,
      (err: Error & { code?: string }) => err,
    );
    await sleep(300);
    const log = path.join(dir, 'ladder.jsonl');
    const started = Date.now();
    const res = await kill({
      olderThan: '0s',
      app: 'ladder',
      execute: true,
      grace: '500ms',
      auditLog: log,
      maxShare: '100%',
    });
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const err = await running;
    assert.equal((err as { code?: string })?.code, '57014', 'the query was cancelled');
    assert.ok(await alive(query.pid), 'the cancel was enough: the session lives on');
    await waitFor('the idle transaction to be terminated', async () => !(await alive(idle.pid)));
    const byPid = (pid: number) =>
      audit(log)
        .filter((e) => e.pid === pid)
        .map((e) => `${e.event}:${e.result}`);
    assert.deepEqual(byPid(query.pid), ['cancel:ok', 'terminate:no_longer_guilty']);
    assert.deepEqual(byPid(idle.pid), ['terminate:ok'], 'no cancel: it would do nothing');
    const idleEnd = audit(log).find((e) => e.pid === idle.pid);
    const queryCancel = audit(log).find((e) => e.pid === query.pid && e.event === 'cancel');
    assert.ok(
      Date.parse(idleEnd?.at ?? '') <= Date.parse(queryCancel?.at ?? ''),
      'the idle transaction ends before the grace period the query gets',
    );
    assert.ok(Date.now() - started >= 500, "the query's terminate step still waited for the grace period");
  });

  it('holds its limits: per run, share of clients, and per hour from the audit log', async () => {
    const app = uniqueName('limits');
    const sessions = await Promise.all(Array.from({ length: 6 }, () => open(appUrl, app)));
    for (const s of sessions) await s.query('BEGIN; SELECT 1');
    const log = path.join(dir, 'limits.jsonl');
    const first = await kill({
      olderThan: '0s',
      app,
      execute: true,
      maxSessions: '2',
      maxShare: '100%',
      maxPerHour: '3',
      auditLog: log,
    });
    assert.equal(first.code, 0, first.stderr);
    const acted = audit(log).filter((e) => e.event === 'terminate' && e.result === 'ok');
    assert.equal(acted.length, 2, 'at most 2 per run');
    assert.equal(audit(log).filter((e) => e.event === 'refuse' && /per run/.test(e.reason)).length, 4);
    const second = await kill({
      olderThan: '0s',
      app,
      execute: true,
      maxSessions: '5',
      maxShare: '100%',
      maxPerHour: '3',
      auditLog: log,
    });
    assert.equal(second.code, 0);
    const ended = audit(log).filter((e) => e.event === 'terminate' && e.result === 'ok');
    assert.equal(ended.length, 3, 'the hourly budget of 3 allowed one more');
    const share = await kill({
      olderThan: '0s',
      app,
      maxShare: '10%',
      json: true,
      auditLog: path.join(dir, 'share.jsonl'),
    });
    const plan = JSON.parse(share.stdout);
    assert.ok(plan.actions.length <= Math.floor(0.1 * (sessions.length + 2)));
    for (const s of sessions) await s.query('ROLLBACK').catch(() => undefined);
  });

  it('gives one-line errors for bad flags', async () => {
    for (const [flags, expect] of [
      [{ state: 'sleeping' }, /--state takes active or idle-in-transaction/],
      [{ olderThan: 'ages' }, /--older-than takes a duration/],
      [{ maxSessions: '-1' }, /--max-sessions takes a whole number/],
    ] as const) {
      const res = await kill(flags as KillFlags);
      assert.equal(res.code, 3);
      assert.match(res.stderr, expect);
    }
  });
});
