/**
 * Connection capacity planning, before anyone raises a limit: does every instance of the app at its
 * pool's max + overflow, plus everyone else, fit in the server's usable slots? What pool size does
 * the measured load need (Little's law)? And when the fleet needs more than the server can give,
 * how should PgBouncer in front of it be sized?
 *
 * Pure: numbers in, a plan out. Every number of the plan is a Figure that carries the one line
 * explaining it ("280 = 4 replicas × (50 max + 20 overflow)").
 */

export type Verdict = 'fits' | 'tight' | 'oversubscribed';

/** A number of the plan and the one line that explains it (the line starts with the number). */
export interface Figure {
  value: number;
  why: string;
}

/** Connections held by one consumer other than the app (an application_name, a job, admins). */
export interface ConsumerCount {
  name: string;
  count: number;
}

export interface CapacityInput {
  /** Instances of the app (Kubernetes replicas, processes) each with its own pool. */
  replicas: number;
  /** The pool's steady maximum per instance (`max`; the runbook's `max_connections: 50`). */
  poolMax: number;
  /** Burst connections beyond max per instance (`maxOverflow`; the runbook's `max_overflow: 20`); default 0. */
  maxOverflow?: number;
  /** Connections each pool keeps open (`min`; the runbook's `min_connections: 5`); default 0. */
  poolMin?: number;
  /** Connections used by other apps, jobs and admins at their worst; default 0. */
  otherConsumers?: number;
  /** Who those are (for the explanation only). */
  otherConsumersDetail?: ConsumerCount[];
  /** The server's max_connections. */
  maxConnections: number;
  /** superuser_reserved_connections; default 3 (PostgreSQL's default). */
  superuserReservedConnections?: number;
  /** reserved_connections (PostgreSQL 16+); default 0. */
  reservedConnections?: number;
  /** Mean time a connection is held per statement (or transaction), in ms. */
  meanMs?: number;
  /** Statements (or transactions) per second across the whole fleet. */
  ratePerSecond?: number;
  /** The database server's CPU cores (for HikariCP's reference formula). */
  cores?: number;
  /** The database server's effective spindles (HikariCP); default 1 when cores is given. */
  spindles?: number;
  /** Factor over the measured concurrency (1.5 = 50% more); default 1.5. */
  margin?: number;
  /** (database, user) pairs PgBouncer pools separately; default 1. */
  pools?: number;
  /** PgBouncer instances in front of the server, each with its own pools; default 1. */
  pgbouncerInstances?: number;
  /** Where each number came from ("--replicas", "runbook Step 2", "the server"), for the explanations. */
  sources?: Partial<Record<InputField, string>>;
}

export type InputField = Exclude<keyof CapacityInput, 'sources' | 'otherConsumersDetail'>;

/** The input with every default applied. */
export interface ResolvedInput {
  replicas: number;
  poolMax: number;
  maxOverflow: number;
  poolMin: number;
  otherConsumers: number;
  otherConsumersDetail: ConsumerCount[];
  maxConnections: number;
  superuserReservedConnections: number;
  reservedConnections: number;
  meanMs: number | null;
  ratePerSecond: number | null;
  cores: number | null;
  spindles: number | null;
  margin: number;
  pools: number;
  pgbouncerInstances: number;
  sources: Partial<Record<InputField, string>>;
}

export interface PgBouncerPlan {
  /** Whether the fleet needs PgBouncer to fit the server. */
  recommended: boolean;
  reason: string;
  /** Whether the server can serve the load even behind PgBouncer (false: faster queries or more slots). */
  sufficient: boolean;
  instances: Figure;
  pools: Figure;
  /** Server connections one PgBouncer instance may open for one pool: default + reserve. */
  perPool: Figure;
  defaultPoolSize: Figure;
  reservePoolSize: Figure;
  reservePoolTimeout: Figure;
  maxClientConn: Figure;
  /** Server connections of every PgBouncer instance together, at most. */
  serverConnections: Figure;
  serverLifetime: Figure;
  serverIdleTimeout: Figure;
  queryWaitTimeout: Figure;
  idleTransactionTimeout: Figure;
}

