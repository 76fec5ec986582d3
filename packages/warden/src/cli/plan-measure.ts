/**
 * What `pgwarden plan --url` reads from a live server: its connection limits and current client
 * sessions (one snapshot, through the probe), and the load from pg_stat_statements: the mean
 * execution time and the statement rate, either since the statistics were last reset
 * (pg_stat_statements_info, PostgreSQL 14+) or from two samples a few seconds apart.
 */
import pg from 'pg';
import { classifyConnectError } from '../probe/errors.js';
import { takeSnapshot } from '../probe/postgres.js';
import type { Session } from '../snapshot.js';

export interface MeasuredServer {
  version: string;
  major: number;
  database: string;
  maxConnections: number;
  superuserReservedConnections: number;
  reservedConnections: number;
  usableConnections: number;
}

export interface MeasuredSessions {
  /** Client sessions by application_name, the app's own and pgwarden's excluded, most first. */
  byApplication: { name: string; count: number }[];
  /** Their total: the other consumers now. */
  other: number;
  /** Sessions of the app itself (application_name `--app` or `--app:…`). */
  app: number;
  appName: string | null;
}

export type MeasuredLoad =
  | {
      method: 'since_reset' | 'sample';
      meanMs: number;
      ratePerSecond: number;
      calls: number;
      windowSeconds: number;
      /** One line for the output: how and over what window. */
      summary: string;
      /** The source label for the plan's explanations. */
      source: string;
    }
  | { missing: string };

export interface Measurement {
  server: MeasuredServer;
  sessions: MeasuredSessions;
  load: MeasuredLoad;
}

export interface MeasureOptions {
  /** application_name of the app being planned: its sessions are not "other consumers". */
  app?: string;
  /** Measure the load over this many seconds instead of since the statistics were reset. */
  sampleSeconds?: number;
  /** Seconds sampled when there is no pg_stat_statements_info (before 14) or it was reset just now. */
  defaultSampleSeconds?: number;
  /** A reset more recent than this (seconds, default 10) is too recent to average over: sample instead. */
  minResetAgeSeconds?: number;
  /** Tests make time pass faster. */
  sleep?: (ms: number) => Promise<void>;
}

const MIN_RESET_AGE_SECONDS = 10;

const NO_NAME = '(no application_name)';

function isApp(session: Session, app: string | undefined): boolean {
  if (!app) return false;
  return session.application === app || session.application.startsWith(`${app}:`);
}

export function groupSessions(sessions: Session[], app: string | undefined): MeasuredSessions {
  const counts = new Map<string, number>();
  let appCount = 0;
  for (const s of sessions) {
    if (s.backendType !== 'client backend') continue;
    if (isApp(s, app)) {
      appCount++;
      continue;
    }
    const name = s.application || NO_NAME;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const byApplication = [...counts]
    .map(([name, count]) => ({ name, count }))
    .sort((a, b) => b.count - a.count || a.name.localeCompare(b.name));
  return {
    byApplication,
    other: byApplication.reduce((n, a) => n + a.count, 0),
    app: appCount,
    appName: app ?? null,
  };
}

function formatWindow(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 360) / 10} h`;
  return `${Math.round(seconds / 8640) / 10} days`;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

interface Totals {
  calls: number;
  totalMs: number;
  at: number;
}

async function readTotals(client: pg.Client, view: string, totalColumn: string): Promise<Totals> {
  const res = await client.query<{ calls: number; total_ms: number; at: number }>(
    `SELECT coalesce(sum(calls), 0)::float8 AS calls, coalesce(sum(${totalColumn}), 0)::float8 AS total_ms,
            extract(epoch FROM clock_timestamp())::float8 AS at
       FROM ${view}
      WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  );
  const row = res.rows[0];
  return { calls: Number(row?.calls ?? 0), totalMs: Number(row?.total_ms ?? 0), at: Number(row?.at ?? 0) };
}

