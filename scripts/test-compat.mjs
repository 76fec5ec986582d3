// PostgreSQL compatibility run: the probe, diagnose and doctor tests (every packages/*/src/**/*.test.ts
// whose path contains "probe", "diagnose" or "doctor") once per PostgreSQL major, each run through
// scripts/test.mjs with PGWARDEN_TEST_PG_VERSION=<major> (binaries other than the testkit's own major
// are installed into ~/.cache/pgwarden/postgres on first use), then a summary table.
//
//   node scripts/test-compat.mjs                    every supported major, 12 to 18
//   node scripts/test-compat.mjs --versions 12,18   only these
//   node scripts/test-compat.mjs --if-present       exit 0 (saying so) when no test file matches
//   other arguments starting with "-" go to `node --test` (e.g. --test-name-pattern=x)
//
// Needs the testkit built (npm run test:compat builds first). Exits 1 when no test file matches (unless
// --if-present), or when any major had a failing test or a failed run.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { findTests, root, selectTests } from './find-tests.mjs';

const PATTERNS = ['probe', 'diagnose', 'doctor'];
const ALL_MAJORS = [12, 13, 14, 15, 16, 17, 18];

function usage(message) {
  console.error(
    `${message}\nusage: node scripts/test-compat.mjs [--versions 12,18] [--if-present] [node --test options]`,
  );
  process.exit(2);
}

const argv = process.argv.slice(2);
let majors = ALL_MAJORS;
let ifPresent = false;
const nodeArgs = [];
for (let i = 0; i < argv.length; i++) {
  const arg = argv[i];
  if (arg === '--versions' || arg.startsWith('--versions=')) {
    const value = arg === '--versions' ? argv[++i] : arg.slice('--versions='.length);
    if (!value) usage('--versions needs a list, e.g. --versions 12,18');
    const list = value
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean);
    majors = [];
    for (const v of list) {
      const major = /^\d+$/.test(v) ? Number(v) : Number.NaN;
      if (!ALL_MAJORS.includes(major))
        usage(`not a supported PostgreSQL major: ${v} (${ALL_MAJORS.join(', ')})`);
      if (!majors.includes(major)) majors.push(major);
    }
    if (majors.length === 0) usage('--versions needs at least one major');
  } else if (arg === '--if-present') {
    ifPresent = true;
  } else if (arg.startsWith('-')) {
    nodeArgs.push(arg);
  } else {
    usage(`unexpected argument: ${arg}`);
  }
}

const files = selectTests(findTests(), PATTERNS);
if (files.length === 0) {
  const message = `no test file under packages/*/src matches ${PATTERNS.join(', ')}: no compatibility tests to run`;
  if (ifPresent) {
    console.log(`# ${message} (skipped)`);
    process.exit(0);
  }
  console.error(message);
  process.exit(1);
}
console.log(
  `# PostgreSQL compatibility: ${files.length} test file${files.length === 1 ? '' : 's'} on ${majors.join(', ')}`,
);
for (const f of files) console.log(`#   ${f}`);

let child;
let signalled;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (signalled) process.exit(128 + (constants.signals[sig] ?? 1));
    signalled = sig;
    if (child && child.exitCode === null && child.signalCode === null) child.kill(sig);
  });
}

/** Runs the compat tests on one major; resolves with its outcome, echoing its output as it comes. */
function runOn(major) {
  const env = { ...process.env, PGWARDEN_TEST_PG_VERSION: String(major) };
  delete env.PGWARDEN_TEST_DATABASE_URL;
  const hasReporter = nodeArgs.some((a) => a.startsWith('--test-reporter'));
  const started = performance.now();
  return new Promise((resolve) => {
    child = spawn(
      process.execPath,
      [
        'scripts/test.mjs',
        // The spec reporter's closing lines ("ℹ pass 3") are what the table is made of.
        ...(hasReporter ? [] : ['--test-reporter=spec']),
        ...nodeArgs,
        ...PATTERNS,
      ],
      { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => process.stderr.write(chunk));
    const finish = (code, signal) => {
      const seconds = (performance.now() - started) / 1000;
      const count = (name) => {
        const matches = [...stdout.matchAll(new RegExp(`^[ℹ#] ${name} (\\d+)$`, 'gm'))];
        const last = matches.at(-1);
        return last ? Number(last[1]) : undefined;
      };
      const server = /^# embedded PostgreSQL (\S+) on /m.exec(stdout)?.[1] ?? '-';
      const pass = count('pass');
      const fail = (count('fail') ?? 0) + (count('cancelled') ?? 0);
      const skip = (count('skipped') ?? 0) + (count('todo') ?? 0);
      resolve({ major, server, pass: pass ?? 0, fail, skip, seconds, code, signal });
    };
    child.on('error', (err) => {
      console.error(`could not run scripts/test.mjs: ${err.message}`);
      finish(1, null);
    });
    child.on('exit', finish);
  });
}

const results = [];
for (const major of majors) {
  if (signalled) break;
  console.log(`\n## PostgreSQL ${major}`);
  results.push(await runOn(major));
}

// A major whose run failed outside any test (the server did not start, the runner crashed) counts as
// one failure, so that the closing line never says "0 failed" for a failed run.
const rows = results.map((r) => {
  const ok = r.code === 0 && r.signal === null && r.fail === 0;
  const fail = !ok && r.fail === 0 ? 1 : r.fail;
  const result = ok
    ? 'ok'
    : r.fail > 0
      ? 'FAILED'
      : r.signal
        ? `killed (${r.signal})`
        : `run failed (exit ${r.code})`;
  return { ...r, fail, ok, result };
});

const header = ['version', 'server', 'pass', 'fail', 'skip', 'seconds', 'result'];
const table = rows.map((r) => [
  String(r.major),
  r.server,
  String(r.pass),
  String(r.fail),
  String(r.skip),
  r.seconds.toFixed(1),
  r.result,
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
const numeric = new Set([2, 3, 4, 5]);
const line = (cells) =>
  cells
    .map((c, i) => (numeric.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
    .join('  ')
    .trimEnd();
console.log(`\n# PostgreSQL compatibility (${files.length} file${files.length === 1 ? '' : 's'})`);
console.log(line(header));
for (const row of table) console.log(line(row));
const passed = rows.reduce((n, r) => n + r.pass, 0);
const failed = rows.reduce((n, r) => n + r.fail, 0);
const skipped = rows.reduce((n, r) => n + r.skip, 0);
console.log(`compat: ${passed} passed, ${failed} failed, ${skipped} skipped`);

if (signalled) process.exit(128 + (constants.signals[signalled] ?? 1));
process.exit(rows.every((r) => r.ok) && rows.length === majors.length ? 0 : 1);
