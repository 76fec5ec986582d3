// The agent's SQLite store: schema and migrations, incidents and their records, downsampled samples,
// and the remedy audit sink. No server, no sleeping: times are given explicitly or come from a FakeClock.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { FakeClock } from '@pgwarden/testkit';
import { type AuditEntry, MemoryAuditLog } from '../remedy/audit.js';
import { executePlan } from '../remedy/executor.js';
import { DEFAULT_POLICY, planRemedies } from '../remedy/planner.js';
import { active, makeSnapshot, session } from '../snapshot.fixture.js';
import { DEFAULT_ESCALATION_POLICY } from './incidents.js';
import { SCHEMA_VERSION, Store, sampleFromObservation } from './store.js';
import type { Incident } from './types.js';

const T0 = Date.UTC(2026, 0, 16, 10, 0, 0);
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const dirs: string[] = [];
function tempFile(name = 'pgwarden.db'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-store-'));
  dirs.push(dir);
  return path.join(dir, name);
}
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function incident(fields: Partial<Incident> = {}): Incident {
  return {
    id: 'i1',
    ruleId: 'connections.usage',
    database: 'main',
    severity: 'warning',
    state: 'open',
    title: 'Connection usage 92% (89/97)',
    openedAt: T0,
    acknowledgedAt: null,
    acknowledgedBy: null,
    resolvedAt: null,
    resolvedBy: null,
    escalationLevel: 0,
    policy: DEFAULT_ESCALATION_POLICY.map((l) => ({ ...l, notifiers: [...l.notifiers] })),
    clearSince: null,
    ...fields,
  };
}

describe('Store: schema', () => {
  it('opens a file in WAL mode with synchronous NORMAL, records the schema version, reopens without migrating again', () => {
    const file = tempFile();
    const clock = new FakeClock({ start: T0 });
    const store = new Store(file, { clock });
    assert.equal(store.schemaVersion, SCHEMA_VERSION);
    store.insertIncident(incident());
    store.close();
    assert.equal(statSync(file).mode & 0o777, 0o600, 'snapshots hold query texts: owner only');

    const raw = new Database(file, { readonly: true });
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    const versions = raw.prepare('SELECT version, applied_at FROM schema_version').all();
    assert.deepEqual(versions, [{ version: SCHEMA_VERSION, applied_at: T0 }]);
    raw.close();

    clock.advance(HOUR);
    const again = new Store(file, { clock });
    assert.equal(again.incident('i1')?.title, 'Connection usage 92% (89/97)');
    again.close();
    const raw2 = new Database(file, { readonly: true });
    assert.equal((raw2.prepare('SELECT count(*) AS n FROM schema_version').get() as { n: number }).n, 1);
    raw2.close();
  });

  it('synchronous is NORMAL, FULL only while a durable transaction commits', () => {
    const store = new Store(tempFile());
    assert.deepEqual(store.settings(), { journalMode: 'wal', synchronous: 'NORMAL' });
    store.insertIncident(incident());
    let inside: string | undefined;
    store.transaction(
      () => {
        inside = store.settings().synchronous;
        store.updateIncident({
          ...incident(),
          state: 'acknowledged',
          acknowledgedAt: T0,
          acknowledgedBy: 'ana',
        });
      },
      { durable: true },
    );
    assert.equal(inside, 'FULL');
    assert.equal(store.settings().synchronous, 'NORMAL');
    assert.throws(
      () =>
        store.transaction(
          () => {
            store.updateIncident({ ...incident(), state: 'resolved', resolvedAt: T0, resolvedBy: 'x' });
            throw new Error('boom');
          },
          { durable: true },
        ),
      /boom/,
    );
    assert.equal(store.incident('i1')?.state, 'acknowledged', 'rolled back');
    assert.equal(store.settings().synchronous, 'NORMAL', 'restored after a failed transaction');
    store.close();
  });

  it('refuses a file written by a newer schema, naming both versions', () => {
    const file = tempFile();
    new Store(file).close();
    const raw = new Database(file);
    raw
      .prepare('INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)')
      .run(SCHEMA_VERSION + 1, 'from the future', T0);
    raw.close();
    assert.throws(() => new Store(file), new RegExp(`schema version ${SCHEMA_VERSION + 1}.*newer`));
  });
});