async function measureLoad(
  url: string,
  major: number,
  database: string,
  options: MeasureOptions,
): Promise<MeasuredLoad> {
  const client = new pg.Client({
    connectionString: url,
    application_name: 'pgwarden',
    connectionTimeoutMillis: 5000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    throw classifyConnectError(err, url);
  }
  try {
    await client.query("SELECT set_config('statement_timeout', '5000', false)");
    const ext = await client.query<{ schema: string }>(
      "SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
    );
    const schema = ext.rows[0]?.schema;
    if (schema === undefined) {
      return { missing: `pg_stat_statements is not installed in ${database}: pass --mean-ms and --rate` };
    }
    const qualified = client.escapeIdentifier(schema);
    // The function form without query texts: the sums need none, and texts are the costly part.
    const view = `${qualified}.pg_stat_statements(false)`;
    const totalColumn = major >= 13 ? 'total_exec_time' : 'total_time';
    const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));

    let resetAge: number | null = null;
    let dealloc = 0;
    if (options.sampleSeconds === undefined && major >= 14) {
      const info = await client.query<{ info: string | null }>('SELECT to_regclass($1) AS info', [
        `${qualified}.pg_stat_statements_info`,
      ]);
      if (info.rows[0]?.info) {
        const res = await client.query<{ age: number | null; dealloc: string }>(
          `SELECT extract(epoch FROM now() - stats_reset)::float8 AS age, dealloc::text AS dealloc
             FROM ${qualified}.pg_stat_statements_info`,
        );
        resetAge = res.rows[0]?.age ?? null;
        dealloc = Number(res.rows[0]?.dealloc ?? 0);
      }
    }

    let totals: Totals;
    try {
      totals = await readTotals(client, view, totalColumn);
    } catch (err) {
      return { missing: `pg_stat_statements cannot be read: ${(err as Error).message}` };
    }

    const minAge = options.minResetAgeSeconds ?? MIN_RESET_AGE_SECONDS;
    if (resetAge !== null && resetAge >= minAge && resetAge > 0 && totals.calls > 0) {
      const rate = totals.calls / resetAge;
      const mean = totals.totalMs / totals.calls;
      const window = formatWindow(resetAge);
      return {
        method: 'since_reset',
        meanMs: round(mean, 3),
        ratePerSecond: round(rate, 3),
        calls: totals.calls,
        windowSeconds: Math.round(resetAge),
        summary: `${round(rate, 2)} statements/s, ${round(mean, 3)} ms mean, in ${database} since pg_stat_statements was reset ${window} ago (an average: peaks are higher; --sample 60s at a peak measures now)${dealloc > 0 ? `; ${dealloc} entries were evicted, so calls are undercounted` : ''}`,
        source: `pg_stat_statements, ${window} average`,
      };
    }

    const seconds = options.sampleSeconds ?? options.defaultSampleSeconds ?? 5;
    await sleep(seconds * 1000);
    const second = await readTotals(client, view, totalColumn);
    const calls = second.calls - totals.calls;
    const elapsed = Math.max(second.at - totals.at, 0.001);
    if (calls <= 0) {
      return {
        missing: `no statements ran in ${database} during the ${round(elapsed, 1)} s sample: pass --mean-ms and --rate, or --sample longer`,
      };
    }
    const rate = calls / elapsed;
    const mean = (second.totalMs - totals.totalMs) / calls;
    return {
      method: 'sample',
      meanMs: round(mean, 3),
      ratePerSecond: round(rate, 3),
      calls,
      windowSeconds: round(elapsed, 1),
      summary: `${round(rate, 2)} statements/s, ${round(mean, 3)} ms mean, in ${database} over a ${round(elapsed, 1)} s sample of pg_stat_statements`,
      source: `pg_stat_statements, ${round(elapsed, 1)} s sample`,
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Reads the server's limits, its client sessions and the load. Throws ProbeError when it cannot connect. */
export async function measureServer(url: string, options: MeasureOptions = {}): Promise<Measurement> {
  const snapshot = await takeSnapshot(url);
  const s = snapshot.server;
  const server: MeasuredServer = {
    version: s.version,
    major: s.major,
    database: s.database,
    maxConnections: s.maxConnections,
    superuserReservedConnections: s.superuserReservedConnections,
    reservedConnections: s.reservedConnections,
    usableConnections: s.usableConnections,
  };
  const sessions = groupSessions(snapshot.sessions, options.app);
  const load = await measureLoad(url, s.major, s.database, options);
  return { server, sessions, load };
}