export interface CapacityPlan {
  input: ResolvedInput;
  verdict: Verdict;
  /** One line: the verdict and the two numbers behind it. */
  headline: string;
  server: {
    maxConnections: Figure;
    usable: Figure;
    /** Above this the plan is tight (80% of usable, rounded down). */
    tightLine: Figure;
  };
  demand: {
    perInstance: Figure;
    fleet: Figure;
    other: Figure;
    worstCase: Figure;
    /** usable − worst case: negative when oversubscribed. */
    headroom: Figure;
    oversubscribedBy: Figure | null;
    usagePercent: Figure;
    /** Pools' min across the fleet: connections open even when idle. */
    minimumOpen: Figure;
  };
  /** The runbook's Step 2 (pools of 50 + 20, max_connections 200) with these replicas and consumers. */
  runbook: {
    worstCase: Figure;
    usable: Figure;
    verdict: Verdict;
    headroom: Figure;
    oversubscribedBy: Figure | null;
    summary: string;
  };
  /** Little's law, when mean time and rate are known. */
  load: {
    concurrency: Figure;
    /** Pool size per instance the load needs, with the margin (at least 2). */
    perInstance: Figure;
    /** Server connections the whole load needs at once with the margin (behind PgBouncer). */
    fleetAtOnce: Figure;
  } | null;
  /** Why `load` is null. */
  loadMissing: string | null;
  /** HikariCP's `cores × 2 + spindles`: connections the server can keep busy, for reference. */
  hikari: Figure | null;
  recommended: {
    /** Connections the app's fleet may hold while usage stays at or under the tight line. */
    fleetBudget: Figure;
    perInstanceBudget: Figure;
    max: Figure;
    overflow: Figure;
    min: Figure;
    worstCase: Figure;
    verdict: Verdict;
    /** False when the server cannot give every instance even 2 connections. */
    viable: boolean;
  };
  pgbouncer: PgBouncerPlan;
  notes: string[];
}

export const DEFAULT_MARGIN = 1.5;
/** Usage of the usable slots above which a plan is tight. */
export const TIGHT_FRACTION = 0.8;
export const DEFAULT_SUPERUSER_RESERVED = 3;
/** The smallest pool worth having per instance. */
export const MIN_POOL = 2;
/** Kubernetes' default maxSurge: a rolling restart runs this many more instances for a while. */
export const ROLLING_SURGE = 0.25;

/** The runbook's Step 2: database.yaml `max_connections: 50, min_connections: 5, max_overflow: 20`. */
export const RUNBOOK_STEP2 = Object.freeze({
  poolMax: 50,
  maxOverflow: 20,
  poolMin: 5,
  maxConnections: 200,
  /** Its Step 4 deploys PgBouncer with `replicas: 2`. */
  pgbouncerInstances: 2,
  connectionTimeoutSeconds: 30,
  recycleSeconds: 3600,
});

/** PgBouncer settings that are not computed from the load, with why. */
export const PGBOUNCER_FIXED = Object.freeze({
  reservePoolTimeoutSeconds: 5,
  serverLifetimeSeconds: RUNBOOK_STEP2.recycleSeconds,
  serverIdleTimeoutSeconds: 600,
  queryWaitTimeoutSeconds: RUNBOOK_STEP2.connectionTimeoutSeconds,
  idleTransactionTimeoutSeconds: 60,
  /** max_client_conn room for the admin console and pgwarden. */
  consoleClients: 10,
});

/** A value the planner cannot use; `field` names the input (the CLI turns it into its flag). */
export class PlanInputError extends Error {
  readonly field: InputField;
  /** The message without the field's name: "must be a whole number ≥ 1, got 0". */
  readonly problem: string;

  constructor(field: InputField, problem: string) {
    super(`${field} ${problem}`);
    this.name = 'PlanInputError';
    this.field = field;
    this.problem = problem;
  }
}

