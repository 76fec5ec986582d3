/**
 * Connection-pool benchmark. Prints one markdown table, then exits.
 *
 *   (a) acquire+release cycles per second with an in-process stub client (no I/O), pool max 10,
 *       at 1, 10 and 100 concurrent workers, each looping `const c = await pool.connect(); c.release()`.
 *   (b) `SELECT 1` queries per second and p99 latency against an embedded PostgreSQL on 127.0.0.1,
 *       64 concurrent callers, each looping `await pool.query('SELECT 1')`.
 *
 * Every measurement runs for a fixed time after a warm-up, on a fresh pool ((a): in a fresh node
 * process). Rounds interleave the implementations (the order rotates each round) so slow drifts of
 * the machine hit all of them alike, and the table reports the median over rounds.
 *
 *   node --import tsx bench/pool-bench.ts [--quick] [--only a|b]
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from '@pgwarden/pool';
import { startPostgres } from '@pgwarden/testkit';
import genericPool from 'generic-pool';
import pg from 'pg';
import PgPool from 'pg-pool';
import postgres from 'postgres';
import { Registry } from 'prom-client';
import tarn from 'tarn';
import { StubClient } from './stub-client.js';

// ─── settings ────────────────────────────────────────────────────────────────────────────────────

type Section = 'a' | 'b';

interface Phase {
  warmupMs: number;
  measureMs: number;
  rounds: number;
}

interface Settings {
  sections: Section[];
  phases: Record<Section, Phase>;
}

const FULL: Record<Section, Phase> = {
  a: { warmupMs: 300, measureMs: 1500, rounds: 5 },
  b: { warmupMs: 500, measureMs: 3000, rounds: 3 },
};
const QUICK: Record<Section, Phase> = {
  a: { warmupMs: 100, measureMs: 400, rounds: 3 },
  b: { warmupMs: 300, measureMs: 1000, rounds: 2 },
};

const STUB_POOL_MAX = 10;
const STUB_CONCURRENCY = [1, 10, 100];
const QUERY_CALLERS = 64;
const LOOPBACK = '127.0.0.1';

function parseSettings(argv: string[]): Settings {
  const { values } = parseArgs({
    args: argv,
    options: { quick: { type: 'boolean', default: false }, only: { type: 'string' } },
  });
  const only = values.only;
  if (only !== undefined && only !== 'a' && only !== 'b') {
    throw new Error(`--only takes "a" or "b", not "${only}"`);
  }
  return { sections: only ? [only] : ['a', 'b'], phases: values.quick ? QUICK : FULL };
}

// ─── @pgwarden/pool construction: the one place to adjust if its option names change ─────────────

interface DatabaseAddress {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

const pgwarden = {
  /** (a) defaults, stub client. */
  stubDefaults: () => new Pool({ max: STUB_POOL_MAX, Client: StubClient }),

  /** (a) Prometheus metrics and leak detection switched on, stub client. */
  stubInstrumented: () =>
    new Pool({
      max: STUB_POOL_MAX,
      Client: StubClient,
      leakDetectionThresholdMillis: 30_000,
      metrics: { registry: new Registry() },
    }),

  /** (b) a real PostgreSQL, optionally pipelining queries on each connection. */
  database: (address: DatabaseAddress, max: number, pipeline: boolean) =>
    new Pool({ ...address, max, ...(pipeline ? { pipeline: true } : {}) }),
};

// ─── measurement ─────────────────────────────────────────────────────────────────────────────────

/** The part of the run that counts, in `performance.now()` milliseconds. */
interface Window {
  start: number;
  end: number;
}

interface Tally {
  ops: number;
  latenciesMs: number[];
}

interface Run {
  opsPerSec: number;
  p99Ms: number | undefined;
}

/**
 * Starts `workers` copies of `work` and resolves once all of them have seen the window close.
 * Workers check the clock themselves after every operation: an acquire that resolves without ever
 * leaving the microtask queue would starve a timer-based stop signal.
 */
async function runWorkers(
  workers: number,
  phase: Phase,
  work: (window: Window) => Promise<void>,
): Promise<Window> {
  const start = performance.now() + phase.warmupMs;
  const window = { start, end: start + phase.measureMs };
  await Promise.all(Array.from({ length: workers }, () => work(window)));
  return window;
}

function toRun(tally: Tally, window: Window): Run {
  return {
    opsPerSec: (tally.ops * 1000) / (window.end - window.start),
    p99Ms: tally.latenciesMs.length > 0 ? percentile(tally.latenciesMs, 0.99) : undefined,
  };
}