describe('Store: incidents', () => {
  it('round-trips every field, policy as JSON, optional summary and peak', () => {
    const store = new Store(':memory:');
    const full = incident({
      severity: 'critical',
      state: 'acknowledged',
      acknowledgedAt: T0 + MINUTE,
      acknowledgedBy: 'ana',
      escalationLevel: 2,
      clearSince: T0 + 2 * MINUTE,
      summary: 'usage 99%',
      peakValue: 0.99,
    });
    store.insertIncident(full);
    assert.deepEqual(store.incident('i1'), full);
    const bare = incident({ id: 'i2', database: 'other' });
    store.insertIncident(bare);
    assert.deepEqual(store.incident('i2'), bare, 'absent optional fields stay absent');
    assert.equal(store.incident('nope'), undefined);
    store.close();
  });

  it('openIncidentFor finds only live incidents; one live incident per rule and database', () => {
    const store = new Store(':memory:');
    store.insertIncident(incident({ id: 'a', state: 'resolved', resolvedAt: T0, resolvedBy: 'x' }));
    assert.equal(store.openIncidentFor('connections.usage', 'main'), undefined);
    store.insertIncident(incident({ id: 'b', state: 'acknowledged' }));
    assert.equal(store.openIncidentFor('connections.usage', 'main')?.id, 'b');
    assert.equal(store.openIncidentFor('connections.usage', 'other'), undefined);
    assert.equal(store.openIncidentFor('sessions.long_running', 'main'), undefined);
    assert.throws(() => store.insertIncident(incident({ id: 'c' })), /UNIQUE/);
    store.close();
  });

  it('incidents(): newest first, filtered by state(s), limited', () => {
    const store = new Store(':memory:');
    store.insertIncident(
      incident({ id: 'a', openedAt: T0, state: 'resolved', resolvedAt: T0, resolvedBy: 'x' }),
    );
    store.insertIncident(incident({ id: 'b', openedAt: T0 + 1, database: 'd2' }));
    store.insertIncident(incident({ id: 'c', openedAt: T0 + 2, database: 'd3', state: 'acknowledged' }));
    assert.deepEqual(
      store.incidents().map((i) => i.id),
      ['c', 'b', 'a'],
    );
    assert.deepEqual(
      store.incidents({ state: 'open' }).map((i) => i.id),
      ['b'],
    );
    assert.deepEqual(
      store.incidents({ state: ['open', 'acknowledged'] }).map((i) => i.id),
      ['c', 'b'],
    );
    assert.deepEqual(
      store.incidents({ limit: 2 }).map((i) => i.id),
      ['c', 'b'],
    );
    assert.deepEqual(
      store.incidents({ database: 'd2' }).map((i) => i.id),
      ['b'],
    );
    store.close();
  });

  it('updateIncident of an unknown id throws', () => {
    const store = new Store(':memory:');
    assert.throws(() => store.updateIncident(incident({ id: 'ghost' })), /no incident "ghost"/);
    store.close();
  });

  it('values are bound, never spliced: quotes and SQL in fields are stored as text', () => {
    const store = new Store(':memory:');
    const evil = "x'); DROP TABLE incidents; --";
    store.insertIncident(incident({ id: evil, database: evil, title: evil }));
    assert.equal(store.incident(evil)?.database, evil);
    assert.equal(store.incidents().length, 1);
    store.close();
  });

  it('incident ids are short, unique and sortable by opening time', () => {
    const store = new Store(':memory:');
    const ids: string[] = [];
    for (const at of [T0, T0, T0, T0 + 1, T0 + DAY]) {
      const id = store.nextIncidentId(at);
      store.insertIncident(incident({ id, database: `db-${ids.length}`, openedAt: at }));
      ids.push(id);
    }
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual([...ids].sort(), ids, 'lexical order is creation order');
    for (const id of ids) assert.match(id, /^[0-9a-z]{11}$/);
    store.close();
  });
});

