// Chaos: a steady write load through @pgwarden/pool while the server or the network misbehaves, one
// fault at a time — a restart (fast and immediate shutdown), pg_terminate_backend of every pool
// connection, a 5 s network stall, another client taking every free connection slot — with a
// pgwarden agent (Watcher, observe mode) watching the same server throughout.
//
// For each fault: every request ends (success, or an error with a code, within its deadline), the
// pool serves again within 2 s of the fault clearing, every acknowledged write is in the table,
// nothing is unhandled, and the agent neither throws nor stops observing (healthy again within a few
// seconds; `unreachable` while the server is down). Run with `npm run test:chaos`.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Pool, type PoolOptions } from '@pgwarden/pool';
import {
  type EmbeddedServer,
  sleep,
  startPostgres,
  startTcpProxy,
  type TcpProxy,
  waitFor,
} from '@pgwarden/testkit';
import pg from 'pg';
import {
  AgentProbe,
  createTable,
  type FaultRow,
  missingIds,
  printTable,
  UnhandledGuard,
  WriteLoad,
} from './harness.js';

const WRITERS = 12;
const POOL_MAX = 8;
/** Acquire deadline (waiting for a slot + connecting). */
const CONNECTION_TIMEOUT = 1000;
/** pg's client-side query_timeout, which the pool passes to every Client. */
const QUERY_TIMEOUT = 1500;
/** A request's deadline, and the slack after which an unsettled one is a hang. */
const DEADLINE = CONNECTION_TIMEOUT + QUERY_TIMEOUT;
const HANG_AFTER = DEADLINE + 500;
const BREAKER_HALF_OPEN = 1000;
const RECOVERY_LIMIT = 2000;
const AGENT_RECOVERY_LIMIT = 6000;
const WARMUP = 1000;
/** How long the load keeps running after a fault cleared. */
const AFTERMATH = 2500;
/** Server downtime in the restart faults: longer than the agent's interval, so a tick sees it. */
const DOWNTIME = 2000;
const STALL = 5000;
const HOG_HOLD = 5000;
const MAX_CONNECTIONS = 20;

interface FaultContext {
  server: EmbeddedServer;
  app: string;
  pool: Pool;
  proxy: TcpProxy | undefined;
}

interface Fault {
  name: string;
  /** The pool (and the agent) connect through a TCP proxy. */
  viaProxy?: boolean;
  poolOptions?: Partial<PoolOptions>;
  /** The agent must have observed the server as unreachable during the fault. */
  agentSeesOutage?: boolean;
  /** Causes the fault and clears it; resolves with performance.now() at the moment it cleared. */
  inject(ctx: FaultContext): Promise<number>;
}

function urlVia(server: EmbeddedServer, port: number): string {
  return `postgres://${server.user}:${encodeURIComponent(server.password)}@127.0.0.1:${port}/${server.database}`;
}

