// Runs every packages/*/src/**/*.test.ts with Node's test runner (through tsx) against ONE embedded
// PostgreSQL server started here, unless PGWARDEN_TEST_DATABASE_URL is already set.
//
//   node scripts/test.mjs                      all test files
//   node scripts/test.mjs pool breaker         only files whose path contains "pool" or "breaker"
//   node scripts/test.mjs --test-name-pattern=x   arguments starting with "-" go to `node --test`
//
// Needs the testkit built (npm run build). Exits with the test runner's exit code.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const nodeArgs = args.filter((a) => a.startsWith('-'));
const filters = args.filter((a) => !a.startsWith('-'));

function findTests() {
  const found = [];
  const walk = (dir) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (entry.name === 'node_modules' || entry.name === 'dist') continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && entry.name.endsWith('.test.ts')) found.push(full);
    }
  };
  const packages = path.join(root, 'packages');
  for (const pkg of readdirSync(packages, { withFileTypes: true })) {
    if (pkg.isDirectory()) walk(path.join(packages, pkg.name, 'src'));
  }
  return found.map((f) => path.relative(root, f).split(path.sep).join('/')).sort();
}

const all = findTests();
const files = filters.length ? all.filter((f) => filters.some((s) => f.includes(s))) : all;
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
  const { startPostgres } = await import('@pgwarden/testkit');
  const started = performance.now();
  server = await startPostgres();
  if (signalled) {
    await server.destroy();
    process.exit(exitCodeOf(null, signalled));
  }
  env.PGWARDEN_TEST_DATABASE_URL = server.url;
  console.log(
    `# embedded PostgreSQL on ${server.host}:${server.port} ready in ${Math.round(performance.now() - started)} ms` +
      ` (initdb ${server.timings.initdbMs} ms, start ${server.timings.firstStartMs} ms,` +
      ` pg_stat_statements ${server.pgStatStatements ? 'on' : 'off'})`,
  );
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