describe('Store: timeline, notifications, snapshots', () => {
  it('keeps the timeline in order with its JSON data', () => {
    const store = new Store(':memory:');
    store.insertIncident(incident());
    store.addTimeline({ incidentId: 'i1', at: T0, kind: 'opened', text: 'Opened', data: { value: 0.92 } });
    store.addTimeline({
      incidentId: 'i1',
      at: T0 + MINUTE,
      kind: 'action',
      text: 'cancel 4242',
      data: { pid: 4242n },
    });
    store.addTimeline({ incidentId: 'i1', at: T0 + MINUTE, kind: 'note', text: 'looking' });
    assert.deepEqual(store.timeline('i1'), [
      { incidentId: 'i1', at: T0, kind: 'opened', text: 'Opened', data: { value: 0.92 } },
      { incidentId: 'i1', at: T0 + MINUTE, kind: 'action', text: 'cancel 4242', data: { pid: '4242' } },
      { incidentId: 'i1', at: T0 + MINUTE, kind: 'note', text: 'looking' },
    ]);
    assert.deepEqual(store.timeline('other'), []);
    store.close();
  });

  it('records notification attempts', () => {
    const store = new Store(':memory:');
    store.insertIncident(incident());
    store.recordNotification({
      incidentId: 'i1',
      notifier: 'database-team',
      event: 'escalated',
      level: 1,
      attempt: 1,
      at: T0 + 15 * MINUTE,
      ok: false,
      detail: 'HTTP 503',
    });
    store.recordNotification({
      incidentId: 'i1',
      notifier: 'database-team',
      event: 'escalated',
      level: 1,
      attempt: 2,
      at: T0 + 15 * MINUTE + 2 * SECOND,
      ok: true,
    });
    const records = store.notifications('i1');
    assert.equal(records.length, 2);
    assert.deepEqual(
      records.map((r) => [r.attempt, r.ok, r.detail]),
      [
        [1, false, 'HTTP 503'],
        [2, true, null],
      ],
    );
    assert.throws(
      () =>
        store.recordNotification({
          incidentId: 'ghost',
          notifier: 'x',
          event: 'opened',
          level: 0,
          attempt: 1,
          at: T0,
          ok: true,
        }),
      /FOREIGN KEY/,
    );
    store.close();
  });

  it("keeps one 'open' and one 'peak' snapshot per incident, the peak replaced", () => {
    const store = new Store(':memory:');
    store.insertIncident(incident());
    const a = makeSnapshot([active(1, 10)]);
    const b = makeSnapshot([active(1, 10), active(2, 20)]);
    const c = makeSnapshot([active(1, 10), active(2, 20), active(3, 30)]);
    store.saveSnapshot('i1', 'open', a, { at: T0, value: 0.9 });
    store.saveSnapshot('i1', 'peak', b, { at: T0 + MINUTE, value: 0.95 });
    store.saveSnapshot('i1', 'peak', c, { at: T0 + 2 * MINUTE, value: 0.99 });
    const snaps = store.snapshots('i1');
    assert.deepEqual(
      snaps.map((s) => [s.label, s.at, s.value, s.snapshot.sessions.length]),
      [
        ['open', T0, 0.9, 1],
        ['peak', T0 + 2 * MINUTE, 0.99, 3],
      ],
    );
    assert.deepEqual(snaps[0]?.snapshot, a);
    store.close();
  });
});

