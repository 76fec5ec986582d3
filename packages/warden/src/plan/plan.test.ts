// Capacity planning, pure: the runbook's own numbers, Little's law, HikariCP's reference, when
// PgBouncer is recommended and how it is sized, that every number carries its explanation, and
// that bad input is refused with an error naming the field.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type CapacityInput,
  type CapacityPlan,
  type Figure,
  PlanInputError,
  RUNBOOK_STEP2,
  num,
  planCapacity,
} from './capacity.js';
import {
  IniValueError,
  type PgBouncerTarget,
  renderPgBouncerIni,
  renderUserlistTemplate,
} from './pgbouncer-ini.js';
import { renderPlanJson, renderPlanText } from './render.js';

const RUNBOOK: Omit<CapacityInput, 'replicas'> = {
  poolMax: RUNBOOK_STEP2.poolMax,
  maxOverflow: RUNBOOK_STEP2.maxOverflow,
  poolMin: RUNBOOK_STEP2.poolMin,
  maxConnections: RUNBOOK_STEP2.maxConnections,
};

/** Every Figure anywhere in the plan, with its path. */
function figures(value: unknown, at = 'plan'): [string, Figure][] {
  if (value === null || typeof value !== 'object') return [];
  const v = value as Record<string, unknown>;
  if (typeof v.value === 'number' && typeof v.why === 'string') return [[at, v as unknown as Figure]];
  return Object.entries(v).flatMap(([k, child]) => figures(child, `${at}.${k}`));
}

describe('planCapacity: worst case against usable slots', () => {
  const cases: {
    name: string;
    input: CapacityInput;
    worst: number;
    usable: number;
    verdict: CapacityPlan['verdict'];
    headroom: number;
    usage: number;
  }[] = [
    {
      name: "the runbook's Step 2 with 4 replicas",
      input: { ...RUNBOOK, replicas: 4 },
      worst: 280,
      usable: 197,
      verdict: 'oversubscribed',
      headroom: -83,
      usage: 142,
    },
    {
      name: "the runbook's Step 2 with 3 replicas",
      input: { ...RUNBOOK, replicas: 3 },
      worst: 210,
      usable: 197,
      verdict: 'oversubscribed',
      headroom: -13,
      usage: 107,
    },
    {
      name: "the runbook's Step 2 with 2 replicas (140 of 197 is 71%: under the 80% line)",
      input: { ...RUNBOOK, replicas: 2 },
      worst: 140,
      usable: 197,
      verdict: 'fits',
      headroom: 57,
      usage: 71,
    },
    {
      name: '2 replicas and 20 other consumers: 160 > 157 (80% of 197)',
      input: { ...RUNBOOK, replicas: 2, otherConsumers: 20 },
      worst: 160,
      usable: 197,
      verdict: 'tight',
      headroom: 37,
      usage: 81,
    },
    {
      name: 'exactly on the 80% line fits',
      input: { replicas: 1, poolMax: 157, maxConnections: 200 },
      worst: 157,
      usable: 197,
      verdict: 'fits',
      headroom: 40,
      usage: 80,
    },
    {
      name: 'one over the 80% line is tight',
      input: { replicas: 1, poolMax: 158, maxConnections: 200 },
      worst: 158,
      usable: 197,
      verdict: 'tight',
      headroom: 39,
      usage: 80,
    },
    {
      name: 'every usable slot is tight, not oversubscribed',
      input: { replicas: 1, poolMax: 197, maxConnections: 200 },
      worst: 197,
      usable: 197,
      verdict: 'tight',
      headroom: 0,
      usage: 100,
    },
    {
      name: 'one more than usable is oversubscribed by 1',
      input: { replicas: 1, poolMax: 198, maxConnections: 200 },
      worst: 198,
      usable: 197,
      verdict: 'oversubscribed',
      headroom: -1,
      usage: 101,
    },
    {
      name: 'reserved_connections (16+) are not usable either',
      input: { replicas: 2, poolMax: 40, maxOverflow: 10, maxConnections: 120, reservedConnections: 5 },
      worst: 100,
      usable: 112,
      verdict: 'tight',
      headroom: 12,
      usage: 89,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const plan = planCapacity(c.input);
      assert.equal(plan.demand.worstCase.value, c.worst);
      assert.equal(plan.server.usable.value, c.usable);
      assert.equal(plan.verdict, c.verdict);
      assert.equal(plan.demand.headroom.value, c.headroom);
      assert.equal(plan.demand.usagePercent.value, c.usage);
      assert.equal(plan.demand.oversubscribedBy?.value ?? 0, Math.max(0, -c.headroom));
    });
  }

  it('explains the runbook numbers in one line each', () => {
    const plan = planCapacity({ ...RUNBOOK, replicas: 4 });
    assert.equal(plan.demand.fleet.why, '280 = 4 replicas × (50 + 20)');
    assert.equal(plan.server.usable.why, '197 = 200 - 3 superuser_reserved - 0 reserved');
    assert.equal(plan.demand.oversubscribedBy?.why, '83 = 280 worst case - 197 usable');
    assert.equal(plan.demand.minimumOpen.value, 20);
    assert.match(plan.headline, /^oversubscribed by 83: .*280.*197/);
  });

  it("checks the runbook's Step 2 whatever pools are planned", () => {
    const small = planCapacity({ replicas: 4, poolMax: 10, maxConnections: 100 });
    assert.equal(small.verdict, 'fits');
    assert.equal(small.runbook.worstCase.value, 280);
    assert.equal(small.runbook.worstCase.why, '280 = 4 replicas × (50 + 20) + 0 other');
    assert.equal(small.runbook.usable.value, 197);
    assert.equal(small.runbook.verdict, 'oversubscribed');
    assert.equal(small.runbook.oversubscribedBy?.value, 83);
    assert.match(small.runbook.summary, /oversubscribes the server by 83: 280 > 197/);
    const two = planCapacity({ replicas: 2, poolMax: 10, maxConnections: 100 });
    assert.equal(two.runbook.verdict, 'fits');
    assert.equal(two.runbook.headroom.value, 57);
    assert.equal(two.runbook.oversubscribedBy, null);
    // Its own server's reserved slots and the other consumers count against it too.
    const busy = planCapacity({
      replicas: 2,
      poolMax: 10,
      maxConnections: 100,
      reservedConnections: 2,
      otherConsumers: 17,
    });
    assert.equal(busy.runbook.worstCase.value, 157);
    assert.equal(busy.runbook.usable.value, 195);
    assert.equal(busy.runbook.verdict, 'tight');
  });

  it('notes when a rolling restart (25% surge) changes the verdict', () => {
    const plan = planCapacity({ ...RUNBOOK, replicas: 2 });
    assert.equal(plan.verdict, 'fits');
    assert.ok(
      plan.notes.some((n) =>
        /rolling restart.*3 instances.*210 = 3 × \(50 \+ 20\) \+ 0, oversubscribed/.test(n),
      ),
    );
  });
});

