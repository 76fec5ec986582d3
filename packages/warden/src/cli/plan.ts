/**
 * `pgwarden plan`: connection capacity planning before anyone raises a limit. Checks replicas ×
 * (max + overflow) + other consumers against the server's usable slots, sizes the pools from the
 * measured load (Little's law), and says when PgBouncer is needed. Exit code 0 fits, 1 tight,
 * 2 oversubscribed, 3 bad input or unreachable server.
 *
 * Commander options for cli.ts (every value arrives as a string; runPlan parses and checks them):
 *
 *   program
 *     .command('plan')
 *     .description('check pool sizes against max_connections before raising them; size pools and PgBouncer')
 *     .option('--replicas <n>', 'instances of the app, each with its own pool')
 *     .option('--pool-max <n>', "each pool's max (steady connections)")
 *     .option('--overflow <n>', "each pool's overflow (burst connections beyond max)")
 *     .option('--pool-min <n>', "each pool's min (connections kept open)")
 *     .option('--other <n>', 'connections of other apps, jobs and admins (default with --url: sessions now)')
 *     .option('--max-connections <n>', "the server's max_connections (default with --url: the server's)")
 *     .option('--superuser-reserved <n>', 'superuser_reserved_connections (default 3, or the server's)')
 *     .option('--reserved <n>', 'reserved_connections, PostgreSQL 16+ (default 0, or the server's)')
 *     .option('--mean-ms <ms>', 'mean time a statement (or transaction) holds a connection')
 *     .option('--rate <n>', 'statements (or transactions) per second across the fleet')
 *     .option('--cores <n>', "the database server's CPU cores (HikariCP's cores × 2 + spindles)")
 *     .option('--spindles <n>', "the database server's effective spindles (default 1)")
 *     .option('--margin <factor>', 'over the measured concurrency: 1.5 or 50%', '1.5')
 *     .option('--pools <n>', '(database, user) pairs PgBouncer would pool (default 1)')
 *     .option('--pgbouncer-instances <n>', 'PgBouncer instances (default 1; 2 with --runbook)')
 *     .option('--url <url>', 'read max_connections, sessions and pg_stat_statements from this server')
 *     .option('--app <name>', "the app's application_name: its sessions are not other consumers")
 *     .option('--sample <duration>', 'measure the load over this long instead of since the last reset')
 *     .option('--runbook', "use the runbook's Step 2: pools 50 + 20 (min 5), max_connections 200")
 *     .option('--json', 'print one JSON object')
 *     .option('--verbose', 'stacks on errors')
 *     .action(async (flags) => { process.exitCode = await runPlan(flags, io); });
 *
 * Precedence of every number: its flag, then --runbook, then what --url measured, then the default.
 * DATABASE_URL is read when there is no --url and neither --max-connections nor --runbook.
 */
import { ProbeError, classifyConnectError, isProbeError, redact } from '../probe/errors.js';
import {
  type CapacityInput,
  type CapacityPlan,
  type InputField,
  PlanInputError,
  RUNBOOK_STEP2,
  planCapacity,
} from '../plan/capacity.js';
import { type Measured, renderPlanJson, renderPlanText } from '../plan/render.js';
import type { Io } from './doctor.js';
import { UsageError, parseDurationSeconds, parseMillis } from './durations.js';
import { type Measurement, measureServer } from './plan-measure.js';

export type { Io } from './doctor.js';

type Raw = string | number | undefined;

export interface PlanFlags {
  replicas?: Raw;
  poolMax?: Raw;
  overflow?: Raw;
  poolMin?: Raw;
  other?: Raw;
  maxConnections?: Raw;
  superuserReserved?: Raw;
  reserved?: Raw;
  meanMs?: Raw;
  rate?: Raw;
  cores?: Raw;
  spindles?: Raw;
  margin?: Raw;
  pools?: Raw;
  pgbouncerInstances?: Raw;
  url?: string;
  app?: string;
  sample?: string;
  runbook?: boolean;
  json?: boolean;
  verbose?: boolean;
}

export const PLAN_EXIT = { fits: 0, tight: 1, oversubscribed: 2, badInput: 3 } as const;

/** The flag that sets each input, for error messages. */
export const FLAG_OF: Record<InputField, string> = {
  replicas: '--replicas',
  poolMax: '--pool-max',
  maxOverflow: '--overflow',
  poolMin: '--pool-min',
  otherConsumers: '--other',
  maxConnections: '--max-connections',
  superuserReservedConnections: '--superuser-reserved',
  reservedConnections: '--reserved',
  meanMs: '--mean-ms',
  ratePerSecond: '--rate',
  cores: '--cores',
  spindles: '--spindles',
  margin: '--margin',
  pools: '--pools',
  pgbouncerInstances: '--pgbouncer-instances',
};

function text(raw: Raw): string {
  return String(raw).trim();
}

function parseCount(flag: string, raw: Raw): number | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw === 'number' && Number.isInteger(raw) && raw >= 0) return raw;
  const value = text(raw);
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag} takes a whole number, got "${value}"`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${flag} is too large: "${value}"`);
  return n;
}