describe('Store: samples', () => {
  const base = { database: 'main', total: 50, usable: 97, waiting: 0 };

  it('keeps one row per database per 10 s (the busiest) and one per minute', () => {
    const store = new Store(':memory:');
    // One sample a second for two minutes; usage peaks at t=25 s.
    for (let s = 0; s < 120; s++) {
      const usage = s === 25 ? 0.99 : 0.5 + (s % 10) / 100;
      store.addSample({ ...base, at: T0 + s * SECOND, usage });
    }
    store.addSample({ ...base, database: 'other', at: T0, usage: 0.1 });
    const fine = store.samples('main', { resolution: '10s' });
    assert.equal(fine.length, 12);
    assert.ok(fine.every((s) => s.resolutionMillis === 10_000));
    // Each 10 s bucket kept its busiest sample: usage 0.59 at second 9 of the bucket, or the peak.
    assert.equal(fine[0]?.at, T0 + 9 * SECOND);
    assert.equal(fine[2]?.at, T0 + 25 * SECOND);
    assert.equal(fine[2]?.usage, 0.99);
    const coarse = store.samples('main', { resolution: '1m' });
    assert.equal(coarse.length, 2);
    assert.deepEqual(
      coarse.map((s) => [s.at, s.usage]),
      [
        [T0 + 25 * SECOND, 0.99],
        [T0 + 69 * SECOND, 0.59],
      ],
    );
    assert.equal(store.samples('other').length, 1);
    // Ties on usage go to the sample with more clients waiting.
    store.addSample({ ...base, at: T0 + 121 * SECOND, usage: 0.7, waiting: 1 });
    store.addSample({ ...base, at: T0 + 122 * SECOND, usage: 0.7, waiting: 4 });
    store.addSample({ ...base, at: T0 + 123 * SECOND, usage: 0.7, waiting: 2 });
    const last = store.samples('main', { resolution: '10s', since: T0 + 120 * SECOND });
    assert.deepEqual(
      last.map((s) => [s.at, s.waiting]),
      [[T0 + 122 * SECOND, 4]],
    );
    store.close();
  });

  it('prunes 10 s rows after 24 h and 1 min rows after 30 days; auto resolution stitches the tiers', () => {
    const store = new Store(':memory:');
    const now = T0 + 40 * DAY;
    const old = now - 31 * DAY; // gone from both tiers
    const month = now - 10 * DAY; // only the minute tier keeps it
    const recent = now - HOUR; // both tiers
    store.addSample({ ...base, at: old, usage: 0.1 });
    for (let s = 0; s < 60; s += 10)
      store.addSample({ ...base, at: month + s * SECOND, usage: 0.2 + s / 1000 });
    for (let s = 0; s < 60; s += 10)
      store.addSample({ ...base, at: recent + s * SECOND, usage: 0.3 + s / 1000 });
    // Right at the 24 h edge: a bucket that ends exactly at the horizon goes, the next one stays.
    store.addSample({ ...base, at: now - DAY - 10 * SECOND, usage: 0.4 });
    store.addSample({ ...base, at: now - DAY, usage: 0.4 });

    const deleted = store.prune(now);
    // 10 s tier: old (1), month (6), the bucket ending at the horizon (1); 1 min tier: old (1).
    assert.equal(deleted, 9);
    const fine = store.samples('main', { resolution: '10s' });
    assert.deepEqual(
      fine.map((s) => s.at),
      [now - DAY, ...[0, 10, 20, 30, 40, 50].map((s) => recent + s * SECOND)],
    );
    const coarse = store.samples('main', { resolution: '1m' });
    assert.equal(coarse.length, 4, 'month, the two minutes around the 24 h edge, recent');
    assert.ok(coarse.every((s) => s.at >= now - 30 * DAY));

    const auto = store.samples('main');
    assert.deepEqual(
      auto.map((s) => [s.resolutionMillis, s.at]),
      [[60_000, month + 50 * SECOND], [60_000, now - DAY - 10 * SECOND], ...fine.map((s) => [10_000, s.at])],
    );
    assert.equal(store.prune(now), 0, 'idempotent');
    store.close();
  });

  it('sampleFromObservation counts waiting clients, lock waiters and the longest query', () => {
    const snapshot = makeSnapshot(
      [
        active(1, 30),
        active(2, 400, { blockedBy: [1] }),
        session(3),
        session(4, { state: 'idle in transaction' }),
      ],
      {
        pgbouncer: {
          pools: [
            {
              database: 'main',
              user: 'app',
              clActive: 4,
              clWaiting: 3,
              svActive: 4,
              svIdle: 0,
              svUsed: 0,
              maxWaitSeconds: 2,
              poolMode: 'transaction',
            },
          ],
          stats: {},
          servers: [],
          error: null,
        },
      },
    );
    const sample = sampleFromObservation({ database: 'main', at: T0, snapshot });
    assert.deepEqual(sample, {
      database: 'main',
      at: T0,
      usage: 4 / 97,
      total: 4,
      usable: 97,
      waiting: 3,
      active: 2,
      idle: 1,
      idleInTransaction: 1,
      blocked: 1,
      longestQuerySeconds: 400,
    });
    assert.equal(sampleFromObservation({ database: 'main', at: T0 }), null);
  });
});