describe("planCapacity: Little's law and HikariCP's reference", () => {
  const cases: {
    name: string;
    input: Partial<CapacityInput>;
    concurrency: number;
    perInstance: number;
    fleetAtOnce: number;
    why?: RegExp;
  }[] = [
    {
      name: '2000/s × 20 ms = 40 busy; 4 replicas, margin 1.5: 15 each',
      input: { ratePerSecond: 2000, meanMs: 20, replicas: 4 },
      concurrency: 40,
      perInstance: 15,
      fleetAtOnce: 60,
      why: /^15 = ceil\(40 \/ 4 replicas × 1\.5 margin\)$/,
    },
    {
      name: 'margin 2 (100%)',
      input: { ratePerSecond: 2000, meanMs: 20, replicas: 4, margin: 2 },
      concurrency: 40,
      perInstance: 20,
      fleetAtOnce: 80,
    },
    {
      name: 'no floating-point dust: 30 / 3 × 1.1 is 11, not 12',
      input: { ratePerSecond: 3000, meanMs: 10, replicas: 3, margin: 1.1 },
      concurrency: 30,
      perInstance: 11,
      fleetAtOnce: 33,
    },
    {
      name: 'a light load still gets 2 per instance',
      input: { ratePerSecond: 100, meanMs: 5, replicas: 4 },
      concurrency: 0.5,
      perInstance: 2,
      fleetAtOnce: 2,
      why: /^2 = at least 2 \(ceil\(0\.5 \/ 4 replicas × 1\.5 margin\) = 1\)$/,
    },
    {
      name: 'rounds up: 250/s × 7 ms = 1.75 busy, 1 replica: ceil(2.625) = 3',
      input: { ratePerSecond: 250, meanMs: 7, replicas: 1 },
      concurrency: 1.75,
      perInstance: 3,
      fleetAtOnce: 3,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const plan = planCapacity({ poolMax: 50, maxConnections: 200, replicas: 1, ...c.input });
      assert.ok(plan.load, 'load is planned');
      assert.equal(plan.load.concurrency.value, c.concurrency);
      assert.equal(plan.load.perInstance.value, c.perInstance);
      assert.equal(plan.load.fleetAtOnce.value, c.fleetAtOnce);
      if (c.why) assert.match(plan.load.perInstance.why, c.why);
      assert.equal(plan.loadMissing, null);
    });
  }

  it('says what is missing without a rate or a mean time', () => {
    const plan = planCapacity({ replicas: 4, poolMax: 10, maxConnections: 100, meanMs: 20 });
    assert.equal(plan.load, null);
    assert.match(plan.loadMissing ?? '', /no rate: pass --mean-ms and --rate/);
  });

  const hikari: { cores: number; spindles?: number; expect: number }[] = [
    { cores: 4, spindles: 1, expect: 9 },
    { cores: 4, spindles: 0, expect: 8 },
    { cores: 8, expect: 17 },
    { cores: 16, spindles: 4, expect: 36 },
  ];
  for (const h of hikari) {
    it(`HikariCP: ${h.cores} cores, ${h.spindles ?? 'default'} spindles -> ${h.expect}`, () => {
      const plan = planCapacity({
        replicas: 1,
        poolMax: 10,
        maxConnections: 100,
        cores: h.cores,
        spindles: h.spindles,
      });
      assert.equal(plan.hikari?.value, h.expect);
      assert.match(
        plan.hikari?.why ?? '',
        new RegExp(`^${h.expect} = ${h.cores} cores × 2 \\+ \\d+ spindles?`),
      );
    });
  }

  it('no HikariCP reference without cores; a note when the load outruns the cores', () => {
    assert.equal(planCapacity({ replicas: 1, poolMax: 10, maxConnections: 100 }).hikari, null);
    const plan = planCapacity({
      replicas: 4,
      poolMax: 10,
      maxConnections: 200,
      ratePerSecond: 2000,
      meanMs: 20,
      cores: 4,
    });
    assert.ok(plan.notes.some((n) => /40 statements busy at once; 9 is what 4 cores run well/.test(n)));
  });
});

