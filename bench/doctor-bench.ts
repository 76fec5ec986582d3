/**
 * How long one doctor snapshot takes as the server fills up. Prints one markdown table: wall time
 * of `PostgresProbe.snapshot()` (one held connection) and of `diagnose()` at 50, 200, 500 and 1000
 * client sessions — a mix of idle, active (pg_sleep), idle in transaction, and 20 sessions waiting
 * in lock chains — on an embedded PostgreSQL on 127.0.0.1.
 *
 *   node --import tsx bench/doctor-bench.ts [--quick]
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { startPostgres } from '@pgwarden/testkit';
import pg from 'pg';
import { diagnose } from '../packages/warden/src/diagnose/index.js';
import { PostgresProbe } from '../packages/warden/src/probe/postgres.js';

const quick = process.argv.includes('--quick');
const LEVELS = quick ? [50, 200] : [50, 200, 500, 1000];
const SNAPSHOTS = quick ? 5 : 15;
const LOCK_WAITERS = 20;
const CHAINS = 4;

interface Row {
  sessions: number;
  seen: number;
  probeMedian: number;
  probeP95: number;
  diagnoseMedian: number;
  findings: number;
  pgwardenConnections: number;
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

async function main(): Promise<void> {
  const server = await startPostgres({
    settings: { max_connections: 1100, shared_buffers: '128MB', max_locks_per_transaction: 128 },
  });
  const clients: pg.Client[] = [];
  const pending: Promise<unknown>[] = [];
  const open = async (application: string): Promise<pg.Client> => {
    const c = new pg.Client({ connectionString: server.url, application_name: application });
    c.on('error', () => {});
    await c.connect();
    clients.push(c);
    return c;
  };
  const probe = new PostgresProbe(server.url);
  const rows: Row[] = [];
  let version = '';
  try {
    const setup = await open('bench-setup');
    await setup.query('CREATE TABLE bench_locks (id int PRIMARY KEY, v int)');
    await setup.query('INSERT INTO bench_locks SELECT g, 0 FROM generate_series(1, $1) g', [CHAINS]);
    // The lock chains: one root per chain holds its row, five sessions queue behind it.
    for (let chain = 1; chain <= CHAINS; chain++) {
      const root = await open('bench-lock-root');
      await root.query('BEGIN');
      await root.query('UPDATE bench_locks SET v = v + 1 WHERE id = $1', [chain]);
      for (let i = 0; i < LOCK_WAITERS / CHAINS; i++) {
        const waiter = await open('bench-lock-waiter');
        pending.push(
          waiter.query('UPDATE bench_locks SET v = v + 1 WHERE id = $1', [chain]).catch(() => undefined),
        );
      }
    }
    for (const level of LEVELS) {
      // Top up to `level` client sessions: 40% idle, 20% active, 20% idle in transaction, rest idle.
      const missing = level - clients.length;
      const batch: Promise<void>[] = [];
      for (let i = 0; i < missing; i++) {
        const kind = i % 5;
        batch.push(
          open(`bench-${['idle', 'idle', 'active', 'idle-in-tx', 'idle'][kind]}`).then(async (c) => {
            if (kind === 2) pending.push(c.query('SELECT pg_sleep(600)').catch(() => undefined));
            if (kind === 3) await c.query('BEGIN; SELECT 1');
          }),
        );
        if (batch.length >= 50) await Promise.all(batch.splice(0));
      }
      await Promise.all(batch);
      version = (await probe.snapshot()).server.version; // warm-up
      const probeTimes: number[] = [];
      const diagnoseTimes: number[] = [];
      let seen = 0;
      let findings = 0;
      for (let i = 0; i < SNAPSHOTS; i++) {
        const t0 = performance.now();
        const snap = await probe.snapshot();
        const t1 = performance.now();
        const d = diagnose(snap);
        const t2 = performance.now();
        probeTimes.push(t1 - t0);
        diagnoseTimes.push(t2 - t1);
        seen = snap.connections.total;
        findings = d.findings.length;
      }
      const count = await setup.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgwarden'",
      );
      rows.push({
        sessions: level,
        seen,
        probeMedian: quantile(probeTimes, 0.5),
        probeP95: quantile(probeTimes, 0.95),
        diagnoseMedian: quantile(diagnoseTimes, 0.5),
        findings,
        pgwardenConnections: count.rows[0]?.n ?? -1,
      });
    }
  } finally {
    await probe.close();
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await Promise.allSettled(pending);
    await server.destroy();
  }
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  console.log(
    `node ${process.version} · ${cpu} · ${os.cpus().length} cores · PostgreSQL ${version} on 127.0.0.1 · ${new Date().toISOString().slice(0, 16)} UTC`,
  );
  console.log(
    `median and p95 of ${SNAPSHOTS} snapshots per level; sessions = client backends opened (≈40% idle, 20% active, 20% idle in transaction, ${LOCK_WAITERS} waiting in ${CHAINS} lock chains)\n`,
  );
  console.log(
    '| client sessions | seen by probe | snapshot median ms | snapshot p95 ms | diagnose median ms | findings | pgwarden connections |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(
      `| ${r.sessions} | ${r.seen} | ${r.probeMedian.toFixed(1)} | ${r.probeP95.toFixed(1)} | ${r.diagnoseMedian.toFixed(2)} | ${r.findings} | ${r.pgwardenConnections} |`,
    );
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