/** Nearest-rank percentile. */
function percentile(samples: number[], fraction: number): number {
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.max(1, Math.ceil(fraction * sorted.length));
  return sorted[rank - 1] as number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Lets pending closes finish and, when node runs with --expose-gc, collects garbage between runs. */
async function settle(): Promise<void> {
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((resolve) => setTimeout(resolve, 50));
}

// ─── (a) acquire + release with a stub client ────────────────────────────────────────────────────

/** A pool reduced to what (a) exercises. */
interface Checkout<C> {
  acquire(): Promise<C>;
  release(client: C): void;
  close(): Promise<unknown>;
}

interface StubCandidate {
  name: string;
  create(): Checkout<unknown>;
}

interface PgStyleClient {
  release(err?: Error | boolean): void;
}

interface PgStylePool {
  connect(): Promise<PgStyleClient>;
  end(): Promise<unknown>;
}

function pgStyleCheckout(pool: PgStylePool): Checkout<PgStyleClient> {
  return { acquire: () => pool.connect(), release: (client) => client.release(), close: () => pool.end() };
}

function tarnCheckout(): Checkout<StubClient> {
  const pool = new tarn.Pool<StubClient>({
    min: 0,
    max: STUB_POOL_MAX,
    create: () => connectedStub(),
    destroy: (client) => client.end(),
  });
  return {
    acquire: () => pool.acquire().promise,
    release: (client) => pool.release(client),
    close: () => pool.destroy(),
  };
}

function genericPoolCheckout(): Checkout<StubClient> {
  const pool = genericPool.createPool<StubClient>(
    { create: () => connectedStub(), destroy: (client) => client.end() },
    { min: 0, max: STUB_POOL_MAX },
  );
  return {
    acquire: () => pool.acquire(),
    release: (client) => void pool.release(client),
    close: async () => {
      await pool.drain();
      await pool.clear();
    },
  };
}

async function connectedStub(): Promise<StubClient> {
  const client = new StubClient();
  await client.connect();
  return client;
}

function stubCandidates(): StubCandidate[] {
  return [
    { name: '@pgwarden/pool (defaults)', create: () => pgStyleCheckout(pgwarden.stubDefaults()) },
    {
      name: '@pgwarden/pool (metrics + leak detection)',
      create: () => pgStyleCheckout(pgwarden.stubInstrumented()),
    },
    { name: PG_POOL, create: () => pgStyleCheckout(new PgPool({ max: STUB_POOL_MAX, Client: StubClient })) },
    { name: TARN, create: tarnCheckout },
    { name: GENERIC_POOL, create: genericPoolCheckout },
  ];
}

/**
 * Cycles per clock check: reading the clock costs about as much as a fast pool's whole cycle, so
 * checking it after every cycle would measure the clock more than the pools.
 */
const CYCLES_PER_CHECK = 16;

async function cycleWorker<C>(pool: Checkout<C>, window: Window, tally: Tally): Promise<void> {
  for (;;) {
    for (let i = 0; i < CYCLES_PER_CHECK; i++) {
      const client = await pool.acquire();
      pool.release(client);
    }
    const now = performance.now();
    if (now >= window.end) return;
    if (now >= window.start) tally.ops += CYCLES_PER_CHECK;
  }
}

async function measureCycles(candidate: StubCandidate, workers: number, phase: Phase): Promise<Run> {
  const pool = candidate.create();
  try {
    const tally: Tally = { ops: 0, latenciesMs: [] };
    const window = await runWorkers(workers, phase, (w) => cycleWorker(pool, w, tally));
    return toRun(tally, window);
  } finally {
    await pool.close();
  }
}

/** What a child process is asked to measure (passed in PGWARDEN_BENCH_CHILD). */
interface ChildJob {
  candidate: string;
  workers: number;
  phase: Phase;
}

const CHILD_ENV = 'PGWARDEN_BENCH_CHILD';

/**
 * Runs one (a) measurement in a fresh node process: a pool measured after other pools ran in the
 * same process inherits their garbage and their JIT feedback (the shared worker loop turns
 * megamorphic), which made rounds differ by half.
 */
function measureCyclesIsolated(candidate: StubCandidate, workers: number, phase: Phase): Promise<Run> {
  const job: ChildJob = { candidate: candidate.name, workers, phase };
  const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url)], {
    env: { ...process.env, [CHILD_ENV]: JSON.stringify(job) },
    encoding: 'utf8',
    timeout: (phase.warmupMs + phase.measureMs) * 4 + 30_000,
  });
  if (child.status !== 0) {
    throw new Error(
      `measurement of ${candidate.name} failed: ${(child.stderr || child.error?.message || '').trim()}`,
    );
  }
  return Promise.resolve(JSON.parse(child.stdout.trim().split('\n').pop() as string) as Run);
}