/** Formats a number for an explanation: integers as they are, others with 2 decimals (trimmed). */
export function num(value: number): string {
  if (Number.isInteger(value)) return String(value);
  // Small values keep two significant digits: 0.000103 busy connections is not "0".
  if (Math.abs(value) < 0.01) return String(Number(value.toPrecision(2)));
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  const text = value.toFixed(digits).replace(/\.?0+$/, '');
  return text === '-0' ? '0' : text;
}

/** Math.ceil that ignores floating-point dust (40 / 4 × 1.5 must be 15, not 16). */
export function ceilSafe(value: number): number {
  return Math.ceil(value - 1e-9);
}

function fig(value: number, why: string): Figure {
  return { value, why: `${num(value)} = ${why}` };
}

/** A figure that is given, not computed: "200 max_connections (runbook Step 2)". */
function given(value: number, what: string, source: string | undefined): Figure {
  return { value, why: `${num(value)}${what ? ` ${what}` : ''}${source ? ` (${source})` : ''}` };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${num(n)} ${n === 1 ? one : many}`;
}

function checkInteger(field: InputField, value: unknown, min: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new PlanInputError(field, `must be a whole number ≥ ${min}, got ${describe(value)}`);
  }
}

function checkPositive(field: InputField, value: unknown, allowZero: boolean): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new PlanInputError(field, `must be a number ${allowZero ? '≥ 0' : '> 0'}, got ${describe(value)}`);
  }
}

function describe(value: unknown): string {
  return typeof value === 'number' ? String(value) : value === undefined ? 'nothing' : JSON.stringify(value);
}

/** Applies the defaults and checks every value; throws PlanInputError naming the first bad one. */
export function resolveInput(input: CapacityInput): ResolvedInput {
  checkInteger('replicas', input.replicas, 1);
  checkInteger('poolMax', input.poolMax, 1);
  const maxOverflow = input.maxOverflow ?? 0;
  checkInteger('maxOverflow', maxOverflow, 0);
  const poolMin = input.poolMin ?? 0;
  checkInteger('poolMin', poolMin, 0);
  if (poolMin > input.poolMax) {
    throw new PlanInputError(
      'poolMin',
      `must not be above the pool's max (${input.poolMax}), got ${poolMin}`,
    );
  }
  const otherConsumers = input.otherConsumers ?? 0;
  checkInteger('otherConsumers', otherConsumers, 0);
  checkInteger('maxConnections', input.maxConnections, 1);
  const superuserReservedConnections = input.superuserReservedConnections ?? DEFAULT_SUPERUSER_RESERVED;
  checkInteger('superuserReservedConnections', superuserReservedConnections, 0);
  const reservedConnections = input.reservedConnections ?? 0;
  checkInteger('reservedConnections', reservedConnections, 0);
  const usable = input.maxConnections - superuserReservedConnections - reservedConnections;
  if (usable < 1) {
    throw new PlanInputError(
      'maxConnections',
      `leaves no usable slot: ${input.maxConnections} - ${superuserReservedConnections} superuser_reserved - ${reservedConnections} reserved = ${usable}`,
    );
  }
  if (input.meanMs !== undefined) checkPositive('meanMs', input.meanMs, false);
  if (input.ratePerSecond !== undefined) checkPositive('ratePerSecond', input.ratePerSecond, true);
  if (input.cores !== undefined) checkInteger('cores', input.cores, 1);
  if (input.spindles !== undefined) checkInteger('spindles', input.spindles, 0);
  const margin = input.margin ?? DEFAULT_MARGIN;
  if (typeof margin !== 'number' || !Number.isFinite(margin) || margin < 1) {
    throw new PlanInputError('margin', `must be a factor ≥ 1 (1.5 = 50% more), got ${describe(margin)}`);
  }
  const pools = input.pools ?? 1;
  checkInteger('pools', pools, 1);
  const pgbouncerInstances = input.pgbouncerInstances ?? 1;
  checkInteger('pgbouncerInstances', pgbouncerInstances, 1);
  return {
    replicas: input.replicas,
    poolMax: input.poolMax,
    maxOverflow,
    poolMin,
    otherConsumers,
    otherConsumersDetail: (input.otherConsumersDetail ?? []).filter((c) => c.count > 0),
    maxConnections: input.maxConnections,
    superuserReservedConnections,
    reservedConnections,
    meanMs: input.meanMs ?? null,
    ratePerSecond: input.ratePerSecond ?? null,
    cores: input.cores ?? null,
    spindles: input.spindles ?? (input.cores !== undefined ? 1 : null),
    margin,
    pools,
    pgbouncerInstances,
    sources: { ...(input.sources ?? {}) },
  };
}