describe('planCapacity: recommended pools', () => {
  it("cuts the runbook's pools to what 4 replicas can have", () => {
    const rec = planCapacity({ ...RUNBOOK, replicas: 4 }).recommended;
    assert.equal(rec.fleetBudget.value, 157);
    assert.equal(rec.perInstanceBudget.value, 39);
    assert.equal(rec.max.value, 39);
    assert.equal(rec.overflow.value, 0);
    assert.equal(rec.min.value, 5);
    assert.equal(rec.worstCase.value, 156);
    assert.equal(rec.verdict, 'fits');
    assert.equal(rec.viable, true);
  });

  it("sizes max from Little's law and keeps the asked overflow when it fits", () => {
    const rec = planCapacity({ ...RUNBOOK, replicas: 4, ratePerSecond: 2000, meanMs: 20 }).recommended;
    assert.equal(rec.max.value, 15);
    assert.equal(rec.overflow.value, 20);
    assert.equal(rec.min.value, 5);
    assert.equal(rec.worstCase.value, 140);
    assert.equal(rec.verdict, 'fits');
  });

  it('keeps what was asked when it fits, and never a min above max', () => {
    const rec = planCapacity({
      replicas: 2,
      poolMax: 10,
      maxOverflow: 5,
      poolMin: 8,
      maxConnections: 30,
    }).recommended;
    // 27 usable, 21 under the line, 10 per instance: max 10, overflow 0, min 8.
    assert.equal(rec.perInstanceBudget.value, 10);
    assert.equal(rec.max.value, 10);
    assert.equal(rec.overflow.value, 0);
    assert.equal(rec.min.value, 8);
    const low = planCapacity({ replicas: 2, poolMax: 10, poolMin: 8, maxConnections: 20 }).recommended;
    assert.equal(low.max.value, 6);
    assert.equal(low.min.value, 6);
    assert.match(low.min.why, /asked 8/);
  });

  it('others leave nothing: not viable', () => {
    const rec = planCapacity({
      replicas: 3,
      poolMax: 10,
      maxConnections: 50,
      otherConsumers: 35,
    }).recommended;
    assert.equal(rec.fleetBudget.value, 2);
    assert.equal(rec.perInstanceBudget.value, 0);
    assert.equal(rec.viable, false);
  });
});

