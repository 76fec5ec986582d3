/**
 * What watching costs: the agent (`pgwarden watch`, 1 s polling, observe mode) runs in its own
 * process against an embedded PostgreSQL holding 500 client sessions (idle, active, idle in
 * transaction, lock waiters). Prints one table: the agent's CPU as a share of one core, and the
 * server time its own statements cost (pg_stat_statements, the agent's role only).
 *
 *   node --import tsx bench/agent-bench.ts [--quick]
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { startPostgres } from '@pgwarden/testkit';
import pg from 'pg';
import { parseConfig } from '../packages/warden/src/agent/config.js';
import { Watcher } from '../packages/warden/src/agent/watch.js';

const CHILD = 'PGWARDEN_AGENT_BENCH_CHILD';
const quick = process.argv.includes('--quick');
const SESSIONS = 500;
const SECONDS = quick ? 10 : 60;

/** The child: run the agent for `seconds`, then print its CPU time and tick count. */
async function child(url: string, seconds: number): Promise<void> {
  const config = parseConfig({
    databases: [{ name: 'bench', url }],
    interval: 1,
    store: ':memory:',
    mode: 'observe',
  });
  const watcher = new Watcher({ config, env: {}, log: () => {} });
  await watcher.start();
  const warm = 3000;
  await new Promise((r) => setTimeout(r, warm));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - t0;
  const seen = watcher.latest.get('bench')?.snapshot?.connections.total ?? 0;
  await watcher.stop();
  console.log(JSON.stringify({ userMs: cpu.user / 1000, systemMs: cpu.system / 1000, wallMs: wall, seen }));
}

async function main(): Promise<void> {
  const childArgs = process.env[CHILD];
  if (childArgs) {
    const { url, seconds } = JSON.parse(childArgs) as { url: string; seconds: number };
    await child(url, seconds);
    return;
  }
  const server = await startPostgres({ settings: { max_connections: 700, shared_buffers: '128MB' } });
  const clients: pg.Client[] = [];
  const pending: Promise<unknown>[] = [];
  try {
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    clients.push(admin);
    const password = Math.random().toString(36).slice(2);
    await admin.query(`CREATE ROLE pgwarden_agent LOGIN PASSWORD '${password}' IN ROLE pg_monitor`);
    await admin.query('CREATE TABLE bench_locks (id int PRIMARY KEY, v int)');
    await admin.query('INSERT INTO bench_locks SELECT g, 0 FROM generate_series(1, 4) g');
    const open = async (app: string) => {
      const c = new pg.Client({ connectionString: server.url, application_name: app });
      c.on('error', () => {});
      await c.connect();
      clients.push(c);
      return c;
    };
    for (let chain = 1; chain <= 4; chain++) {
      const root = await open('bench-root');
      await root.query('BEGIN');
      await root.query('UPDATE bench_locks SET v = v + 1 WHERE id = $1', [chain]);
      for (let i = 0; i < 5; i++) {
        const w = await open('bench-waiter');
        pending.push(
          w.query('UPDATE bench_locks SET v = v + 1 WHERE id = $1', [chain]).catch(() => undefined),
        );
      }
    }
    const batch: Promise<void>[] = [];
    for (let i = clients.length; i < SESSIONS; i++) {
      const kind = i % 5;
      batch.push(
        open(`bench-${kind}`).then(async (c) => {
          if (kind === 2) pending.push(c.query('SELECT pg_sleep(3600)').catch(() => undefined));
          if (kind === 3) await c.query('BEGIN; SELECT 1');
        }),
      );
      if (batch.length >= 50) await Promise.all(batch.splice(0));
    }
    await Promise.all(batch);
    await admin.query('SELECT pg_stat_statements_reset()');
    const agentUrl = new URL(server.url);
    agentUrl.username = 'pgwarden_agent';
    agentUrl.password = password;
    const run = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url)], {
      env: { ...process.env, [CHILD]: JSON.stringify({ url: agentUrl.toString(), seconds: SECONDS }) },
      encoding: 'utf8',
      timeout: (SECONDS + 60) * 1000,
    });
    if (run.status !== 0) throw new Error(`agent run failed: ${run.stderr}`);
    const result = JSON.parse(run.stdout.trim().split('\n').pop() as string) as {
      userMs: number;
      systemMs: number;
      wallMs: number;
      seen: number;
    };
    const server_ = await admin.query<{ ms: number; calls: number }>(
      `SELECT coalesce(sum(total_exec_time), 0)::float8 AS ms, coalesce(sum(calls), 0)::int AS calls
         FROM pg_stat_statements WHERE userid = (SELECT oid FROM pg_roles WHERE rolname = 'pgwarden_agent')`,
    );
    const agentSeconds = SECONDS + 3; // the server counts the warm-up too
    const cpuShare = (result.userMs + result.systemMs) / result.wallMs;
    const serverMs = server_.rows[0]?.ms ?? 0;
    const calls = server_.rows[0]?.calls ?? 0;
    console.log(
      `node ${process.version} · ${os.cpus()[0]?.model ?? 'cpu'} · ${os.cpus().length} cores · PostgreSQL ${server.version} · ${new Date().toISOString().slice(0, 16)} UTC`,
    );
    console.log(
      `agent in its own process, 1 s polling, observe mode, measured over ${SECONDS} s after a 3 s warm-up\n`,
    );
    console.log(
      '| client sessions | seen by agent | agent CPU (% of one core) | agent statements/s | server time of its statements (ms/s) | server share of one core |',
    );
    console.log('|---:|---:|---:|---:|---:|---:|');
    console.log(
      `| ${SESSIONS} | ${result.seen} | ${(cpuShare * 100).toFixed(2)}% | ${(calls / agentSeconds).toFixed(1)} | ${(serverMs / agentSeconds).toFixed(2)} | ${((serverMs / agentSeconds / 1000) * 100).toFixed(2)}% |`,
    );
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await Promise.allSettled(pending);
    await server.destroy();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
