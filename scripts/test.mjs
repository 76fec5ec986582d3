// Runs every packages/*/src/**/*.test.ts with Node's test runner (through tsx) against ONE embedded
// PostgreSQL server started here, unless PGWARDEN_TEST_DATABASE_URL is already set.
//
//   node scripts/test.mjs                      all test files
//   node scripts/test.mjs pool breaker         only files whose path contains "pool" or "breaker"
//   node scripts/test.mjs --test-name-pattern=x   arguments starting with "-" go to `node --test`
//   PGWARDEN_TEST_PG_VERSION=12 node scripts/test.mjs   against PostgreSQL 12 (12 to 18; installed into
//                                              ~/.cache/pgwarden/postgres on first use, see the testkit)
//
// Needs the testkit built (npm run build). Exits with the test runner's exit code.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { findTests, root, selectTests } from './find-tests.mjs';

const args = process.argv.slice(2);
const nodeArgs = args.filter((a) => a.startsWith('-'));
const filters = args.filter((a) => !a.startsWith('-'));

const all = findTests();
const files = selectTests(all, filters);
if (files.length === 0) {
  console.error(
    filters.length ? `no test file matches ${filters.join(', ')}` : 'no test files under packages/*/src',
  );
  process.exit(1);
}

let server;
let child;
let signalled;

function exitCodeOf(code, signal) {
  if (code !== null) return code;
  return 128 + (constants.signals[signal] ?? 1);
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (signalled) {
      // Second signal: give up waiting. The testkit's exit hook still removes the server.
      process.exit(exitCodeOf(null, sig));
    }
    signalled = sig;
    if (child && child.exitCode === null && child.signalCode === null) child.kill(sig);
    else process.exit(exitCodeOf(null, sig));
  });
}

const env = { ...process.env };
if (!env.PGWARDEN_TEST_DATABASE_URL) {
  const { startPostgres, testPostgresVersion } = await import('@pgwarden/testkit');
  let version;
  try {
    version = testPostgresVersion();
  } catch (err) {
    console.error(err.message);
    process.exit(1);
  }
  const started = performance.now();
  try {
    server = await startPostgres(version === undefined ? {} : { version });
  } catch (err) {
    console.error(`could not start PostgreSQL ${version ?? '(the testkit default)'}: ${err.message}`);
    process.exit(1);
  }
  if (signalled) {
    await server.destroy();
    process.exit(exitCodeOf(null, signalled));
  }
  env.PGWARDEN_TEST_DATABASE_URL = server.url;
  console.log(
    `# embedded PostgreSQL ${server.version} on ${server.host}:${server.port} ready in ${Math.round(performance.now() - started)} ms` +
      ` (binaries ${server.timings.binariesMs} ms, initdb ${server.timings.initdbMs} ms, start ${server.timings.firstStartMs} ms,` +
      ` pg_stat_statements ${server.pgStatStatements ? 'on' : 'off'})`,
  );
} else if (env.PGWARDEN_TEST_PG_VERSION?.trim()) {
  // The tests would silently run against whatever that URL points at, not the version asked for.
  console.error('PGWARDEN_TEST_PG_VERSION and PGWARDEN_TEST_DATABASE_URL are both set: unset one of them');
  process.exit(1);
} else {
  console.log('# using PGWARDEN_TEST_DATABASE_URL from the environment');
}

const hasTimeout = nodeArgs.some((a) => a.startsWith('--test-timeout'));
child = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=2',
    ...(hasTimeout ? [] : ['--test-timeout=300000']),
    ...nodeArgs,
    ...files,
  ],
  { cwd: root, env, stdio: 'inherit' },
);

const [code, signal] = await new Promise((resolve) => {
  child.on('error', (err) => {
    console.error(`could not run the test runner: ${err.message}`);
    resolve([1, null]);
  });
  child.on('exit', (c, s) => resolve([c, s]));
});

if (server) await server.destroy();
process.exit(signalled ? exitCodeOf(null, signalled) : exitCodeOf(code, signal));