function parseRate(flag: string, raw: Raw): number | undefined {
  if (raw === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)\s*(?:\/\s*s)?$/.exec(text(raw));
  if (!match)
    throw new UsageError(`${flag} takes statements per second like 2000 or 2000/s, got "${text(raw)}"`);
  return Number(match[1]);
}

/** "1.5" (a factor) or "50%" (50% more): the factor. */
export function parseMargin(flag: string, raw: Raw): number | undefined {
  if (raw === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)\s*(%)?$/.exec(text(raw));
  const bad = new UsageError(
    `${flag} takes a factor ≥ 1 like 1.5, or a percentage like 50%, got "${text(raw)}"`,
  );
  if (!match) throw bad;
  const value = Number(match[1]);
  const factor = match[2] ? 1 + value / 100 : value;
  if (!(factor >= 1)) throw bad;
  return factor;
}

function parseMs(flag: string, raw: Raw): number | undefined {
  if (raw === undefined) return undefined;
  const ms = parseMillis(flag, text(raw));
  if (!(ms > 0)) throw new UsageError(`${flag} must be more than 0 ms, got "${text(raw)}"`);
  return ms;
}

interface Parsed {
  values: Partial<Record<InputField, number>>;
  sampleSeconds: number | undefined;
}

/** Parses every numeric flag (before any connection is made), naming the flag on a bad value. */
export function parsePlanFlags(flags: PlanFlags): Parsed {
  const values: Partial<Record<InputField, number>> = {
    replicas: parseCount('--replicas', flags.replicas),
    poolMax: parseCount('--pool-max', flags.poolMax),
    maxOverflow: parseCount('--overflow', flags.overflow),
    poolMin: parseCount('--pool-min', flags.poolMin),
    otherConsumers: parseCount('--other', flags.other),
    maxConnections: parseCount('--max-connections', flags.maxConnections),
    superuserReservedConnections: parseCount('--superuser-reserved', flags.superuserReserved),
    reservedConnections: parseCount('--reserved', flags.reserved),
    meanMs: parseMs('--mean-ms', flags.meanMs),
    ratePerSecond: parseRate('--rate', flags.rate),
    cores: parseCount('--cores', flags.cores),
    spindles: parseCount('--spindles', flags.spindles),
    margin: parseMargin('--margin', flags.margin),
    pools: parseCount('--pools', flags.pools),
    pgbouncerInstances: parseCount('--pgbouncer-instances', flags.pgbouncerInstances),
  };
  for (const key of Object.keys(values) as InputField[]) if (values[key] === undefined) delete values[key];
  let sampleSeconds: number | undefined;
  if (flags.sample !== undefined) {
    sampleSeconds = parseDurationSeconds('--sample', String(flags.sample));
    if (sampleSeconds <= 0 || sampleSeconds > 600) {
      throw new UsageError(`--sample must be between 0 and 10 minutes, got "${flags.sample}"`);
    }
  }
  return { values, sampleSeconds };
}

/** Throws naming the first required flag that is missing (and that --runbook or --url would not give). */
function checkRequired(
  values: Partial<Record<InputField, number>>,
  givenBy: { runbook: boolean; url: boolean },
): void {
  if (values.replicas === undefined) {
    throw new UsageError('--replicas is required: how many instances of the app run, each with its own pool');
  }
  if (values.poolMax === undefined && !givenBy.runbook) {
    throw new UsageError("--pool-max is required (each pool's max), or --runbook");
  }
  if (values.maxConnections === undefined && !givenBy.runbook && !givenBy.url) {
    throw new UsageError(
      "--max-connections is required (the server's max_connections), or --url, or --runbook",
    );
  }
}