function classify(worstCase: number, usable: number, tightLine: number): Verdict {
  if (worstCase > usable) return 'oversubscribed';
  if (worstCase > tightLine) return 'tight';
  return 'fits';
}

function percent(part: number, whole: number): number {
  return Math.round((part / whole) * 100);
}

function otherWhy(input: ResolvedInput): string {
  const source = input.sources.otherConsumers;
  const detail = input.otherConsumersDetail;
  if (detail.length > 0 && detail.reduce((n, c) => n + c.count, 0) === input.otherConsumers) {
    const shown = detail.slice(0, 3).map((c) => `${c.count} ${c.name}`);
    const rest = detail.slice(3).reduce((n, c) => n + c.count, 0);
    if (rest > 0) shown.push(`${rest} more`);
    const list = shown.join(' + ');
    return `${num(input.otherConsumers)} = ${list}${source ? ` (${source})` : ''}`;
  }
  return `${num(input.otherConsumers)} (${source ?? 'none given'})`;
}

/** Plans connection capacity; throws PlanInputError on a bad input. */
export function planCapacity(raw: CapacityInput): CapacityPlan {
  const input = resolveInput(raw);
  const src = input.sources;
  const su = input.superuserReservedConnections;
  const res = input.reservedConnections;
  const usableValue = input.maxConnections - su - res;
  const usable = fig(usableValue, `${input.maxConnections} - ${su} superuser_reserved - ${res} reserved`);
  const tightLineValue = Math.floor(usableValue * TIGHT_FRACTION);
  const tightLine = fig(
    tightLineValue,
    `floor(${percent(TIGHT_FRACTION, 1)}% × ${usableValue} usable): above it the plan is tight`,
  );

  // The worst case: every instance at max + overflow at the same moment, plus everyone else.
  const perInstanceValue = input.poolMax + input.maxOverflow;
  const perInstance = fig(perInstanceValue, `${input.poolMax} max + ${input.maxOverflow} overflow`);
  const fleetValue = input.replicas * perInstanceValue;
  const fleet = fig(
    fleetValue,
    `${plural(input.replicas, 'replica')} × (${input.poolMax} + ${input.maxOverflow})`,
  );
  const other: Figure = { value: input.otherConsumers, why: otherWhy(input) };
  const worstValue = fleetValue + input.otherConsumers;
  const worstCase = fig(worstValue, `${fleetValue} app fleet + ${input.otherConsumers} other`);
  const verdict = classify(worstValue, usableValue, tightLineValue);
  const headroom = fig(usableValue - worstValue, `${usableValue} usable - ${worstValue} worst case`);
  const oversubscribedBy =
    worstValue > usableValue
      ? fig(worstValue - usableValue, `${worstValue} worst case - ${usableValue} usable`)
      : null;
  const usagePercent: Figure = {
    value: percent(worstValue, usableValue),
    why: `${percent(worstValue, usableValue)}% = ${worstValue} / ${usableValue} usable`,
  };
  const minimumOpen = fig(
    input.replicas * input.poolMin + input.otherConsumers,
    `${plural(input.replicas, 'replica')} × ${input.poolMin} min + ${input.otherConsumers} other, open even when idle`,
  );

  const runbook = runbookCheck(input);

  // Little's law: connections busy at once = arrival rate × time each holds a connection.
  let load: CapacityPlan['load'] = null;
  let loadMissing: string | null = null;
  if (input.meanMs !== null && input.ratePerSecond !== null) {
    const concurrencyValue = (input.ratePerSecond * input.meanMs) / 1000;
    const concurrency = fig(
      concurrencyValue,
      `${num(input.ratePerSecond)}/s × ${num(input.meanMs)} ms (Little's law: connections busy at once)`,
    );
    const rawPer = (concurrencyValue / input.replicas) * input.margin;
    const perValue = Math.max(MIN_POOL, ceilSafe(rawPer));
    const perWhy =
      perValue === ceilSafe(rawPer)
        ? `ceil(${num(concurrencyValue)} / ${plural(input.replicas, 'replica')} × ${num(input.margin)} margin)`
        : `at least ${MIN_POOL} (ceil(${num(concurrencyValue)} / ${plural(input.replicas, 'replica')} × ${num(input.margin)} margin) = ${ceilSafe(rawPer)})`;
    const fleetAtOnceValue = Math.max(MIN_POOL, ceilSafe(concurrencyValue * input.margin));
    load = {
      concurrency,
      perInstance: fig(perValue, perWhy),
      fleetAtOnce: fig(
        fleetAtOnceValue,
        `ceil(${num(concurrencyValue)} × ${num(input.margin)} margin), shared behind PgBouncer`,
      ),
    };
  } else {
    const missing = [input.meanMs === null ? 'mean time' : '', input.ratePerSecond === null ? 'rate' : '']
      .filter(Boolean)
      .join(' and ');
    loadMissing = `no ${missing}: pass --mean-ms and --rate, or --url to a server with pg_stat_statements`;
  }

  const hikari =
    input.cores !== null
      ? fig(
          input.cores * 2 + (input.spindles ?? 0),
          `${plural(input.cores, 'core')} × 2 + ${plural(input.spindles ?? 0, 'spindle')} (HikariCP: connections the server keeps busy)`,
        )
      : null;

  // What fits: the fleet may hold what keeps usage at or under the tight line, after everyone else.
  const fleetBudgetValue = Math.max(0, tightLineValue - input.otherConsumers);
  const fleetBudget = fig(
    fleetBudgetValue,
    `${tightLineValue} (${percent(TIGHT_FRACTION, 1)}% of ${usableValue}) - ${input.otherConsumers} other${fleetBudgetValue === 0 && tightLineValue < input.otherConsumers ? ', at least 0' : ''}`,
  );
  const perBudgetValue = Math.floor(fleetBudgetValue / input.replicas);
  const perInstanceBudget = fig(
    perBudgetValue,
    `floor(${fleetBudgetValue} / ${plural(input.replicas, 'replica')})`,
  );
  const viable = perBudgetValue >= MIN_POOL;
  const askedWhat = src.poolMax ? ` (${src.poolMax})` : '';
  let maxFig: Figure;
  if (load) {
    const want = load.perInstance.value;
    maxFig =
      want <= perBudgetValue
        ? fig(want, `the load's pool size (Little's law), within the ${perBudgetValue} per instance`)
        : fig(
            perBudgetValue,
            `the ${perBudgetValue} per instance the server can give (the load wants ${want})`,
          );
  } else {
    maxFig =
      input.poolMax <= perBudgetValue
        ? fig(input.poolMax, `max as asked${askedWhat}, within the ${perBudgetValue} per instance`)
        : fig(
            perBudgetValue,
            `the ${perBudgetValue} per instance the server can give (asked ${input.poolMax})`,
          );
  }
  const overflowRoom = Math.max(0, perBudgetValue - maxFig.value);
  const overflowFig =
    input.maxOverflow <= overflowRoom
      ? fig(
          input.maxOverflow,
          `overflow as asked${src.maxOverflow ? ` (${src.maxOverflow})` : ''}, within ${perBudgetValue} - ${maxFig.value} max`,
        )
      : fig(
          overflowRoom,
          `${perBudgetValue} per instance - ${maxFig.value} max (asked ${input.maxOverflow})`,
        );
  const minFig =
    input.poolMin <= maxFig.value
      ? fig(input.poolMin, `min as asked${src.poolMin ? ` (${src.poolMin})` : ''}`)
      : fig(maxFig.value, `the recommended max (asked ${input.poolMin})`);
  const recWorstValue = input.replicas * (maxFig.value + overflowFig.value) + input.otherConsumers;
  const recVerdict = classify(recWorstValue, usableValue, tightLineValue);
  const recWorst = fig(
    recWorstValue,
    `${plural(input.replicas, 'replica')} × (${maxFig.value} + ${overflowFig.value}) + ${input.otherConsumers} other: ${percent(recWorstValue, usableValue)}% of ${usableValue}, ${recVerdict}`,
  );

  const pgbouncer = planPgBouncer(input, {
    fleetBudget: fleetBudgetValue,
    perInstanceBudget: perBudgetValue,
    load,
  });

  const notes = buildNotes(input, {
    usableValue,
    tightLineValue,
    worstValue,
    verdict,
    perInstanceValue,
    load,
    hikari,
  });

  const headline =
    verdict === 'oversubscribed'
      ? `oversubscribed by ${worstValue - usableValue}: the worst case needs ${worstValue} connections, the server has ${usableValue} usable`
      : verdict === 'tight'
        ? `tight: the worst case needs ${worstValue} of ${usableValue} usable connections (${percent(worstValue, usableValue)}%, over ${percent(TIGHT_FRACTION, 1)}%)`
        : `fits: the worst case needs ${worstValue} of ${usableValue} usable connections (${percent(worstValue, usableValue)}%)`;

  return {
    input,
    verdict,
    headline,
    server: {
      maxConnections: given(input.maxConnections, '', src.maxConnections ?? 'given'),
      usable,
      tightLine,
    },
    demand: { perInstance, fleet, other, worstCase, headroom, oversubscribedBy, usagePercent, minimumOpen },
    runbook,
    load,
    loadMissing,
    hikari,
    recommended: {
      fleetBudget,
      perInstanceBudget,
      max: maxFig,
      overflow: overflowFig,
      min: minFig,
      worstCase: recWorst,
      verdict: recVerdict,
      viable,
    },
    pgbouncer,
    notes,
  };
}