describe('Store: the remedy AuditSink', () => {
  it('the executor writes to the store; entries and actionsSince match the in-memory log', async () => {
    const store = new Store(':memory:');
    const memory = new MemoryAuditLog();
    const both = {
      write(entry: AuditEntry) {
        store.write(entry);
        memory.write(entry);
      },
      actionsSince: (since: number) => store.actionsSince(since),
    };
    const idle = Array.from({ length: 10 }, (_, i) => session(300 + i));
    const snapshot = makeSnapshot([
      active(201, 900, { query: "SELECT * FROM vitals WHERE patient = 'Jane Doe'" }),
      active(202, 1200),
      active(203, 1500, { superuser: true, user: 'postgres' }),
      ...idle,
    ]);
    const plan = planRemedies(snapshot, { olderThanSeconds: 600 }, DEFAULT_POLICY);
    assert.equal(plan.actions.length, 2);
    assert.equal(plan.refusals.length, 1);
    let now = T0;
    // Oldest first: pid 202's cancel fails (permission), 201 is cancelled, then terminated after the grace.
    const report = await executePlan(
      async (text, values) => {
        if (values[0] === 202) throw new Error('permission denied to cancel');
        return { rows: [{ signalled: text.includes('pg_') }] };
      },
      plan,
      {
        policy: DEFAULT_POLICY,
        audit: both,
        serverMajor: 18,
        database: 'main',
        sleep: async (ms) => {
          now += ms;
        },
        now: () => new Date(now),
      },
    );
    assert.equal(report.outcomes.length, 2);
    const entries = store.auditEntries();
    assert.deepEqual(entries, memory.entries, 'every field round-trips, in order');
    assert.deepEqual(
      entries.map((e) => [e.event, e.pid, e.result]),
      [
        ['refuse', 203, 'refused'],
        ['cancel', 202, 'failed'],
        ['cancel', 201, 'ok'],
        ['terminate', 201, 'ok'],
      ],
    );
    assert.ok(!JSON.stringify(entries).includes('Jane Doe'), 'fingerprints, never query text');
    // Sessions signalled: 201 was cancelled and terminated, and counts once.
    assert.equal(store.actionsSince(T0 - HOUR), 1);
    assert.equal(store.actionsSince(T0 - HOUR), memory.actionsSince(T0 - HOUR));
    assert.equal(store.actionsSince(T0 + 1), 1, 'its terminate after the grace period is still an action');
    assert.equal(store.actionsSince(T0 + 1), memory.actionsSince(T0 + 1));
    assert.equal(store.actionsSince(now + 1), 0);
    // Dry runs and refusals do not count against the hourly limit.
    store.write({ ...(entries[2] as AuditEntry), pid: 9, dryRun: true, result: 'dry_run' });
    assert.equal(store.actionsSince(T0 - HOUR), 1);
    assert.equal(store.auditEntries({ since: T0 + 1 }).length, 1, 'the terminate, after the grace period');
    store.close();
  });

  it('survives reopening (the hourly limit holds across a restart)', () => {
    const file = tempFile();
    const store = new Store(file);
    const entry: AuditEntry = {
      at: new Date(T0).toISOString(),
      event: 'cancel',
      pid: 42,
      backendStart: '2026-01-16T08:00:00.000042Z',
      user: 'app',
      application: 'web',
      queryFingerprint: 'abcdef0123456789',
      rule: 'long_running',
      reason: 'query running for 15 min',
      result: 'ok',
      dryRun: false,
    };
    store.write(entry);
    store.close();
    const reopened = new Store(file);
    assert.equal(reopened.actionsSince(T0 - HOUR), 1);
    assert.deepEqual(reopened.auditEntries(), [entry]);
    reopened.close();
  });
});
