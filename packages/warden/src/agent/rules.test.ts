// Alert rules: pending windows, hysteresis, resolution, per-database state and escalation, driven by a
// FakeClock one observation per second (nothing sleeps).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PoolInspection } from '@pgwarden/pool';
import { FakeClock } from '@pgwarden/testkit';
import { diagnose } from '../diagnose/index.js';
import {
  active,
  bouncerServer,
  criticalServer,
  idleInTransaction,
  makeSnapshot,
  session,
} from '../snapshot.fixture.js';
import type { Snapshot } from '../snapshot.js';
import {
  type AlertRule,
  DEFAULT_RULE_OPTIONS,
  type Measurement,
  RuleEngine,
  defaultRules,
  resolveRuleOptions,
} from './rules.js';
import type { AlertEvent, Observation } from './types.js';

const START = 1_700_000_000_000;

/** An engine on a fake clock; `run` feeds one observation per second and records events by second. */
function harness(rules: AlertRule[] = defaultRules()) {
  const clock = new FakeClock({ start: START });
  const engine = new RuleEngine(rules, clock);
  const events: (AlertEvent & { t: number })[] = [];
  const t = () => (clock.now() - START) / 1000;
  return {
    clock,
    engine,
    events,
    t,
    /** Observes `seconds` times, one second apart (observe, then advance). */
    run(seconds: number, make: (second: number) => Observation | Observation[]) {
      for (let i = 0; i < seconds; i++) {
        const made = make(i);
        for (const obs of Array.isArray(made) ? made : [made]) {
          for (const e of engine.observe({ ...obs, at: clock.now() })) events.push({ ...e, t: t() });
        }
        clock.advance(1000);
      }
    },
    of(ruleId: string, database?: string) {
      return events
        .filter((e) => e.ruleId === ruleId && (database === undefined || e.database === database))
        .map((e) => ({ type: e.type, t: e.t, severity: e.severity, value: e.value }));
    },
  };
}

/** `n` idle client sessions on a server with exactly 100 usable slots: usage is n%. */
function usage(n: number): Snapshot {
  return makeSnapshot(
    Array.from({ length: n }, (_, i) => session(100 + i)),
    { server: { usableConnections: 100, maxConnections: 103 } },
  );
}

function observation(snapshot: Snapshot, database = 'vitalstream'): Observation {
  return { database, at: 0, snapshot, diagnosis: diagnose(snapshot) };
}

const usageObs = (n: number, database = 'vitalstream') => observation(usage(n), database);