function runbookCheck(input: ResolvedInput): CapacityPlan['runbook'] {
  const { poolMax, maxOverflow, maxConnections } = RUNBOOK_STEP2;
  const su = input.superuserReservedConnections;
  const res = input.reservedConnections;
  const usableValue = maxConnections - su - res;
  const tightLineValue = Math.floor(usableValue * TIGHT_FRACTION);
  const worstValue = input.replicas * (poolMax + maxOverflow) + input.otherConsumers;
  const verdict = classify(worstValue, usableValue, tightLineValue);
  const worstCase = fig(
    worstValue,
    `${plural(input.replicas, 'replica')} × (${poolMax} + ${maxOverflow}) + ${input.otherConsumers} other`,
  );
  const usable = fig(usableValue, `${maxConnections} - ${su} superuser_reserved - ${res} reserved`);
  const headroom = fig(usableValue - worstValue, `${usableValue} - ${worstValue}`);
  const oversubscribedBy =
    worstValue > usableValue ? fig(worstValue - usableValue, `${worstValue} - ${usableValue}`) : null;
  const summary =
    verdict === 'oversubscribed'
      ? `the runbook's Step 2 (pools of ${poolMax} + ${maxOverflow}, max_connections ${maxConnections}) oversubscribes the server by ${worstValue - usableValue}: ${worstValue} > ${usableValue}`
      : `the runbook's Step 2 (pools of ${poolMax} + ${maxOverflow}, max_connections ${maxConnections}) ${verdict === 'tight' ? 'is tight' : 'fits'}: ${worstValue} of ${usableValue} (${percent(worstValue, usableValue)}%)`;
  return { worstCase, usable, verdict, headroom, oversubscribedBy, summary };
}

