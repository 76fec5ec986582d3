// `pgwarden plan` end to end: exit codes by verdict, one-line errors naming the bad flag (never the
// password), and --url against a dedicated server with max_connections 50: the plan reads the limits,
// counts the current client sessions as other consumers by application, and measures the load from
// pg_stat_statements.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type EmbeddedServer, freePort, sleep, startPostgres } from '@pgwarden/testkit';
import pg from 'pg';
import { type PlanFlags, runPlan } from './plan.js';
import { captured } from './io.fixture.js';
import { measureServer } from './plan-measure.js';

const SECRET = `S3cret-${Math.random().toString(36).slice(2, 10)}`;

const plan = (flags: PlanFlags, env: Record<string, string | undefined> = {}) =>
  captured(runPlan, flags, env);

describe('pgwarden plan without a server', () => {
  it("exits 2 for the runbook's Step 2 with 4 replicas: oversubscribed by 83", async () => {
    const res = await plan({ runbook: true, replicas: '4' });
    assert.equal(res.code, 2, res.stderr);
    assert.equal(res.stderr, '');
    assert.match(res.stdout, /^pgwarden plan: oversubscribed by 83: the worst case needs 280 connections/);
    assert.match(res.stdout, /280 = 4 replicas × \(50 \+ 20\)/);
    assert.match(res.stdout, /197 = 200 - 3 superuser_reserved - 0 reserved/);
    assert.match(res.stdout, /PgBouncer: RECOMMENDED/);
    for (const line of res.stdout.split('\n')) assert.ok([...line].length <= 80, `too wide: ${line}`);
  });

  it('exits 0 when it fits, 1 when tight, and prints JSON with --json', async () => {
    const fits = await plan({ runbook: true, replicas: '2', json: true });
    assert.equal(fits.code, 0);
    const json = JSON.parse(fits.stdout);
    assert.equal(json.verdict, 'fits');
    assert.equal(json.demand.worstCase.value, 140);
    assert.equal(json.demand.headroom.value, 57);
    assert.equal(json.input.sources.poolMax, 'runbook Step 2');
    assert.equal(json.pgbouncer.recommended, false);
    const tight = await plan({ runbook: true, replicas: '2', other: '20' });
    assert.equal(tight.code, 1);
    assert.match(tight.stdout, /^pgwarden plan: tight: the worst case needs 160 of 197/);
  });

  it('takes flags over --runbook, and sizes from the load', async () => {
    const res = await plan({
      runbook: true,
      replicas: '4',
      maxConnections: '400',
      meanMs: '20ms',
      rate: '2000/s',
      margin: '50%',
      cores: '4',
      spindles: '1',
      json: true,
    });
    assert.equal(res.code, 0, res.stderr);
    const json = JSON.parse(res.stdout);
    assert.equal(json.server.maxConnections.why, '400 (--max-connections)');
    assert.equal(json.load.concurrency.value, 40);
    assert.equal(json.load.perInstance.value, 15);
    assert.equal(json.hikari.value, 9);
    assert.equal(json.runbook.oversubscribedBy.value, 83);
  });

  it('gives one line with exit 3 for bad input, naming the flag, never the password', async () => {
    const closed = await freePort();
    const cases: { flags: PlanFlags; expect: RegExp }[] = [
      { flags: { runbook: true }, expect: /^pgwarden plan: --replicas is required/ },
      { flags: { replicas: '4', maxConnections: '200' }, expect: /--pool-max is required/ },
      { flags: { replicas: '4', poolMax: '10' }, expect: /--max-connections is required/ },
      { flags: { runbook: true, replicas: 'four' }, expect: /--replicas takes a whole number, got "four"/ },
      { flags: { runbook: true, replicas: '0' }, expect: /--replicas must be a whole number ≥ 1, got 0/ },
      {
        flags: { runbook: true, replicas: '4', poolMin: '60' },
        expect: /--pool-min must not be above the pool's max \(50\)/,
      },
      { flags: { runbook: true, replicas: '4', margin: '0.5' }, expect: /--margin takes a factor ≥ 1/ },
      { flags: { runbook: true, replicas: '4', meanMs: 'soon' }, expect: /--mean-ms takes a duration/ },
      { flags: { runbook: true, replicas: '4', rate: 'lots' }, expect: /--rate takes statements per second/ },
      {
        flags: { runbook: true, replicas: '4', maxConnections: '3' },
        expect: /--max-connections leaves no usable slot/,
      },
      { flags: { runbook: true, replicas: '4', app: 'api' }, expect: /--app needs --url/ },
      {
        flags: { replicas: '4', poolMax: '10', url: `postgres://app:${SECRET}@127.0.0.1:${closed}/postgres` },
        expect: /connection refused/,
      },
      {
        flags: { replicas: '4', poolMax: '10', url: `postgres://app:${SECRET}@127.0.0.1:notaport/x` },
        expect: /malformed/,
      },
    ];
    for (const c of cases) {
      const res = await plan(c.flags);
      assert.equal(res.code, 3, `${JSON.stringify(c.flags)} -> ${res.stderr}`);
      assert.match(res.stderr, c.expect);
      assert.equal(res.stderr.trim().split('\n').length, 1, `one line: ${res.stderr}`);
      assert.ok(!res.stderr.includes(SECRET), 'the password never appears');
      assert.equal(res.stdout, '');
    }
  });
});