/** Builds the planner's input: flags over --runbook over what was measured over the defaults. */
export function buildInput(
  flags: PlanFlags,
  parsed: Parsed,
  measurement: Measurement | undefined,
): CapacityInput {
  const sources: Partial<Record<InputField, string>> = {};
  const values: Partial<Record<InputField, number>> = {};
  const set = (field: InputField, value: number | undefined, source: string) => {
    if (value === undefined || values[field] !== undefined) return;
    values[field] = value;
    sources[field] = source;
  };
  for (const [field, value] of Object.entries(parsed.values) as [InputField, number][]) {
    set(field, value, FLAG_OF[field]);
  }
  if (flags.runbook) {
    const step = 'runbook Step 2';
    set('poolMax', RUNBOOK_STEP2.poolMax, step);
    set('maxOverflow', RUNBOOK_STEP2.maxOverflow, step);
    set('poolMin', RUNBOOK_STEP2.poolMin, step);
    set('maxConnections', RUNBOOK_STEP2.maxConnections, step);
    set('pgbouncerInstances', RUNBOOK_STEP2.pgbouncerInstances, 'runbook Step 4');
  }
  let otherDetail: CapacityInput['otherConsumersDetail'];
  if (measurement) {
    const m = measurement.server;
    const server = `the server, PostgreSQL ${m.version}`;
    set('maxConnections', m.maxConnections, server);
    set('superuserReservedConnections', m.superuserReservedConnections, server);
    set('reservedConnections', m.reservedConnections, server);
    if (values.otherConsumers === undefined) {
      set(
        'otherConsumers',
        measurement.sessions.other,
        `client sessions now${measurement.sessions.appName ? `, without ${measurement.sessions.appName}` : ''}`,
      );
      otherDetail = measurement.sessions.byApplication;
    }
    if ('method' in measurement.load) {
      set('meanMs', measurement.load.meanMs, measurement.load.source);
      set('ratePerSecond', measurement.load.ratePerSecond, measurement.load.source);
    }
  }
  checkRequired(values, { runbook: false, url: false });
  if (values.replicas === undefined || values.poolMax === undefined || values.maxConnections === undefined) {
    throw new UsageError('unreachable: required values are missing');
  }
  return {
    replicas: values.replicas,
    poolMax: values.poolMax,
    maxOverflow: values.maxOverflow,
    poolMin: values.poolMin,
    otherConsumers: values.otherConsumers,
    otherConsumersDetail: otherDetail,
    maxConnections: values.maxConnections,
    superuserReservedConnections: values.superuserReservedConnections,
    reservedConnections: values.reservedConnections,
    meanMs: values.meanMs,
    ratePerSecond: values.ratePerSecond,
    cores: values.cores,
    spindles: values.spindles,
    margin: values.margin,
    pools: values.pools,
    pgbouncerInstances: values.pgbouncerInstances,
    sources,
  };
}

export function measuredForOutput(measurement: Measurement | undefined): Measured {
  if (!measurement) return {};
  return {
    server: { version: measurement.server.version, database: measurement.server.database },
    sessions: {
      byApplication: measurement.sessions.byApplication,
      app: measurement.sessions.app,
      appName: measurement.sessions.appName,
    },
    load:
      'method' in measurement.load
        ? { summary: measurement.load.summary }
        : { missing: measurement.load.missing },
  };
}

export interface PlanOutcome {
  plan: CapacityPlan;
  measurement: Measurement | undefined;
}

/**
 * Parses the flags, measures the server when there is a URL, and plans. Throws UsageError (bad flag),
 * PlanInputError (a value the planner refuses) or ProbeError (cannot read the server).
 */
export async function planFromFlags(
  flags: PlanFlags,
  url: string | undefined,
  options: { measure?: boolean } = {},
): Promise<PlanOutcome> {
  const parsed = parsePlanFlags(flags);
  if (flags.app !== undefined && !url)
    throw new UsageError('--app needs --url (it names sessions on the server)');
  if (flags.sample !== undefined && !url)
    throw new UsageError('--sample needs --url (it samples pg_stat_statements)');
  // What no measurement can give is checked before connecting.
  checkRequired(parsed.values, { runbook: Boolean(flags.runbook), url: Boolean(url) });
  let measurement: Measurement | undefined;
  if (url && options.measure !== false) {
    measurement = await measureServer(url, { app: flags.app, sampleSeconds: parsed.sampleSeconds });
  }
  const input = buildInput(flags, parsed, measurement);
  return { plan: planCapacity(input), measurement };
}

/** One line for a failure, with the flag named and the password never shown. */
export function describeFailure(err: unknown, url: string | undefined): { message: string; hint?: string } {
  if (err instanceof UsageError) return { message: err.message };
  if (err instanceof PlanInputError) return { message: `${FLAG_OF[err.field]} ${err.problem}` };
  const probe = isProbeError(err) ? err : url ? classifyConnectError(err, url) : undefined;
  if (probe) {
    const safe = new ProbeError(probe.code, url ? redact(probe.message, url) : probe.message, {
      hint: probe.hint,
    });
    return { message: safe.message, hint: safe.hint };
  }
  const message = (err as Error)?.message ?? String(err);
  return { message: url ? redact(message, url) : message };
}

export async function runPlan(flags: PlanFlags, io: Io): Promise<number> {
  const url =
    flags.url ?? (flags.maxConnections === undefined && !flags.runbook ? io.env.DATABASE_URL : undefined);
  let outcome: PlanOutcome;
  try {
    outcome = await planFromFlags(flags, url);
  } catch (err) {
    const { message, hint } = describeFailure(err, url);
    io.err(`pgwarden plan: ${message}\n`);
    if (hint && !flags.json) io.err(`${hint}\n`);
    if (flags.verbose && err instanceof Error && err.stack)
      io.err(`${url ? redact(err.stack, url) : err.stack}\n`);
    return PLAN_EXIT.badInput;
  }
  const measured = measuredForOutput(outcome.measurement);
  if (flags.json) io.out(renderPlanJson(outcome.plan, measured));
  else io.out(renderPlanText(outcome.plan, measured, { width: io.columns ?? 80 }));
  return PLAN_EXIT[outcome.plan.verdict];
}
