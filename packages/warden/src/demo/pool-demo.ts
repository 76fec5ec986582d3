/**
 * `npm start` (for now): starts an embedded PostgreSQL, runs a small VitalStream-like workload through
 * @pgwarden/pool, provokes the two things the runbook fears (a leaked connection, an exhausted pool),
 * and prints what the pool says about them: the diagnosing timeout error, `inspect()` and metrics.
 */
import { type EmbeddedServer, startPostgres } from '@pgwarden/testkit';
import { Pool, isAcquireTimeoutError } from '@pgwarden/pool';
import { Registry } from 'prom-client';

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (s: string) => console.log(`\n${bold(`== ${s}`)}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ingestVitals(pool: Pool, seconds: number, writers: number): Promise<number> {
  const until = Date.now() + seconds * 1000;
  let written = 0;
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      while (Date.now() < until) {
        await pool.query('INSERT INTO vitals (patient_id, heart_rate, spo2) VALUES ($1, $2, $3)', [
          (w % 10) + 1,
          60 + Math.round(Math.random() * 40),
          94 + Math.round(Math.random() * 5),
        ]);
        written++;
      }
    }),
  );
  return written;
}

/** A handler that forgets to release its connection: the bug behind most exhausted pools. */
async function leakyReportHandler(pool: Pool): Promise<void> {
  const client = await pool.connect();
  await client.query('SELECT count(*) FROM vitals WHERE patient_id = $1', [3]);
  // no client.release(): the connection stays checked out
}

async function main(): Promise<void> {
  step('starting an embedded PostgreSQL on 127.0.0.1');
  const server: EmbeddedServer = await startPostgres();
  console.log(`PostgreSQL ready on 127.0.0.1:${server.port}`);
  const registry = new Registry();
  const pool = new Pool({
    connectionString: server.url,
    name: 'vitals-api',
    service: 'vitalstream',
    max: 4,
    maxOverflow: 2,
    min: 2,
    connectionTimeoutMillis: 1500,
    leakDetectionThresholdMillis: 1000,
    captureSites: 'always',
    statementTimeoutMillis: 5000,
    idleInTransactionTimeoutMillis: 10_000,
    metrics: { registry, environment: 'demo' },
  });
  pool.on('leak', (leak) =>
    console.log(
      `leak detected: pid ${leak.pid} held ${Math.round(leak.heldMillis)}ms, taken at ${leak.site}`,
    ),
  );
  pool.on('leakReturned', () => {});
  let exitCode = 0;
  try {
    await pool.query(
      'CREATE TABLE IF NOT EXISTS vitals (id bigserial PRIMARY KEY, patient_id int NOT NULL, heart_rate int, spo2 int, recorded_at timestamptz NOT NULL DEFAULT now())',
    );
    step('ingesting vital signs: 16 writers for 2 s through a pool of max 4 + 2 overflow');
    const written = await ingestVitals(pool, 2, 16);
    console.log(`wrote ${written} rows; pool now total=${pool.totalCount} idle=${pool.idleCount}`);

    step('a handler leaks connections');
    await leakyReportHandler(pool);
    await leakyReportHandler(pool);
    await leakyReportHandler(pool);
    await leakyReportHandler(pool);
    await sleep(1300);

    step('the pool is exhausted: the next caller times out, and the error says who holds the connections');
    const holders = await Promise.all([pool.connect(), pool.connect()]);
    try {
      await pool.query('SELECT 1');
    } catch (err) {
      if (!isAcquireTimeoutError(err)) throw err;
      console.log(err.message);
    }
    for (const c of holders) c.release();

    step('pool.inspect()');
    const view = pool.inspect();
    console.log(
      JSON.stringify(
        { counts: view.counts, usage: view.usage, checkouts: view.checkouts, stats: view.stats },
        null,
        2,
      ),
    );

    step('Prometheus metrics (database_*)');
    const text = await registry.metrics();
    console.log(
      text
        .split('\n')
        .filter((l) => l.startsWith('database_') && !l.includes('_bucket'))
        .join('\n'),
    );
  } catch (err) {
    exitCode = 1;
    console.error(err);
  } finally {
    await Promise.race([pool.end(), sleep(2000)]);
    await server.destroy();
  }
  step(exitCode === 0 ? 'done: server stopped and removed' : 'failed');
  process.exitCode = exitCode;
}

main();
