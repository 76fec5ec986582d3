import { testDatabaseUrl } from '@pgwarden/testkit';
import { Pool } from './pool.js';
const url = await testDatabaseUrl();
const pool = new Pool({ connectionString: url, name: 'x', max: 8 });
const queries: Promise<unknown>[] = [];
for (let i = 0; i < 1000; i++) queries.push(pool.query('SELECT pg_sleep(0.005)') as Promise<unknown>);
while (pool.totalCount < 8 || pool._connecting > 0) await new Promise((r) => setTimeout(r, 2));
console.log('full', pool.totalCount, pool.waitingCount);
pool.resize({ max: 2 });
const t0 = performance.now();
let done = false;
Promise.all(queries).then(() => {
  done = true;
});
while (!done) {
  console.log(
    Math.round(performance.now() - t0),
    'total',
    pool.totalCount,
    'waiting',
    pool.waitingCount,
    'active',
    pool.activeCount,
  );
  await new Promise((r) => setTimeout(r, 50));
}
console.log(pool.inspect().stats.closed);
await pool.end();
process.exit(0);
