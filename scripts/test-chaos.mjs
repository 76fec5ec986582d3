// The chaos suite: every chaos/**/*.test.ts (outside packages/*/src, so scripts/test.mjs never runs
// them) with Node's test runner through tsx, one file at a time. Each file starts its own embedded
// PostgreSQL (it restarts and fills that server) and destroys it when done; the testkit's exit hooks
// and watchdog remove it even when a test process fails or is killed.
//
//   node scripts/test-chaos.mjs                 every chaos test file
//   node scripts/test-chaos.mjs stall           only files whose path contains "stall"
//   arguments starting with "-" go to `node --test` (e.g. --test-name-pattern=restart)
//
// Needs the workspace built (npm run test:chaos builds first). Exits with the test runner's exit code.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import { root, selectTests } from './find-tests.mjs';

const args = process.argv.slice(2);
const nodeArgs = args.filter((a) => a.startsWith('-'));
const filters = args.filter((a) => !a.startsWith('-'));

function findChaosTests() {
  const found = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && entry.name.endsWith('.test.ts')) found.push(full);
    }
  };
  walk(path.join(root, 'chaos'));
  return found.map((f) => path.relative(root, f).split(path.sep).join('/')).sort();
}

const files = selectTests(findChaosTests(), filters);
if (files.length === 0) {
  console.error(filters.length ? `no chaos test file matches ${filters.join(', ')}` : 'no chaos test files');
  process.exit(1);
}

function exitCodeOf(code, signal) {
  if (code !== null) return code;
  return 128 + (constants.signals[signal] ?? 1);
}

let signalled;
const hasTimeout = nodeArgs.some((a) => a.startsWith('--test-timeout'));
const started = performance.now();
const child = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=1',
    ...(hasTimeout ? [] : ['--test-timeout=240000']),
    ...nodeArgs,
    ...files,
  ],
  { cwd: root, stdio: 'inherit' },
);

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (signalled) process.exit(exitCodeOf(null, sig));
    signalled = sig;
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  });
}

const [code, signal] = await new Promise((resolve) => {
  child.on('error', (err) => {
    console.error(`could not run the test runner: ${err.message}`);
    resolve([1, null]);
  });
  child.on('exit', (c, s) => resolve([c, s]));
});
console.log(
  `# chaos suite: ${files.length} file(s) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
process.exit(signalled ? exitCodeOf(null, signalled) : exitCodeOf(code, signal));