function planPgBouncer(
  input: ResolvedInput,
  ctx: { fleetBudget: number; perInstanceBudget: number; load: CapacityPlan['load'] },
): PgBouncerPlan {
  const { fleetBudget, perInstanceBudget, load } = ctx;
  const perInstanceNeed = load ? load.perInstance.value : input.poolMax + input.maxOverflow;
  const needWhat = load ? "the load's pool size (Little's law)" : 'max + overflow as asked';
  const fleetNeed = input.replicas * perInstanceNeed;
  const recommended = fleetNeed > fleetBudget || perInstanceBudget < MIN_POOL;

  const shares = input.pgbouncerInstances * input.pools;
  const perPoolValue = Math.floor(fleetBudget / shares);
  const perPool = fig(
    perPoolValue,
    `floor(${fleetBudget} the server can give / (${plural(input.pgbouncerInstances, 'PgBouncer instance')} × ${plural(input.pools, 'pool')}))`,
  );
  const reserveValue = Math.floor(perPoolValue / 10);
  const reservePoolSize = fig(
    reserveValue,
    `floor(${perPoolValue} / 10): extra server connections for a pool whose clients waited reserve_pool_timeout`,
  );
  const defaultValue = Math.max(perPoolValue > 0 ? 1 : 0, perPoolValue - reserveValue);
  const defaultPoolSize = fig(defaultValue, `${perPoolValue} per pool - ${reserveValue} reserve`);
  const serverConnectionsValue = shares * (defaultValue + reserveValue);
  const serverConnections = fig(
    serverConnectionsValue,
    `${plural(input.pgbouncerInstances, 'instance')} × ${plural(input.pools, 'pool')} × (${defaultValue} + ${reserveValue}), within ${fleetBudget}`,
  );
  const surgeReplicas = ceilSafe(input.replicas * (1 + ROLLING_SURGE));
  const clientsPerInstance = input.poolMax + input.maxOverflow;
  const maxClientConnValue = surgeReplicas * clientsPerInstance + PGBOUNCER_FIXED.consoleClients;
  const maxClientConn = fig(
    maxClientConnValue,
    `${surgeReplicas} app instances (${input.replicas} + ${percent(ROLLING_SURGE, 1)}% rolling-update surge) × (${input.poolMax} + ${input.maxOverflow}) + ${PGBOUNCER_FIXED.consoleClients} for the console${input.pgbouncerInstances > 1 ? '; each instance must take every client when another is down' : ''}`,
  );
  const serverNeed = load ? load.fleetAtOnce.value : null;
  const sufficient = defaultValue >= 1 && (serverNeed === null || serverNeed <= serverConnectionsValue);

  let reason: string;
  if (recommended) {
    reason =
      perInstanceBudget < MIN_POOL
        ? `the server can give the fleet ${fleetBudget} connections, under ${MIN_POOL} per instance for ${plural(input.replicas, 'replica')}: behind PgBouncer (transaction pooling) the instances share ${serverConnectionsValue} server connections`
        : `the fleet needs ${fleetNeed} = ${plural(input.replicas, 'replica')} × ${perInstanceNeed} (${needWhat}), the server can give it ${fleetBudget}: behind PgBouncer (transaction pooling) the instances share ${serverConnectionsValue} server connections`;
    if (serverNeed !== null) {
      reason +=
        serverNeed <= serverConnectionsValue
          ? `, more than the ${serverNeed} the load needs at once`
          : `, fewer than the ${serverNeed} the load needs at once: make statements faster or give the server more slots`;
    } else {
      reason += '; measure the load (--mean-ms, --rate) to check that it is enough';
    }
  } else {
    reason = `not needed for capacity: the fleet's ${fleetNeed} = ${plural(input.replicas, 'replica')} × ${perInstanceNeed} (${needWhat}) fits in the ${fleetBudget} the server can give it`;
  }
  if (defaultValue < 1) {
    reason += `; the server has no connection to give PgBouncer (${fleetBudget} for ${shares} pool${shares === 1 ? '' : 's'})`;
  }

  const f = PGBOUNCER_FIXED;
  return {
    recommended,
    reason,
    sufficient,
    instances: given(
      input.pgbouncerInstances,
      input.pgbouncerInstances === 1 ? 'PgBouncer instance' : 'PgBouncer instances',
      input.sources.pgbouncerInstances,
    ),
    pools: given(
      input.pools,
      input.pools === 1 ? '(database, user) pool' : '(database, user) pools',
      input.sources.pools,
    ),
    perPool,
    defaultPoolSize,
    reservePoolSize,
    reservePoolTimeout: {
      value: f.reservePoolTimeoutSeconds,
      why: `${f.reservePoolTimeoutSeconds} s a client waits before the reserve opens (PgBouncer's default)`,
    },
    maxClientConn,
    serverConnections,
    serverLifetime: {
      value: f.serverLifetimeSeconds,
      why: `${f.serverLifetimeSeconds} s = the runbook's recycle: server connections are replaced hourly`,
    },
    serverIdleTimeout: {
      value: f.serverIdleTimeoutSeconds,
      why: `${f.serverIdleTimeoutSeconds} s: an unused server connection is closed after it (PgBouncer's default)`,
    },
    queryWaitTimeout: {
      value: f.queryWaitTimeoutSeconds,
      why: `${f.queryWaitTimeoutSeconds} s = the runbook's connection_timeout: the app has given up by then (PgBouncer's default is 120)`,
    },
    idleTransactionTimeout: {
      value: f.idleTransactionTimeoutSeconds,
      why: `${f.idleTransactionTimeoutSeconds} s: a client idle in a transaction pins a server connection; PgBouncer drops it then`,
    },
  };
}