describe('pgwarden plan --url', () => {
  let server: EmbeddedServer;
  const clients: pg.Client[] = [];

  async function connect(application: string): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: server.url, application_name: application });
    c.on('error', () => {});
    await c.connect();
    clients.push(c);
    return c;
  }

  before(async () => {
    server = await startPostgres({ settings: { max_connections: 50 } });
    for (let i = 0; i < 3; i++) await connect('reporting');
    await connect('psql');
    for (let i = 0; i < 2; i++) await connect('vitals:api');
  });
  after(async () => {
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
    await server?.destroy();
  });

  it('reads max_connections 50 and counts the current sessions by application', async () => {
    const res = await plan({
      url: server.url,
      replicas: '2',
      poolMax: '10',
      overflow: '5',
      app: 'vitals',
      json: true,
    });
    assert.equal(res.stderr, '');
    const json = JSON.parse(res.stdout);
    assert.equal(json.input.maxConnections, 50);
    assert.equal(json.server.maxConnections.value, 50);
    assert.match(json.server.maxConnections.why, /^50 \(the server, PostgreSQL \d+/);
    const usable = 50 - json.input.superuserReservedConnections - json.input.reservedConnections;
    assert.equal(json.server.usable.value, usable);
    // 3 reporting + 1 psql; the app's own 2 sessions ("vitals:api") and pgwarden's are not others.
    assert.deepEqual(json.measured.sessions.byApplication, [
      { name: 'reporting', count: 3 },
      { name: 'psql', count: 1 },
    ]);
    assert.equal(json.measured.sessions.app, 2);
    assert.equal(json.demand.other.value, 4);
    assert.equal(json.demand.other.why, '4 = 3 reporting + 1 psql (client sessions now, without vitals)');
    assert.equal(json.demand.worstCase.value, 2 * 15 + 4);
    assert.equal(json.verdict, 'fits');
    assert.equal(res.code, 0);
    // Without --app every client session is another consumer.
    const all = JSON.parse(
      (await plan({ url: server.url, replicas: '2', poolMax: '10', json: true, sample: '0.2s' })).stdout,
    );
    assert.equal(all.demand.other.value, 6);
  });

  it('exits 2 when the fleet would not fit, and flags win over the server (what-if)', async () => {
    const over = await plan({ url: server.url, replicas: '4', poolMax: '10', overflow: '5', sample: '0.2s' });
    assert.equal(over.code, 2, over.stderr);
    assert.match(over.stdout, /^pgwarden plan: oversubscribed by \d+/);
    assert.match(over.stdout, /Measured \(--url\)/);
    assert.match(over.stdout, /3 reporting, 2 vitals:api, 1 psql/);
    for (const line of over.stdout.split('\n')) assert.ok([...line].length <= 80, `too wide: ${line}`);
    const whatIf = JSON.parse(
      (
        await plan({
          url: server.url,
          replicas: '4',
          poolMax: '10',
          overflow: '5',
          maxConnections: '200',
          other: '0',
          json: true,
          sample: '0.2s',
        })
      ).stdout,
    );
    assert.equal(whatIf.server.maxConnections.why, '200 (--max-connections)');
    assert.equal(whatIf.demand.other.value, 0);
    assert.equal(whatIf.verdict, 'fits');
  });

  it('measures the mean time and rate from pg_stat_statements', async (t) => {
    if (!server.pgStatStatements) {
      t.skip('pg_stat_statements is not available with these binaries');
      return;
    }
    const worker = await connect('load');
    let running = true;
    const load = (async () => {
      while (running) await worker.query('SELECT pg_sleep(0.002)');
    })();
    try {
      await sleep(50);
      const res = await plan({
        url: server.url,
        replicas: '2',
        poolMax: '10',
        sample: '1s',
        app: 'vitals',
        json: true,
      });
      assert.equal(res.stderr, '');
      const json = JSON.parse(res.stdout);
      assert.ok(json.load, `load planned: ${JSON.stringify(json.measured.load)}`);
      assert.match(
        json.measured.load.summary,
        /statements\/s, .* ms mean, in postgres over a 1(\.\d)? s sample/,
      );
      // One connection looping on a 2 ms sleep: between 1 and 1000 statements a second, a mean of 0.01 to 50 ms.
      assert.ok(
        json.input.ratePerSecond > 1 && json.input.ratePerSecond < 1000,
        String(json.input.ratePerSecond),
      );
      assert.ok(json.input.meanMs > 0.01 && json.input.meanMs < 50, String(json.input.meanMs));
      assert.match(json.input.sources.meanMs, /pg_stat_statements, 1(\.\d)? s sample/);
      // The loop holds about one connection busy: Little's law says under 2.
      assert.ok(json.load.concurrency.value <= 2, String(json.load.concurrency.value));
      assert.equal(json.load.perInstance.value, 2);
    } finally {
      running = false;
      await load;
    }
  });

  it('averages since the statistics were reset, from pg_stat_statements_info (14+)', async (t) => {
    if (!server.pgStatStatements || server.major < 14) {
      t.skip('needs pg_stat_statements_info (PostgreSQL 14+)');
      return;
    }
    const measured = await measureServer(server.url, { app: 'vitals', minResetAgeSeconds: 0 });
    assert.equal(measured.server.maxConnections, 50);
    assert.ok('method' in measured.load, JSON.stringify(measured.load));
    assert.equal(measured.load.method, 'since_reset');
    assert.ok(measured.load.calls > 0 && measured.load.ratePerSecond > 0 && measured.load.meanMs > 0);
    assert.match(measured.load.summary, /since pg_stat_statements was reset \d+ s ago/);
  });
});