async function runChildJob(raw: string): Promise<void> {
  const job = JSON.parse(raw) as ChildJob;
  const candidate = stubCandidates().find((c) => c.name === job.candidate);
  if (!candidate) throw new Error(`unknown candidate ${job.candidate}`);
  const run = await measureCycles(candidate, job.workers, job.phase);
  console.log(JSON.stringify(run));
}

async function benchStub(phase: Phase, results: Results): Promise<void> {
  const candidates = stubCandidates();
  for (let round = 0; round < phase.rounds; round++) {
    for (const workers of STUB_CONCURRENCY) {
      for (const candidate of rotate(candidates, round)) {
        progress(`(a) round ${round + 1}/${phase.rounds}, ${workers} workers: ${candidate.name}`);
        await results.record('a', candidate.name, workers, () =>
          measureCyclesIsolated(candidate, workers, phase),
        );
      }
    }
  }
}

// ─── (b) SELECT 1 against PostgreSQL ─────────────────────────────────────────────────────────────

interface QueryTarget {
  selectOne(): Promise<unknown>;
  close(): Promise<unknown>;
}

interface QueryCandidate {
  name: string;
  create(address: DatabaseAddress): QueryTarget;
}

interface ErrorEmitter {
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/** An idle connection dying must not crash the benchmark; it shows up as failed queries instead. */
function ignoreIdleErrors<P extends ErrorEmitter>(pool: P): P {
  pool.on('error', () => {});
  return pool;
}

function pgwardenTarget(address: DatabaseAddress, max: number, pipeline: boolean): QueryTarget {
  const pool = ignoreIdleErrors(pgwarden.database(address, max, pipeline));
  // Without a callback, query() returns a promise; its declared type also admits the callback form's undefined.
  return { selectOne: () => pool.query('SELECT 1') as Promise<pg.QueryResult>, close: () => pool.end() };
}

function pgPoolTarget(address: DatabaseAddress): QueryTarget {
  const pool = ignoreIdleErrors(new pg.Pool({ ...address, max: 10 }));
  return { selectOne: () => pool.query('SELECT 1'), close: () => pool.end() };
}

function postgresJsTarget(address: DatabaseAddress): QueryTarget {
  const sql = postgres({ ...address, max: 10, onnotice: () => {} });
  return { selectOne: () => sql`SELECT 1`, close: () => sql.end({ timeout: 5 }) };
}

function queryCandidates(): QueryCandidate[] {
  return [
    { name: '@pgwarden/pool max 10', create: (address) => pgwardenTarget(address, 10, false) },
    { name: PG_POOL_MAIN, create: pgPoolTarget },
    { name: POSTGRES_JS, create: postgresJsTarget },
    { name: '@pgwarden/pool pipeline, max 10', create: (address) => pgwardenTarget(address, 10, true) },
    { name: '@pgwarden/pool pipeline, max 2', create: (address) => pgwardenTarget(address, 2, true) },
  ];
}

async function queryWorker(target: QueryTarget, window: Window, tally: Tally): Promise<void> {
  for (;;) {
    const began = performance.now();
    await target.selectOne();
    const now = performance.now();
    if (now >= window.end) return;
    if (now >= window.start) {
      tally.ops++;
      tally.latenciesMs.push(now - began);
    }
  }
}

async function measureQueries(
  candidate: QueryCandidate,
  address: DatabaseAddress,
  phase: Phase,
): Promise<Run> {
  const target = candidate.create(address);
  try {
    const tally: Tally = { ops: 0, latenciesMs: [] };
    const window = await runWorkers(QUERY_CALLERS, phase, (w) => queryWorker(target, w, tally));
    return toRun(tally, window);
  } finally {
    await target.close();
  }
}

async function benchPostgres(phase: Phase, results: Results, facts: string[]): Promise<void> {
  await withPostgres(async (address) => {
    facts.push(`PostgreSQL ${await serverVersion(address)} on ${address.host}:${address.port}`);
    const candidates = queryCandidates();
    for (let round = 0; round < phase.rounds; round++) {
      for (const candidate of rotate(candidates, round)) {
        progress(`(b) round ${round + 1}/${phase.rounds}: ${candidate.name}`);
        await results.record('b', candidate.name, QUERY_CALLERS, () =>
          measureQueries(candidate, address, phase),
        );
        await settle();
      }
    }
  });
}

async function serverVersion(address: DatabaseAddress): Promise<string> {
  const client = new pg.Client(address);
  await client.connect();
  try {
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    return rows[0]?.server_version ?? 'unknown';
  } finally {
    await client.end();
  }
}

/**
 * Runs `body` against a fresh embedded PostgreSQL and always destroys it afterwards: on success, on
 * error, and on SIGINT/SIGTERM (after which the process exits with 130).
 */
async function withPostgres(body: (address: DatabaseAddress) => Promise<void>): Promise<void> {
  progress('(b) starting PostgreSQL');
  const server = await startPostgres();
  let destroyed: Promise<void> | undefined;
  const destroy = () => {
    destroyed ??= Promise.resolve(server.destroy());
    return destroyed;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping PostgreSQL\n`);
    void destroy().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await body(loopbackAddress(server));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await destroy();
  }
}

/** The connection settings from the test kit, refusing anything but the IPv4 loopback. */
function loopbackAddress(server: DatabaseAddress): DatabaseAddress {
  const host = server.host === 'localhost' ? LOOPBACK : server.host;
  if (host !== LOOPBACK)
    throw new Error(`refusing to benchmark against ${server.host}: only ${LOOPBACK} is allowed`);
  const { port, user, password, database } = server;
  return { host, port, user, password, database };
}

// ─── results ─────────────────────────────────────────────────────────────────────────────────────

const PG_POOL = `pg-pool ${installedVersion('pg-pool')}`;
const TARN = `tarn ${installedVersion('tarn')}`;
const GENERIC_POOL = `generic-pool ${installedVersion('generic-pool')}`;
const PG_POOL_MAIN = `pg.Pool ${installedVersion('pg')}, max 10`;
const POSTGRES_JS = `postgres.js ${installedVersion('postgres')}, max 10`;

/** Which rows each section compares the @pgwarden/pool rows against. */
const BASELINES: Record<Section, { row: string; label: string }[]> = {
  a: [
    { row: PG_POOL, label: 'pg-pool' },
    { row: GENERIC_POOL, label: 'generic-pool' },
  ],
  b: [
    { row: PG_POOL_MAIN, label: 'pg.Pool' },
    { row: POSTGRES_JS, label: 'postgres.js' },
  ],
};

function installedVersion(name: string): string {
  try {
    const manifest = new URL(`../node_modules/${name}/package.json`, import.meta.url);
    return (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
  } catch {
    return '(version unknown)';
  }
}

interface Row {
  section: Section;
  name: string;
  concurrency: number;
  runs: Run[];
  errors: Set<string>;
  attempts: number;
}

class Results {
  readonly rows = new Map<string, Row>();

  /** Runs one measurement; a failure is kept as a note on its row instead of ending the benchmark. */
  async record(
    section: Section,
    name: string,
    concurrency: number,
    measure: () => Promise<Run>,
  ): Promise<void> {
    const row = this.row(section, name, concurrency);
    row.attempts++;
    try {
      row.runs.push(await measure());
    } catch (err) {
      row.errors.add(err instanceof Error ? err.message : String(err));
    }
  }

  find(section: Section, name: string, concurrency: number): Row | undefined {
    return this.rows.get(`${section}|${name}|${concurrency}`);
  }

  private row(section: Section, name: string, concurrency: number): Row {
    const key = `${section}|${name}|${concurrency}`;
    let row = this.rows.get(key);
    if (!row) {
      row = { section, name, concurrency, runs: [], errors: new Set(), attempts: 0 };
      this.rows.set(key, row);
    }
    return row;
  }
}

function medianOps(row: Row | undefined): number | undefined {
  return row && row.runs.length > 0 ? median(row.runs.map((run) => run.opsPerSec)) : undefined;
}

function medianP99(row: Row): number | undefined {
  const values = row.runs.flatMap((run) => (run.p99Ms === undefined ? [] : [run.p99Ms]));
  return values.length > 0 ? median(values) : undefined;
}

/** (max − min) / median of ops/s over the rounds. */
function spread(row: Row): number | undefined {
  const ops = row.runs.map((run) => run.opsPerSec);
  const middle = medianOps(row);
  return ops.length > 1 && middle ? (Math.max(...ops) - Math.min(...ops)) / middle : undefined;
}

function ratios(row: Row, results: Results): string {
  const ops = medianOps(row);
  if (!row.name.startsWith('@pgwarden') || ops === undefined) return '';
  return BASELINES[row.section]
    .map(({ row: baseline, label }) => {
      const base = medianOps(results.find(row.section, baseline, row.concurrency));
      return base ? `${(ops / base).toFixed(2)}× ${label}` : `– ${label}`;
    })
    .join(', ');
}

function notes(row: Row): string {
  if (row.errors.size === 0) return '';
  const failed = row.attempts - row.runs.length;
  return `${failed}/${row.attempts} runs failed: ${[...row.errors].join('; ')}`;
}

// ─── output ──────────────────────────────────────────────────────────────────────────────────────

const TEST_LABEL: Record<Section, string> = {
  a: 'a: acquire+release, stub client',
  b: 'b: SELECT 1, PostgreSQL',
};

function tableLines(results: Results): string[] {
  const header = [
    'test',
    'implementation',
    'concurrency',
    'ops/s',
    'p99 ms',
    'spread',
    'vs baselines',
    'notes',
  ];
  const body = [...results.rows.values()].sort(byTableOrder).map((row) => {
    const ops = medianOps(row);
    const p99 = medianP99(row);
    const range = spread(row);
    return [
      TEST_LABEL[row.section],
      row.name,
      String(row.concurrency),
      ops === undefined ? '–' : Math.round(ops).toLocaleString('en-US'),
      p99 === undefined ? '–' : p99.toFixed(2),
      range === undefined ? '–' : `${(range * 100).toFixed(1)}%`,
      ratios(row, results),
      notes(row),
    ];
  });
  const alignRight = [false, false, true, true, true, true, false, false];
  const anyNotes = body.some((cells) => cells.at(-1) !== '');
  return anyNotes
    ? markdownTable(header, body, alignRight)
    : markdownTable(
        header.slice(0, -1),
        body.map((cells) => cells.slice(0, -1)),
        alignRight,
      );
}

/** Section, then concurrency, then the order the rows were first measured in (Map order is stable). */
function byTableOrder(x: Row, y: Row): number {
  return x.section.localeCompare(y.section) || x.concurrency - y.concurrency;
}

function markdownTable(header: string[], body: string[][], alignRight: boolean[]): string[] {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...body.map((cells) => cells[column]?.length ?? 0)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => (alignRight[column] ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((width, column) => (alignRight[column] ? `${'-'.repeat(width + 1)}:` : '-'.repeat(width + 2))).join('|')}|`;
  return [line(header), rule, ...body.map(line)];
}

function machineLine(): string {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() || 'unknown CPU';
  const date = `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  return `node ${process.version} · ${model} · ${cpus.length} cores · ${os.platform()} ${os.arch()} · ${date}`;
}

function methodLine(settings: Settings, facts: string[]): string {
  const describe = (section: Section, what: string) => {
    const { warmupMs, measureMs, rounds } = settings.phases[section];
    return `(${section}) ${what}: ${warmupMs / 1000} s warm-up + ${measureMs / 1000} s measured, median of ${rounds} interleaved rounds`;
  };
  const parts = settings.sections.map((section) =>
    section === 'a'
      ? describe('a', `stub client, pool max ${STUB_POOL_MAX}`)
      : describe('b', `${QUERY_CALLERS} callers, ${facts.join(', ') || 'PostgreSQL'}`),
  );
  return `${parts.join(' · ')}. spread = (max − min) / median of the rounds.`;
}

const statusOnTty = process.stderr.isTTY;

function progress(message: string): void {
  if (statusOnTty) process.stderr.write(`\r\x1b[2K${message}`);
}

function clearProgress(): void {
  if (statusOnTty) process.stderr.write('\r\x1b[2K');
}

// ─── main ────────────────────────────────────────────────────────────────────────────────────────

function rotate<T>(items: T[], by: number): T[] {
  const shift = by % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

async function main(): Promise<void> {
  const childJob = process.env[CHILD_ENV];
  if (childJob) {
    await runChildJob(childJob);
    return;
  }
  const settings = parseSettings(process.argv.slice(2));
  const results = new Results();
  const facts: string[] = [];
  if (settings.sections.includes('a')) await benchStub(settings.phases.a, results);
  if (settings.sections.includes('b')) await benchPostgres(settings.phases.b, results, facts);
  clearProgress();
  console.log([machineLine(), methodLine(settings, facts), '', ...tableLines(results)].join('\n'));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    clearProgress();
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
