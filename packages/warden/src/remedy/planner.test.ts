// The planner's safety rules, over generated session sets (fast-check): it never selects a protected
// session and never exceeds its limits, whatever the sessions and the request.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { makeSnapshot, session } from '../snapshot.fixture.js';
import type { Session, SessionState, Snapshot } from '../snapshot.js';
import {
  DEFAULT_POLICY,
  type RemedyPolicy,
  type RemedyRequest,
  planRemedies,
  protection,
} from './planner.js';

const STATES: SessionState[] = [
  'active',
  'idle',
  'idle in transaction',
  'idle in transaction (aborted)',
  'unknown',
];
const USERS = ['app', 'report', 'admin', 'replicator'];
const APPS = ['vitals-api', 'report-job', 'pgwarden', 'psql', 'migrations'];
const TYPES = ['client backend', 'client backend', 'client backend', 'autovacuum worker', 'walsender'];

interface RawSession {
  state: SessionState;
  user: string;
  application: string;
  backendType: string;
  superuser: boolean;
  age: number;
  blockedByPrevious: boolean;
}

const sessionArb: fc.Arbitrary<RawSession> = fc.record({
  state: fc.constantFrom(...STATES),
  user: fc.constantFrom(...USERS),
  application: fc.constantFrom(...APPS),
  backendType: fc.constantFrom(...TYPES),
  superuser: fc.boolean(),
  age: fc.integer({ min: 0, max: 7200 }),
  blockedByPrevious: fc.boolean(),
});

function build(raw: RawSession[]): Snapshot {
  const sessions: Session[] = raw.map((r, i) => {
    const pid = 1000 + i;
    const ts = `2026-11-26T10:00:00.${String(pid).padStart(6, '0')}Z`;
    const active = r.state === 'active';
    const inTx = r.state.startsWith('idle in transaction');
    return session(pid, {
      backendStart: ts,
      backendType: r.backendType,
      user: r.user,
      application: r.application,
      state: r.state,
      xactStart: active || inTx ? ts : null,
      queryStart: ts,
      stateChange: ts,
      xactAgeSeconds: active || inTx ? r.age : null,
      queryAgeSeconds: active ? r.age : null,
      stateAgeSeconds: r.age,
      blockedBy: r.blockedByPrevious && i > 0 ? [1000 + i - 1] : [],
      superuser: r.superuser,
    });
  });
  const clients = sessions.filter((s) => s.backendType === 'client backend').length;
  return makeSnapshot(sessions, {
    connections: { total: clients, byState: {}, usable: 97, usage: clients / 97, otherBackends: 0 },
  });
}

const policyArb: fc.Arbitrary<RemedyPolicy> = fc.record({
  protectedUsers: fc.subarray(USERS),
  protectedApplications: fc.subarray(APPS),
  allowSuperusers: fc.boolean(),
  maxSessionsPerRun: fc.integer({ min: 0, max: 20 }),
  maxShareOfClients: fc.double({ min: 0, max: 1, noNaN: true }),
  maxActionsPerHour: fc.integer({ min: 0, max: 30 }),
  graceMillis: fc.constant(1000),
});

const requestArb: fc.Arbitrary<RemedyRequest> = fc.record(
  {
    olderThanSeconds: fc.integer({ min: 0, max: 3600 }),
    state: fc.constantFrom('active' as const, 'idle-in-transaction' as const),
    user: fc.constantFrom(...USERS),
    rootBlockers: fc.boolean(),
    actionsInLastHour: fc.integer({ min: 0, max: 40 }),
  },
  { requiredKeys: ['olderThanSeconds'] },
);

describe('remedy planner', () => {
  it('never selects a protected session and never exceeds its limits', () => {
    fc.assert(
      fc.property(
        fc.array(sessionArb, { maxLength: 60 }),
        policyArb,
        requestArb,
        fc.integer({ min: 900, max: 1100 }),
        (raw, policy, request, ownPid) => {
          const snapshot = build(raw);
          const plan = planRemedies(snapshot, request, policy, ownPid);
          const byPid = new Map(snapshot.sessions.map((s) => [s.pid, s]));
          for (const action of plan.actions) {
            const s = byPid.get(action.pid) as Session;
            assert.equal(
              protection(s, policy, ownPid),
              undefined,
              `selected a protected session ${JSON.stringify(s)}`,
            );
            assert.equal(s.backendType, 'client backend');
            assert.notEqual(s.application, 'pgwarden');
            assert.notEqual(s.pid, ownPid);
            if (s.superuser) assert.ok(policy.allowSuperusers);
            assert.ok(!policy.protectedUsers.includes(s.user ?? ''));
            assert.ok(!policy.protectedApplications.includes(s.application));
          }
          assert.ok(plan.actions.length <= policy.maxSessionsPerRun);
          assert.ok(plan.actions.length <= Math.floor(policy.maxShareOfClients * snapshot.connections.total));
          assert.ok(
            plan.actions.length <= Math.max(0, policy.maxActionsPerHour - (request.actionsInLastHour ?? 0)),
          );
          assert.equal(
            new Set(plan.actions.map((a) => a.pid)).size,
            plan.actions.length,
            'each session once',
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it('acts on the oldest matching sessions first and refuses the rest at the limit', () => {
    const raw = [30, 900, 60, 1800].map((age) => ({
      state: 'idle in transaction' as SessionState,
      user: 'app',
      application: 'vitals-api',
      backendType: 'client backend',
      superuser: false,
      age,
      blockedByPrevious: false,
    }));
    const plan = planRemedies(
      build(raw),
      { olderThanSeconds: 45 },
      { ...DEFAULT_POLICY, maxSessionsPerRun: 2, maxShareOfClients: 1 },
    );
    assert.deepEqual(
      plan.actions.map((a) => a.ageSeconds),
      [1800, 900],
    );
    assert.deepEqual(
      plan.refusals.map((r) => r.reason),
      ['at most 2 sessions per run'],
    );
  });

  it('applies a threshold per rule: X for active queries, Y for idle transactions, Z for root blockers', () => {
    const raw: RawSession[] = [
      {
        state: 'active',
        user: 'app',
        application: 'a',
        backendType: 'client backend',
        superuser: false,
        age: 100,
        blockedByPrevious: false,
      },
      {
        state: 'idle in transaction',
        user: 'app',
        application: 'a',
        backendType: 'client backend',
        superuser: false,
        age: 100,
        blockedByPrevious: false,
      },
    ];
    const policy = { ...DEFAULT_POLICY, maxShareOfClients: 1 };
    const rules = (request: RemedyRequest) =>
      planRemedies(build(raw), request, policy).actions.map((a) => a.rule);
    assert.deepEqual(rules({ olderThanSeconds: 50 }), ['long_running', 'idle_in_transaction']);
    assert.deepEqual(rules({ olderThanSeconds: 50, activeOlderThanSeconds: 600 }), ['idle_in_transaction']);
    assert.deepEqual(rules({ olderThanSeconds: 50, idleInTransactionOlderThanSeconds: 600 }), [
      'long_running',
    ]);
  });
});