function unreachable(database = 'vitalstream'): Observation {
  return {
    database,
    at: 0,
    unreachable: { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 10.0.0.2:5432' },
  };
}

describe('RuleEngine with the default connection usage rules', () => {
  it('fires only after `for` of continuous activity (30 s for the 75% warning)', () => {
    const h = harness();
    h.run(29, () => usageObs(80));
    assert.deepEqual(h.events.slice(), [], 'nothing before 30 s');
    assert.equal(h.engine.states()[0]?.status, 'pending');
    h.run(1, () => usageObs(80)); // the observation at t = 29 s: still pending
    assert.deepEqual(h.events.slice(), []);
    h.run(1, () => usageObs(80)); // t = 30 s since the first active observation
    assert.deepEqual(h.of('connections.usage'), [{ type: 'firing', t: 30, severity: 'warning', value: 0.8 }]);
    const fired = h.events[0]!;
    assert.equal(fired.database, 'vitalstream');
    assert.equal(fired.at, START + 30_000);
    assert.match(fired.summary, /80 of 100 usable connections in use \(80%, at or above 75%\)/);
    assert.deepEqual(h.of('connections.usage.critical'), []);
    h.run(600, () => usageObs(80));
    assert.equal(h.events.length, 1, 'firing is not re-emitted while it lasts');
  });

  it('a value hovering at 74/76% around the 75% threshold never fires (pending needs continuous activity)', () => {
    const h = harness();
    h.run(300, (i) => usageObs(i % 2 === 0 ? 74 : 76));
    const firing = h.events.filter((e) => e.type === 'firing');
    assert.ok(firing.length <= 1);
    assert.deepEqual(h.events.slice(), []);
  });

  it('random hovering between 70% and 80% produces at most one firing and no resolved', () => {
    const h = harness();
    let seed = 42;
    const next = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    h.run(300, () => usageObs(71 + Math.floor(next() * 9))); // 71..79
    assert.ok(h.events.filter((e) => e.type === 'firing').length <= 1);
    assert.deepEqual(
      h.events.filter((e) => e.type === 'resolved'),
      [],
    );
  });

  it('once firing, hovering 74/76% for 5 minutes keeps it firing: no resolved until < 70% for 60 s', () => {
    const h = harness();
    h.run(31, () => usageObs(80));
    assert.deepEqual(h.of('connections.usage'), [{ type: 'firing', t: 30, severity: 'warning', value: 0.8 }]);
    h.run(300, (i) => usageObs(i % 2 === 0 ? 74 : 76));
    assert.equal(h.events.length, 1, 'the hysteresis band neither resolves nor re-fires');
    // Dipping below 70% and back into the band restarts the clear window.
    h.run(300, (i) => usageObs(i % 2 === 0 ? 69 : 71));
    assert.equal(h.events.length, 1, '69/71 never stays below 70% for 60 s');
    const clearStart = h.t();
    h.run(60, () => usageObs(65)); // clear for 59 s
    assert.equal(h.events.length, 1);
    h.run(1, () => usageObs(65)); // 60 s below 70%
    assert.deepEqual(h.of('connections.usage'), [
      { type: 'firing', t: 30, severity: 'warning', value: 0.8 },
      { type: 'resolved', t: clearStart + 60, severity: 'warning', value: 0.65 },
    ]);
  });

  it('a spike shorter than `for` produces nothing', () => {
    const h = harness();
    h.run(60, () => usageObs(50));
    h.run(1, () => usageObs(95)); // 1 s: shorter than 2 s (critical) and 30 s (warning)
    h.run(600, () => usageObs(50));
    assert.deepEqual(h.events.slice(), []);
    assert.deepEqual(h.engine.states(), [], 'back to inactive');
  });

  it('resolves after clearFor (60 s below 70%), not before', () => {
    const h = harness();
    h.run(31, () => usageObs(80)); // fires at t = 30
    h.run(60, () => usageObs(50)); // clear from t = 31 to t = 90: 59 s
    assert.deepEqual(
      h.of('connections.usage').map((e) => e.type),
      ['firing'],
    );
    h.run(1, () => usageObs(50)); // t = 91: 60 s
    assert.deepEqual(h.of('connections.usage'), [
      { type: 'firing', t: 30, severity: 'warning', value: 0.8 },
      { type: 'resolved', t: 91, severity: 'warning', value: 0.5 },
    ]);
    assert.deepEqual(h.engine.states(), []);
    // And it can fire again afterwards, with a fresh `for`.
    h.run(31, () => usageObs(80));
    assert.deepEqual(
      h.of('connections.usage').map((e) => [e.type, e.t]),
      [
        ['firing', 30],
        ['resolved', 91],
        ['firing', 122],
      ],
    );
  });

  it('the critical usage rule fires after 2 s at >= 90% and clears below 85%', () => {
    const h = harness();
    h.run(31, () => usageObs(95));
    assert.deepEqual(h.of('connections.usage.critical'), [
      { type: 'firing', t: 2, severity: 'critical', value: 0.95 },
    ]);
    assert.deepEqual(h.of('connections.usage'), [
      { type: 'firing', t: 30, severity: 'warning', value: 0.95 },
    ]);
    h.run(300, () => usageObs(87)); // band of the critical rule, active zone of the warning rule
    assert.equal(h.events.length, 2);
    h.run(61, () => usageObs(80)); // below 85%: critical resolves after 60 s; warning keeps firing
    assert.deepEqual(
      h.events.map((e) => [e.ruleId, e.type, e.t]),
      [
        ['connections.usage.critical', 'firing', 2],
        ['connections.usage', 'firing', 30],
        ['connections.usage.critical', 'resolved', 391],
      ],
    );
  });

  it('an observation without data does not count as clear, and breaks a clear window', () => {
    const h = harness();
    h.run(31, () => usageObs(80)); // fires at 30
    h.run(120, () => unreachable()); // 2 minutes without a snapshot
    assert.deepEqual(
      h.of('connections.usage').map((e) => e.type),
      ['firing'],
      'usage does not resolve while there is no data',
    );
    h.run(30, () => usageObs(50)); // clearing for 29 s
    h.run(1, () => unreachable()); // gap: back to firing
    h.run(60, () => usageObs(50)); // 59 s clear since the gap
    assert.deepEqual(
      h.of('connections.usage').map((e) => e.type),
      ['firing'],
      'the clear window restarted after the gap',
    );
    h.run(1, () => usageObs(50));
    assert.deepEqual(
      h.of('connections.usage').map((e) => e.type),
      ['firing', 'resolved'],
    );
  });
});

describe('server.unreachable', () => {
  it('fires after 5 s of unreachable observations and resolves after 10 s of reachable ones', () => {
    const h = harness();
    h.run(10, () => usageObs(10));
    h.run(5, () => unreachable()); // t = 10..14: pending
    assert.deepEqual(h.events.slice(), []);
    h.run(1, () => unreachable()); // t = 15: 5 s since the first unreachable observation
    assert.deepEqual(h.of('server.unreachable'), [{ type: 'firing', t: 15, severity: 'critical', value: 1 }]);
    assert.match(h.events[0]!.summary, /Server unreachable \(ECONNREFUSED\)/);
    h.run(10, () => usageObs(10)); // reachable from t = 16 to t = 25: 9 s
    assert.equal(h.events.length, 1);
    h.run(1, () => usageObs(10)); // t = 26: 10 s
    assert.deepEqual(h.of('server.unreachable'), [
      { type: 'firing', t: 15, severity: 'critical', value: 1 },
      { type: 'resolved', t: 26, severity: 'critical', value: 0 },
    ]);
    assert.deepEqual(
      h.events.map((e) => e.ruleId),
      ['server.unreachable', 'server.unreachable'],
      'no other rule reacted to the outage',
    );
  });

  it('a short outage (< 5 s) produces nothing; 53300 is named in the summary', () => {
    const h = harness();
    h.run(4, () => unreachable());
    h.run(60, () => usageObs(10));
    assert.deepEqual(h.events.slice(), []);
    h.run(6, () => ({
      database: 'vitalstream',
      at: 0,
      unreachable: { code: '53300', message: 'sorry, too many clients already' },
    }));
    assert.equal(h.events.length, 1);
    assert.match(h.events[0]!.summary, /too many clients \(53300\)/);
  });
});

function poolInspection(name: string, waiting: number, checkoutPids: number[] = []): PoolInspection {
  return {
    pool: name,
    at: new Date(START).toISOString(),
    settings: {
      min: 5,
      max: 10,
      maxOverflow: 2,
      connectionTimeoutMillis: 30_000,
      idleTimeoutMillis: 10_000,
      maxLifetimeSeconds: 3600,
      maxUses: null,
      maxWaiting: null,
      leakDetectionThresholdMillis: 60_000,
      captureSites: 'always',
      pipeline: false,
      host: 'db:5432',
      database: 'vitalstream',
      user: 'app',
      applicationName: 'vitals-api',
    },
    counts: { total: 12, active: 12, idle: 0, waiting, connecting: 0, expired: 0 },
    usage: 1,
    breaker: 'closed',
    ending: false,
    waiters: Array.from({ length: waiting }, (_, i) => ({ waitedMillis: 1000 * (i + 1), site: 'api.ts:10' })),
    checkouts: checkoutPids.map((pid, i) => ({
      pid,
      state: 'busy',
      site: `src/vitals.ts:${40 + i}`,
      heldMillis: 90_000 - i * 1000,
      lastQuery: 'SELECT pg_sleep(600)',
      inFlight: 1,
      leakSuspected: i === 0,
    })),
    connections: [],
    stats: {
      acquired: 100,
      created: 12,
      connectFailures: 0,
      timeouts: 0,
      queueFull: 0,
      leaks: 1,
      leaksReclaimed: 0,
      closed: {},
      errors: {},
      waitTimeP95Seconds: 1.5,
      queryDurationP95Seconds: 0.2,
    },
    recentErrors: [],
  };
}

describe('app_pool.waiting', () => {
  const pools = (waiting: number): Observation => ({
    database: 'vitalstream',
    at: 0,
    appPools: [
      {
        source: 'http://api-1:9464/pool',
        pools: [poolInspection('primary', waiting, [701, 702]), poolInspection('replica', 0)],
      },
      { source: 'http://api-2:9464/pool', pools: [poolInspection('primary', 0, [801])] },
    ],
  });

  it('fires after 10 s of waiting callers, naming the pool and the pids holding it; resolves after 30 s', () => {
    const h = harness();
    h.run(3, () => pools(2)); // a blip
    h.run(20, () => pools(0));
    assert.deepEqual(h.events.slice(), []);
    h.run(11, () => pools(3));
    assert.deepEqual(h.of('app_pool.waiting'), [{ type: 'firing', t: 33, severity: 'warning', value: 3 }]);
    const fired = h.events[0]!;
    assert.match(fired.summary, /3 callers waiting for a connection in application pool primary/);
    assert.deepEqual(fired.pids, [701, 702]);
    const evidence = fired.evidence as {
      pools: { source: string; waiting: number; capacity: number; checkouts: unknown[] }[];
    };
    assert.equal(evidence.pools.length, 1);
    assert.equal(evidence.pools[0]!.source, 'http://api-1:9464/pool');
    assert.equal(evidence.pools[0]!.capacity, 12);
    assert.equal(evidence.pools[0]!.checkouts.length, 2);
    h.run(30, () => pools(0)); // 29 s clear
    assert.equal(h.events.length, 1);
    h.run(1, () => pools(0));
    assert.deepEqual(
      h.of('app_pool.waiting').map((e) => [e.type, e.t, e.value]),
      [
        ['firing', 33, 3],
        ['resolved', 64, 0],
      ],
    );
  });

  it('has no data (does not clear) when no application pool was read', () => {
    const h = harness();
    h.run(11, () => pools(1));
    assert.equal(h.events.length, 1);
    h.run(120, () => ({ database: 'vitalstream', at: 0, appPools: [] }));
    h.run(120, () => ({ database: 'vitalstream', at: 0 }));
    assert.equal(h.events.length, 1);
    assert.equal(h.engine.states()[0]?.status, 'firing');
  });
});

describe('per-database state', () => {
  it('each database has its own state machine', () => {
    const h = harness();
    // a at 80% from t = 0; b at 50% until t = 20, then 80%.
    h.run(100, (i) => [usageObs(80, 'a'), usageObs(i < 20 ? 50 : 80, 'b')]);
    assert.deepEqual(h.of('connections.usage', 'a'), [
      { type: 'firing', t: 30, severity: 'warning', value: 0.8 },
    ]);
    assert.deepEqual(h.of('connections.usage', 'b'), [
      { type: 'firing', t: 50, severity: 'warning', value: 0.8 },
    ]);
    // a recovers, b stays high; b going unreachable does not affect a.
    h.run(61, (i) => [usageObs(40, 'a'), i < 30 ? usageObs(80, 'b') : unreachable('b')]);
    assert.deepEqual(
      h.of('connections.usage', 'a').map((e) => [e.type, e.t]),
      [
        ['firing', 30],
        ['resolved', 160],
      ],
    );
    assert.deepEqual(
      h.of('connections.usage', 'b').map((e) => e.type),
      ['firing'],
    );
    assert.deepEqual(
      h.events.filter((e) => e.ruleId === 'server.unreachable').map((e) => [e.database, e.type, e.t]),
      [['b', 'firing', 135]],
    );
    assert.deepEqual(
      h.engine
        .states('b')
        .map((s) => [s.ruleId, s.status])
        .sort(),
      [
        ['connections.usage', 'firing'],
        ['server.unreachable', 'firing'],
      ],
    );
    assert.deepEqual(h.engine.states('a'), []);
    h.engine.forget('b');
    assert.deepEqual(h.engine.states(), []);
  });
});

describe('rules that follow diagnosis findings', () => {
  const stuck = (xactAge: number, n = 3) =>
    observation(
      makeSnapshot([
        session(1),
        active(2, 0.1),
        ...Array.from({ length: n }, (_, i) => idleInTransaction(300 + i, xactAge - i)),
      ]),
    );
  const quiet = () => observation(makeSnapshot([session(1), active(2, 0.1)]));

  it('severity escalation re-emits firing with the higher severity; resolved carries the highest', () => {
    const h = harness();
    h.run(31, () => stuck(120)); // warning: 3 sessions idle in transaction for ~2 minutes
    assert.deepEqual(h.of('sessions.idle_in_transaction'), [
      { type: 'firing', t: 30, severity: 'warning', value: 3 },
    ]);
    assert.deepEqual(h.events[0]!.pids, [300, 301, 302]);
    h.run(10, () => stuck(700)); // past terminateAfterSeconds: diagnosis says critical
    h.run(60, () => stuck(120, 2)); // warning again: no event (no de-escalation)
    assert.deepEqual(h.of('sessions.idle_in_transaction'), [
      { type: 'firing', t: 30, severity: 'warning', value: 3 },
      { type: 'firing', t: 31, severity: 'critical', value: 3 },
    ]);
    h.run(61, () => quiet());
    assert.deepEqual(h.of('sessions.idle_in_transaction').at(-1), {
      type: 'resolved',
      t: 161,
      severity: 'critical',
      value: 0,
    });
    assert.equal(h.of('sessions.idle_in_transaction').length, 3);
  });

  it('pinned severity ignores the finding: severity "warning" never escalates', () => {
    const h = harness(defaultRules({ 'sessions.idle_in_transaction': { severity: 'warning' } }));
    h.run(31, () => stuck(120));
    h.run(30, () => stuck(700));
    assert.deepEqual(
      h.of('sessions.idle_in_transaction').map((e) => e.severity),
      ['warning'],
    );
  });

  it('the exhausted server: idle in transaction, long-running and the lock chain fire with evidence', () => {
    const h = harness();
    h.run(31, () => observation(criticalServer()));
    const byRule = Object.fromEntries(h.events.map((e) => [e.ruleId, e]));
    assert.deepEqual(
      h.events.map((e) => [e.ruleId, e.t, e.severity, e.value]),
      [
        ['connections.usage.critical', 2, 'critical', 88 / 97],
        ['locks.blocking_chain', 15, 'critical', 2],
        ['connections.usage', 30, 'warning', 88 / 97],
        ['sessions.idle_in_transaction', 30, 'critical', 40],
        ['sessions.long_running', 30, 'critical', 1],
      ],
    );
    assert.deepEqual(byRule['locks.blocking_chain']!.pids, [2000, 3001, 3002]);
    assert.deepEqual(byRule['sessions.long_running']!.pids, [4001]);
    const evidence = byRule['locks.blocking_chain']!.evidence as {
      findings: { actions: { kind: string }[] }[];
    };
    assert.equal(evidence.findings[0]!.actions[0]!.kind, 'terminate');
  });

  it('pgbouncer.clients_waiting counts waiting clients and follows the finding (max wait 8.5 s: critical)', () => {
    const h = harness();
    h.run(11, () => observation(bouncerServer()));
    assert.deepEqual(h.of('pgbouncer.clients_waiting'), [
      { type: 'firing', t: 10, severity: 'critical', value: 12 },
    ]);
    assert.equal(h.events[0]!.pids?.length, 20);
    // A snapshot without a PgBouncer section has no data for the rule: it does not clear.
    h.run(120, () => usageObs(10));
    assert.equal(h.of('pgbouncer.clients_waiting').length, 1);
    const healthy = bouncerServer();
    const pools = healthy.pgbouncer!.pools.map((p) => ({ ...p, clWaiting: 0, maxWaitSeconds: 0 }));
    h.run(31, () => observation({ ...healthy, pgbouncer: { ...healthy.pgbouncer!, pools } }));
    assert.deepEqual(
      h.of('pgbouncer.clients_waiting').map((e) => [e.type, e.value]),
      [
        ['firing', 12],
        ['resolved', 0],
      ],
    );
  });

  it('diagnoses the snapshot itself when the observation carries no diagnosis', () => {
    const h = harness();
    h.run(31, () => ({ database: 'vitalstream', at: 0, snapshot: criticalServer() }));
    assert.ok(h.events.some((e) => e.ruleId === 'sessions.idle_in_transaction' && e.value === 40));
  });
});

describe('RuleEngine mechanics with a custom rule', () => {
  function custom(forMillis: number, clearForMillis: number) {
    let m: Measurement | undefined;
    const rule: AlertRule = {
      id: 'custom',
      severity: 'warning',
      forMillis,
      clearForMillis,
      measure: () => m,
    };
    return {
      rule,
      set(value: number, severity?: 'warning' | 'critical') {
        m = { value, active: value >= 10, cleared: value < 5, summary: `value ${value}`, severity };
      },
      none() {
        m = undefined;
      },
    };
  }
  const obs: Observation = { database: 'd', at: 0 };

  it('for 0 fires on the first active observation; clearFor 0 resolves on the first clear one', () => {
    const c = custom(0, 0);
    const h = harness([c.rule]);
    c.set(10);
    h.run(1, () => obs);
    c.set(7);
    h.run(5, () => obs);
    c.set(4);
    h.run(1, () => obs);
    assert.deepEqual(
      h.events.map((e) => [e.type, e.t]),
      [
        ['firing', 0],
        ['resolved', 6],
      ],
    );
  });

  it('a pending rule that drops into the band goes back to inactive silently; no data holds pending', () => {
    const c = custom(10_000, 10_000);
    const h = harness([c.rule]);
    c.set(12);
    h.run(9, () => obs);
    c.set(7); // band: not active
    h.run(1, () => obs);
    assert.deepEqual(h.engine.states(), []);
    c.set(12);
    h.run(5, () => obs); // pending since t = 10
    c.none();
    h.run(3, () => obs); // t = 15..17: no data, still pending, no firing
    assert.equal(h.engine.states()[0]?.status, 'pending');
    c.set(12);
    h.run(1, () => obs); // t = 18: only 8 s
    assert.deepEqual(h.events.slice(), []);
    h.run(2, () => obs); // t = 20: fires
    assert.deepEqual(
      h.events.map((e) => [e.type, e.t]),
      [['firing', 20]],
    );
  });

  it('escalation while clearing returns to firing and emits the higher severity', () => {
    const c = custom(0, 10_000);
    const h = harness([c.rule]);
    c.set(10, 'warning');
    h.run(1, () => obs);
    c.set(1);
    h.run(5, () => obs);
    assert.equal(h.engine.states()[0]?.status, 'clearing');
    c.set(20, 'critical');
    h.run(1, () => obs);
    c.set(20, 'warning');
    h.run(1, () => obs);
    assert.deepEqual(
      h.events.map((e) => [e.type, e.severity, e.t]),
      [
        ['firing', 'warning', 0],
        ['firing', 'critical', 6],
      ],
    );
    assert.equal(h.engine.states()[0]?.status, 'firing');
    assert.equal(h.engine.states()[0]?.severity, 'critical');
  });

  it('rejects duplicate ids and negative windows', () => {
    const clock = new FakeClock();
    const c = custom(0, 0);
    assert.throws(() => new RuleEngine([c.rule, c.rule], clock), /duplicate alert rule id "custom"/);
    assert.throws(() => new RuleEngine([{ ...c.rule, forMillis: -1 }], clock), /forMillis must be/);
  });
});

describe('defaultRules and RuleOptions', () => {
  it('has the documented defaults', () => {
    assert.deepEqual(
      defaultRules().map((r) => [r.id, r.severity, r.forMillis / 1000, r.clearForMillis / 1000]),
      [
        ['connections.usage', 'warning', 30, 60],
        ['connections.usage.critical', 'critical', 2, 60],
        ['app_pool.waiting', 'warning', 10, 30],
        ['sessions.idle_in_transaction', 'warning', 30, 60],
        ['sessions.long_running', 'warning', 30, 60],
        ['locks.blocking_chain', 'warning', 15, 30],
        ['pgbouncer.clients_waiting', 'warning', 10, 30],
        ['server.unreachable', 'critical', 5, 10],
      ],
    );
    assert.equal(DEFAULT_RULE_OPTIONS['connections.usage'].threshold, 0.75);
    assert.equal(DEFAULT_RULE_OPTIONS['connections.usage'].clearBelow, 0.7);
  });

  it('applies overrides, drops disabled rules and names bad keys', () => {
    const rules = defaultRules({
      'connections.usage': { threshold: 0.8, clearBelow: 0.75, forMillis: 120_000 },
      'server.unreachable': { enabled: false },
    });
    assert.equal(rules.find((r) => r.id === 'connections.usage')?.forMillis, 120_000);
    assert.ok(!rules.some((r) => r.id === 'server.unreachable'));
    const h = harness(rules);
    h.run(200, () => usageObs(78));
    assert.deepEqual(h.of('connections.usage'), []);
    assert.throws(
      () => resolveRuleOptions({ 'connections.usage': { clearBelow: 0.8 } }),
      /rules\.connections\.usage\.clearBelow must not exceed threshold \(0\.75\), got 0\.8/,
    );
    assert.throws(
      () => resolveRuleOptions({ 'app_pool.waiting': { forMillis: -5 } }),
      /rules\.app_pool\.waiting\.forMillis must be a number of milliseconds >= 0/,
    );
    assert.throws(() => resolveRuleOptions({ 'nope.rule': {} } as never), /rules\.nope\.rule: unknown rule/);
    // A threshold alone keeps the default band; undefined values (absent config keys) are ignored.
    const moved = resolveRuleOptions({
      'connections.usage': { threshold: 0.6, forMillis: undefined },
      'connections.usage.critical': { threshold: 0.95 },
    });
    assert.equal(moved['connections.usage'].clearBelow.toFixed(2), '0.55');
    assert.equal(moved['connections.usage'].forMillis, 30_000);
    assert.equal(moved['connections.usage.critical'].clearBelow.toFixed(2), '0.90');
    assert.throws(
      () => resolveRuleOptions({ 'server.unreachable': { threshold: 1 } } as never),
      /rules\.server\.unreachable\.threshold: unknown setting/,
    );
    assert.throws(
      () => resolveRuleOptions({ 'locks.blocking_chain': { severity: 'info' } } as never),
      /rules\.locks\.blocking_chain\.severity must be/,
    );
  });
});