describe('planCapacity: PgBouncer', () => {
  it("is recommended for the runbook's 4 replicas and sized for its 2 PgBouncer instances", () => {
    const b = planCapacity({ ...RUNBOOK, replicas: 4, pgbouncerInstances: 2 }).pgbouncer;
    assert.equal(b.recommended, true);
    assert.match(b.reason, /the fleet needs 280 = 4 replicas × 70 .*can give it 157/);
    assert.equal(b.perPool.value, 78);
    assert.equal(b.reservePoolSize.value, 7);
    assert.equal(b.defaultPoolSize.value, 71);
    assert.equal(b.serverConnections.value, 156);
    assert.equal(b.maxClientConn.value, 360);
    assert.equal(
      b.maxClientConn.why.startsWith('360 = 5 app instances (4 + 25% rolling-update surge) × (50 + 20) + 10'),
      true,
    );
    assert.ok(b.maxClientConn.value >= 4 * (50 + 20));
    assert.equal(b.serverLifetime.value, 3600);
    assert.equal(b.queryWaitTimeout.value, 30);
  });

  it('divides what the server can give among instances and (database, user) pools', () => {
    const b = planCapacity({ ...RUNBOOK, replicas: 4, pools: 3 }).pgbouncer;
    // 157 / (1 × 3) = 52 per pool: 47 + 5.
    assert.equal(b.perPool.value, 52);
    assert.equal(b.defaultPoolSize.value, 47);
    assert.equal(b.reservePoolSize.value, 5);
    assert.equal(b.serverConnections.value, 156);
  });

  it('is not recommended when the measured load fits without it', () => {
    const b = planCapacity({ ...RUNBOOK, replicas: 4, ratePerSecond: 2000, meanMs: 20 }).pgbouncer;
    assert.equal(b.recommended, false);
    assert.match(b.reason, /^not needed for capacity: the fleet's 60 = 4 replicas × 15/);
    assert.equal(b.sufficient, true);
    assert.equal(planCapacity({ ...RUNBOOK, replicas: 2 }).pgbouncer.recommended, false);
  });

  it('is recommended when many instances each need a little (rounding up per instance)', () => {
    const plan = planCapacity({
      replicas: 50,
      poolMax: 10,
      maxConnections: 100,
      ratePerSecond: 2000,
      meanMs: 20,
    });
    // 40 busy: 50 instances × 2 = 100 > 77 the server can give; shared, 60 are enough.
    assert.equal(plan.load?.perInstance.value, 2);
    assert.equal(plan.recommended.viable, false);
    assert.equal(plan.pgbouncer.recommended, true);
    assert.equal(plan.pgbouncer.sufficient, true);
    assert.equal(plan.pgbouncer.serverConnections.value, 77);
    assert.match(plan.pgbouncer.reason, /more than the 60 the load needs at once/);
  });

  it('says when even PgBouncer is not enough', () => {
    const b = planCapacity({
      replicas: 4,
      poolMax: 50,
      maxConnections: 200,
      ratePerSecond: 20000,
      meanMs: 50,
    }).pgbouncer;
    assert.equal(b.recommended, true);
    assert.equal(b.sufficient, false);
    assert.match(b.reason, /fewer than the 1500 the load needs at once: make statements faster/);
  });
});

describe('planCapacity: explanations and bad input', () => {
  it('gives every number a one-line explanation that starts with it', () => {
    const inputs: CapacityInput[] = [
      {
        ...RUNBOOK,
        replicas: 4,
        cores: 4,
        spindles: 1,
        ratePerSecond: 2000,
        meanMs: 20,
        pgbouncerInstances: 2,
      },
      { ...RUNBOOK, replicas: 2, otherConsumers: 7, otherConsumersDetail: [{ name: 'psql', count: 7 }] },
      { replicas: 50, poolMax: 10, maxConnections: 100, ratePerSecond: 100, meanMs: 5 },
    ];
    for (const input of inputs) {
      const found = figures(planCapacity(input));
      assert.ok(found.length >= 30, `${found.length} figures`);
      for (const [at, f] of found) {
        assert.ok(f.why.startsWith(num(f.value)), `${at}: "${f.why}" starts with ${f.value}`);
        assert.ok(!f.why.includes('\n'), `${at} is one line`);
        assert.ok(Number.isFinite(f.value), `${at} is a number`);
      }
    }
  });

  it('explains measured other consumers by name', () => {
    const plan = planCapacity({
      ...RUNBOOK,
      replicas: 2,
      otherConsumers: 9,
      otherConsumersDetail: [
        { name: 'reporting', count: 5 },
        { name: 'psql', count: 2 },
        { name: 'cron', count: 1 },
        { name: 'metabase', count: 1 },
      ],
      sources: { otherConsumers: 'client sessions now' },
    });
    assert.equal(plan.demand.other.why, '9 = 5 reporting + 2 psql + 1 cron + 1 more (client sessions now)');
    assert.ok(plan.notes.some((n) => /counted now/.test(n)));
  });

  const bad: { input: Partial<CapacityInput>; field: string; message: RegExp }[] = [
    { input: { replicas: 0 }, field: 'replicas', message: /^replicas must be a whole number ≥ 1, got 0$/ },
    { input: { replicas: 1.5 }, field: 'replicas', message: /got 1\.5/ },
    { input: { poolMax: 0 }, field: 'poolMax', message: /poolMax must be a whole number ≥ 1/ },
    { input: { maxOverflow: -1 }, field: 'maxOverflow', message: /≥ 0, got -1/ },
    { input: { poolMin: 60 }, field: 'poolMin', message: /must not be above the pool's max \(50\), got 60/ },
    {
      input: { maxConnections: 3 },
      field: 'maxConnections',
      message: /leaves no usable slot: 3 - 3 superuser_reserved - 0 reserved = 0/,
    },
    { input: { reservedConnections: 197 }, field: 'maxConnections', message: /= 0$/ },
    { input: { otherConsumers: -2 }, field: 'otherConsumers', message: /got -2/ },
    { input: { meanMs: 0 }, field: 'meanMs', message: /must be a number > 0, got 0/ },
    { input: { meanMs: Number.NaN }, field: 'meanMs', message: /got NaN/ },
    { input: { ratePerSecond: -5 }, field: 'ratePerSecond', message: /≥ 0, got -5/ },
    { input: { margin: 0.5 }, field: 'margin', message: /factor ≥ 1 .*got 0\.5/ },
    { input: { cores: 0 }, field: 'cores', message: /≥ 1, got 0/ },
    { input: { spindles: -1 }, field: 'spindles', message: /≥ 0, got -1/ },
    { input: { pools: 0 }, field: 'pools', message: /≥ 1, got 0/ },
    { input: { pgbouncerInstances: 0 }, field: 'pgbouncerInstances', message: /≥ 1, got 0/ },
  ];
  for (const b of bad) {
    it(`refuses ${JSON.stringify(b.input).replace('null', 'NaN')}`, () => {
      assert.throws(
        () => planCapacity({ replicas: 4, poolMax: 50, maxConnections: 200, ...b.input }),
        (err: unknown) => {
          assert.ok(err instanceof PlanInputError);
          assert.equal(err.field, b.field);
          assert.match(err.message, b.message);
          return true;
        },
      );
    });
  }
});

describe('rendering', () => {
  it('prints every line within 80 columns, with the runbook numbers explained', () => {
    const plan = planCapacity({ ...RUNBOOK, replicas: 4, cores: 4, ratePerSecond: 2000, meanMs: 20 });
    const text = renderPlanText(plan, {}, { width: 80 });
    for (const line of text.split('\n')) assert.ok([...line].length <= 80, `too wide: ${line}`);
    assert.match(text, /^pgwarden plan: oversubscribed by 83/);
    assert.match(text, /280 = 4 replicas × \(50 \+ 20\)/);
    assert.match(text, /83 = 280 worst case - 197 usable/);
    assert.match(text, /15 = ceil\(40 \/ 4 replicas × 1\.5 margin\)/);
    assert.match(text, /9 = 4 cores × 2 \+ 1 spindle/);
    const json = JSON.parse(renderPlanJson(plan, {}));
    assert.equal(json.demand.worstCase.value, 280);
    assert.equal(json.runbook.oversubscribedBy.value, 83);
  });

  it('makes database text harmless in the terminal', () => {
    const plan = planCapacity({
      replicas: 1,
      poolMax: 5,
      maxConnections: 100,
      otherConsumers: 1,
      otherConsumersDetail: [{ name: 'evil\u001b[2J', count: 1 }],
    });
    const text = renderPlanText(plan, {
      sessions: { byApplication: [{ name: 'x\u001b]0;t\u0007', count: 1 }], app: 0, appName: null },
    });
    assert.ok(!text.includes('\u001b'), 'no escape reaches the terminal');
  });
});

describe('pgbouncer.ini and userlist.txt', () => {
  const target: PgBouncerTarget = {
    host: 'db.internal',
    port: 5432,
    database: 'vitalstream',
    users: ['vitals_app'],
    listenAddr: '127.0.0.1',
    listenPort: 6432,
    authFile: '/etc/pgbouncer/userlist.txt',
    adminUsers: ['pgbouncer_admin'],
    statsUsers: ['pgwarden'],
  };
  const plan = planCapacity({ ...RUNBOOK, replicas: 4, pgbouncerInstances: 2 });

  it('writes the computed sizes with their explanations, transaction pooling, no password', () => {
    const ini = renderPgBouncerIni(plan, target);
    const settings = new Map(
      ini
        .split('\n')
        .map((l) => /^([a-z_]+) =(?: (.*))?$/.exec(l))
        .filter((m) => m !== null)
        .map((m) => [m[1] as string, m[2] ?? '']),
    );
    assert.equal(settings.get('vitalstream'), 'host=db.internal port=5432 dbname=vitalstream');
    assert.equal(settings.get('listen_addr'), '127.0.0.1');
    assert.equal(settings.get('listen_port'), '6432');
    assert.equal(settings.get('auth_type'), 'scram-sha-256');
    assert.equal(settings.get('auth_file'), '/etc/pgbouncer/userlist.txt');
    assert.equal(settings.get('pool_mode'), 'transaction');
    assert.equal(settings.get('server_reset_query'), '');
    assert.equal(settings.get('unix_socket_dir'), '');
    assert.equal(settings.get('default_pool_size'), '71');
    assert.equal(settings.get('reserve_pool_size'), '7');
    assert.equal(settings.get('max_client_conn'), '360');
    assert.equal(settings.get('server_lifetime'), '3600');
    assert.equal(settings.get('server_idle_timeout'), '600');
    assert.equal(settings.get('admin_users'), 'pgbouncer_admin');
    assert.equal(settings.get('stats_users'), 'pgwarden');
    assert.equal(settings.get('ignore_startup_parameters'), 'extra_float_digits');
    assert.match(ini, /; 71 = 78 per pool - 7 reserve\ndefault_pool_size = 71/);
    assert.match(ini, /; 360 = 5 app instances .*\nmax_client_conn = 360/);
    assert.match(ini, /sessionSettingsVia: 'query'/);
    assert.match(ini, /statement_timeout/);
    assert.doesNotMatch(ini, /password\s*=/i);
  });

  it('lists the users with commented-out placeholders only', () => {
    const userlist = renderUserlistTemplate(target);
    const entries = userlist.split('\n').filter((l) => l.startsWith(';"'));
    assert.deepEqual(
      entries.map((l) => l.slice(0, l.indexOf(' '))),
      [';"vitals_app"', ';"pgbouncer_admin"', ';"pgwarden"'],
    );
    assert.ok(
      userlist.split('\n').every((l) => l === '' || l.startsWith(';')),
      'every line is a comment: deployed unedited, it lets nobody in',
    );
  });

  it('refuses names that would change the meaning of the files', () => {
    for (const bad of [
      { ...target, database: 'db\nadmin_users = mallory' },
      { ...target, users: ['a" "b'] },
      { ...target, host: 'db host' },
      { ...target, adminUsers: ['x,y'] },
    ]) {
      assert.throws(() => {
        renderPgBouncerIni(plan, bad);
        renderUserlistTemplate(bad);
      }, IniValueError);
    }
  });
});