describe('chaos: a write load through the pool, and the agent, under faults', { concurrency: false }, () => {
  let server: EmbeddedServer;
  const rows: FaultRow[] = [];
  const guard = new UnhandledGuard();

  before(async () => {
    guard.install();
    server = await startPostgres({
      settings: { synchronous_commit: 'on', max_connections: MAX_CONNECTIONS },
    });
    await createTable(server.url);
  });

  after(async () => {
    guard.uninstall();
    try {
      if (rows.length > 0) printTable(rows);
    } finally {
      await server?.destroy();
    }
  });

  async function run(fault: Fault): Promise<void> {
    const app = `chaos-${fault.name.replace(/\W+/g, '-')}`;
    const proxy = fault.viaProxy ? await startTcpProxy({ targetPort: server.port }) : undefined;
    const url = proxy ? urlVia(server, proxy.port) : server.url;
    const pool = new Pool({
      connectionString: url,
      name: app,
      application_name: app,
      max: POOL_MAX,
      connectionTimeoutMillis: CONNECTION_TIMEOUT,
      query_timeout: QUERY_TIMEOUT,
      // Half-open after 1 s (default 5 s): a caller waits at most that long after the server is back.
      circuitBreaker: { threshold: 5, halfOpenAfterMillis: BREAKER_HALF_OPEN },
      ...fault.poolOptions,
    } as PoolOptions);
    const idleErrors: Error[] = [];
    pool.on('error', (err: Error) => idleErrors.push(err));
    const agent = new AgentProbe(url);
    const load = new WriteLoad(pool, { fault: fault.name, writers: WRITERS, hangAfterMillis: HANG_AFTER });
    let row: FaultRow | undefined;
    try {
      await agent.start();
      load.start();
      await sleep(WARMUP);
      assert.ok(load.acked.length > 0, 'no write succeeded before the fault');
      const faultAt = performance.now();
      const clearedAt = await fault.inject({ server, app, pool, proxy });

      // Let the load run on; wait for the agent's first healthy tick after the fault too.
      await sleep(AFTERMATH);
      await waitFor(
        'a healthy agent observation after the fault',
        () => agent.healthyAfter(clearedAt) !== undefined,
        clearedAt + AGENT_RECOVERY_LIMIT - performance.now(),
        20,
      ).catch(() => undefined);
      await load.stop();

      const counts = load.counts();
      const firstOk = load.firstSuccessAfter(clearedAt);
      const agentHealthy = agent.healthyAfter(clearedAt);
      row = {
        fault: fault.name,
        ...counts,
        recoveryMillis: firstOk === undefined ? undefined : Math.max(0, firstOk - clearedAt),
        agentRecoveryMillis: agentHealthy === undefined ? undefined : Math.max(0, agentHealthy - clearedAt),
        agentUnreachable: agent.unreachableBetween(faultAt, clearedAt).length,
      };

      // Every request ended within its deadline, with a success or an error that has a code.
      assert.deepEqual(load.hangs, [], `requests outlived their ${DEADLINE} ms deadline`);
      assert.deepEqual(load.untyped(), [], 'requests failed with errors that have no code');
      // The pool serves again within 2 s of the fault clearing.
      assert.ok(firstOk !== undefined, 'no write succeeded after the fault cleared');
      assert.ok(
        (row.recoveryMillis as number) <= RECOVERY_LIMIT,
        `first write after the fault cleared took ${Math.round(row.recoveryMillis as number)} ms`,
      );
      // Every acknowledged write is in the table.
      const missing = await missingIds(server.url, load.acked);
      assert.deepEqual(
        missing,
        [],
        `${missing.length} of ${load.acked.length} acknowledged writes are missing`,
      );
      // Nothing unhandled, nothing lost: no slot is left checked out and the pool ends.
      assert.deepEqual(guard.seen, []);
      assert.equal(pool.inspect().counts.active, 0, 'a connection is still checked out');
      assert.ok(pool.totalCount <= POOL_MAX, `the pool holds ${pool.totalCount} connections`);
      // The agent kept observing: no tick threw, healthy again soon, and it saw an outage.
      assert.deepEqual(agent.failures(), []);
      assert.ok(
        agentHealthy !== undefined && (row.agentRecoveryMillis as number) <= AGENT_RECOVERY_LIMIT,
        `the agent was not healthy within ${AGENT_RECOVERY_LIMIT} ms of the fault clearing: ${JSON.stringify(agent.observations.slice(-8))}`,
      );
      if (fault.agentSeesOutage) {
        assert.ok(row.agentUnreachable > 0, 'the agent never observed the server as unreachable');
      }
    } finally {
      if (row) rows.push(row);
      proxy?.resume();
      await load.stop();
      await agent.stop();
      const ended = pool.end().then(() => true);
      const hung = sleep(5000).then(() => false);
      const endedInTime = await Promise.race([ended, hung]);
      await proxy?.close();
      assert.ok(endedInTime, 'pool.end() did not resolve within 5 s');
    }
  }

  for (const mode of ['fast', 'immediate'] as const) {
    it(`server restart (${mode} shutdown)`, () =>
      run({
        name: `restart ${mode}`,
        agentSeesOutage: true,
        async inject({ server }) {
          await server.stop(mode);
          await sleep(DOWNTIME);
          await server.start();
          return performance.now();
        },
      }));
  }

  it('pg_terminate_backend of every pool connection', () =>
    run({
      name: 'terminate',
      async inject({ server, app }) {
        const admin = new pg.Client({ connectionString: server.url, application_name: 'chaos-admin' });
        admin.on('error', () => {});
        await admin.connect();
        try {
          const res = await admin.query<{ pid: number }>(
            // In the target list, so it only runs for the pool's own backends.
            'SELECT pid, pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1',
            [app],
          );
          const pids = res.rows.map((r) => r.pid);
          assert.ok(pids.length > 0, 'the pool had no backend to terminate');
          await waitFor('the terminated backends to exit', async () => {
            const left = await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1::int[])', [
              pids,
            ]);
            return left.rows.length === 0;
          });
          return performance.now();
        } finally {
          await admin.end();
        }
      },
    }));

  it('network stall of 5 s (a loopback TCP proxy stops forwarding)', () =>
    run({
      name: 'stall 5s',
      viaProxy: true,
      async inject({ proxy }) {
        const p = proxy as TcpProxy;
        assert.ok(p.connections > 0, 'nothing connects through the proxy');
        p.stall();
        await sleep(STALL);
        p.resume();
        return performance.now();
      },
    }));

  it('another client takes every free connection slot for 5 s', () =>
    run({
      name: 'slot hog',
      // Connections are recycled every second or so: replacing them needs free slots.
      poolOptions: { maxLifetimeSeconds: 1 },
      async inject({ server }) {
        const hog: pg.Client[] = [];
        let full = 0;
        const grab = async (): Promise<void> => {
          const client = new pg.Client({ connectionString: server.url, application_name: 'chaos-hog' });
          client.on('error', () => {});
          try {
            await client.connect();
            hog.push(client);
          } catch (err) {
            assert.equal(
              (err as { code?: string }).code,
              '53300',
              `the hog failed to connect: ${String(err)}`,
            );
            full++;
            await client.end().catch(() => undefined);
          }
        };
        try {
          // Take every free slot, then keep taking each one that frees up.
          while (full === 0) await grab();
          const until = performance.now() + HOG_HOLD;
          while (performance.now() < until) {
            await grab();
            await sleep(20);
          }
          assert.ok(hog.length > 0);
        } finally {
          await Promise.all(hog.map((c) => c.end().catch(() => undefined)));
        }
        return performance.now();
      },
    }));
});