function buildNotes(
  input: ResolvedInput,
  ctx: {
    usableValue: number;
    tightLineValue: number;
    worstValue: number;
    verdict: Verdict;
    perInstanceValue: number;
    load: CapacityPlan['load'];
    hikari: Figure | null;
  },
): string[] {
  const notes: string[] = [];
  const surgeReplicas = ceilSafe(input.replicas * (1 + ROLLING_SURGE));
  if (surgeReplicas > input.replicas) {
    const surgeWorst = surgeReplicas * ctx.perInstanceValue + input.otherConsumers;
    const surgeVerdict = classify(surgeWorst, ctx.usableValue, ctx.tightLineValue);
    if (surgeVerdict !== ctx.verdict) {
      notes.push(
        `During a rolling restart (Kubernetes' default maxSurge ${percent(ROLLING_SURGE, 1)}%, as the runbook's \`kubectl rollout restart\` does) ${surgeReplicas} instances run at once: ${surgeWorst} = ${surgeReplicas} × (${input.poolMax} + ${input.maxOverflow}) + ${input.otherConsumers}, ${surgeVerdict}.`,
      );
    }
  }
  if (ctx.load && ctx.hikari && ctx.load.concurrency.value > ctx.hikari.value) {
    notes.push(
      `The load keeps ${num(ctx.load.concurrency.value)} statements busy at once; ${ctx.hikari.value} is what ${plural(input.cores ?? 0, 'core')} run well (HikariCP). More connections queue on the CPU instead: make statements faster.`,
    );
  }
  if (
    ctx.load &&
    ctx.load.concurrency.value < 1 &&
    input.sources.ratePerSecond?.includes('pg_stat_statements')
  ) {
    notes.push(
      `The measured load keeps ${num(ctx.load.concurrency.value)} connections busy: if this was a quiet moment, measure at a peak (--sample 60s) or pass --rate and --mean-ms, or the pools come out too small.`,
    );
  }
  if (ctx.load && input.sources.meanMs?.includes('pg_stat_statements')) {
    notes.push(
      "pg_stat_statements measures execution on the server only: a connection is also held for round trips and the app's work inside transactions. Pass --mean-ms with the app's own time per checkout when you have it.",
    );
  }
  const minimumOpen = input.replicas * input.poolMin + input.otherConsumers;
  if (minimumOpen > ctx.usableValue) {
    notes.push(
      `The pools' min alone needs ${minimumOpen} = ${input.replicas} × ${input.poolMin} + ${input.otherConsumers} other, more than the ${ctx.usableValue} usable: instances will fail to start.`,
    );
  }
  if (input.otherConsumers > 0 && input.sources.otherConsumers?.includes('now')) {
    notes.push(
      'Other consumers were counted now; at their worst they may hold more. Pass --other to plan for that.',
    );
  }
  return notes;
}
