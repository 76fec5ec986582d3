import type { Registry } from 'prom-client';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';

/** The constructor the pool uses to make connections: pg's `Client` or anything shaped like it. */
// biome-ignore lint/suspicious/noExplicitAny: mirrors pg.Pool, which accepts any Client constructor
export type ClientConstructor = new (options: any) => any;

export type SiteCapture = 'always' | 'adaptive' | 'never';

export interface RetryOptions {
  /** Attempts per connection, the first included (default 3). */
  maxAttempts?: number;
  /** First backoff delay (default 100 ms); doubled each attempt, with jitter. */
  initialDelayMillis?: number;
  /** Longest backoff delay (default 2000 ms). */
  maxDelayMillis?: number;
}

export interface CircuitBreakerOptions {
  /** Consecutive failed connection attempts that open the breaker (default 5). */
  threshold?: number;
  /** How long the breaker stays open before one trial connection (default 5000 ms). */
  halfOpenAfterMillis?: number;
}

export interface MetricsOptions {
  /** Registry to register the pool's metrics in. Never the global registry unless you pass it. */
  registry?: Registry;
  /** Value of the `environment` label (default: `$PGWARDEN_ENVIRONMENT`, `$NODE_ENV`, or "default"). */
  environment?: string;
}

/**
 * Every pg.Pool option, with the same meaning, plus pgwarden's. Unknown keys are passed to the
 * Client unchanged, as pg.Pool does.
 */
export interface PoolOptions {
  // pg.Pool's own options
  max?: number;
  /** pg's old name for `max`. */
  poolSize?: number;
  min?: number;
  idleTimeoutMillis?: number;
  connectionTimeoutMillis?: number;
  maxUses?: number;
  maxLifetimeSeconds?: number;
  allowExitOnIdle?: boolean;
  // biome-ignore lint/suspicious/noExplicitAny: pg.Pool passes its own Client type here
  verify?: (client: any, callback: (err?: Error) => void) => void;
  // biome-ignore lint/suspicious/noExplicitAny: pg.Pool passes its own Client type here
  onConnect?: (client: any) => unknown;
  log?: (...messages: unknown[]) => void;
  Client?: ClientConstructor;
  Promise?: PromiseConstructor;
  /** pg 8.23 pipeline mode on every client; with it `pool.query()` may share busy connections. */
  pipeline?: boolean;

  // pgwarden
  /** Name used in metrics labels, logs and the application_name (default "default"). */
  name?: string;
  /** Service name; with it each connection's application_name is `service:pool`. */
  service?: string;
  /** Burst connections beyond `max`, closed when returned while nobody waits (default 0). */
  maxOverflow?: number;
  /** Callers allowed to wait; past it acquire fails at once with QueueFullError (default unlimited). */
  maxWaiting?: number;
  /** Connections established at once while others are busy (default 2; unlimited when none is busy). */
  maxConnecting?: number;
  /** Spread of max lifetime, as a fraction, so connections do not all retire together (default 0.1). */
  lifetimeJitter?: number;
  /** A connection idle longer than this is checked with `SELECT 1` before it is handed out (default 10000; 0 disables). */
  validateAfterIdleMillis?: number;
  /** Deadline of that check (default 3000). */
  validationTimeoutMillis?: number;
  /** Checkouts held longer are reported as leaks (default 0 = off). */
  leakDetectionThresholdMillis?: number;
  /** Where checkouts record the code site that took them (default "adaptive": sampled, all after trouble). */
  captureSites?: SiteCapture;
  /** Server-side `statement_timeout` of every connection, in ms. */
  statementTimeoutMillis?: number;
  /** Server-side `idle_in_transaction_session_timeout` of every connection, in ms. */
  idleInTransactionTimeoutMillis?: number;
  /** How the server-side settings are applied: startup parameters (default) or `set_config` after connect (for PgBouncer). */
  sessionSettingsVia?: 'startup' | 'query';
  /** Retry of transient connection failures (`false` turns it off). */
  retry?: RetryOptions | false;
  /** Circuit breaker over connection attempts (`false` turns it off). */
  circuitBreaker?: CircuitBreakerOptions | false;
  /** Prometheus metrics: `true`, options, or `false` (default: on only when a registry is given or `DB_POOL_MONITOR=true`). */
  metrics?: boolean | MetricsOptions;
  /** Statements allowed in flight on one shared connection with `pipeline: true` (default 16). */
  maxPipeline?: number;
  /** Interval of the housekeeper that tops the pool up to `min` (default 30000). */
  housekeepingIntervalMillis?: number;
  /** Where the pool reads time (tests pass a fake clock). */
  clock?: Clock;
  /** Environment to read `DB_POOL_*` overrides from (default `process.env`). */
  env?: Record<string, string | undefined>;

  // the runbook's keys (database.yaml)
  max_connections?: number;
  min_connections?: number;
  max_overflow?: number;
  /** Seconds. */
  connection_timeout?: number;
  /** Seconds. */
  recycle?: number;

  [clientOption: string]: unknown;
}

/** Settings after defaults, runbook keys and environment overrides were applied. */
export interface ResolvedSettings {
  name: string;
  max: number;
  min: number;
  maxOverflow: number;
  idleTimeoutMillis: number;
  connectionTimeoutMillis: number;
  maxUses: number;
  maxLifetimeSeconds: number;
  lifetimeJitter: number;
  allowExitOnIdle: boolean;
  maxWaiting: number;
  maxConnecting: number;
  validateAfterIdleMillis: number;
  validationTimeoutMillis: number;
  leakDetectionThresholdMillis: number;
  captureSites: SiteCapture;
  pipeline: boolean;
  maxPipeline: number;
  housekeepingIntervalMillis: number;
  retry: Required<RetryOptions> | false;
  circuitBreaker: Required<CircuitBreakerOptions> | false;
  metrics: false | { registry: Registry | undefined; environment: string };
  sessionSettingsVia: 'startup' | 'query';
  sessionSettings: Record<string, string>;
  clock: Clock;
}

/** Keys the pool consumes; everything else is a Client option. */
const POOL_ONLY_KEYS = new Set([
  'name',
  'service',
  'maxOverflow',
  'maxWaiting',
  'maxConnecting',
  'lifetimeJitter',
  'validateAfterIdleMillis',
  'validationTimeoutMillis',
  'leakDetectionThresholdMillis',
  'captureSites',
  'statementTimeoutMillis',
  'idleInTransactionTimeoutMillis',
  'sessionSettingsVia',
  'retry',
  'circuitBreaker',
  'metrics',
  'maxPipeline',
  'housekeepingIntervalMillis',
  'clock',
  'env',
  'max_connections',
  'min_connections',
  'max_overflow',
  'connection_timeout',
  'recycle',
]);

function checkNumber(key: string, value: unknown, opts: { integer?: boolean; min?: number } = {}): number {
  const { integer = false, min = 0 } = opts;
  if (
    typeof value !== 'number' ||
    Number.isNaN(value) ||
    (integer && !Number.isInteger(value) && value !== Infinity)
  ) {
    throw new RangeError(
      `${key} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${String(value)}`,
    );
  }
  if (value < min) throw new RangeError(`${key} must be >= ${min}, got ${value}`);
  return value;
}

function envNumber(env: Record<string, string | undefined>, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`environment variable ${name} must be a number of seconds >= 0, got "${raw}"`);
  }
  return value;
}

function envBoolean(env: Record<string, string | undefined>, name: string): boolean | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new RangeError(`environment variable ${name} must be true or false, got "${raw}"`);
}

function pick<T>(...values: (T | undefined)[]): T | undefined {
  for (const v of values) if (v !== undefined && v !== null) return v;
  return undefined;
}

export function resolveSettings(options: PoolOptions): ResolvedSettings {
  const env = options.env ?? process.env;

  const max = checkNumber(
    'max',
    pick(options.max_connections, options.max || undefined, options.poolSize || undefined, 10),
    {
      integer: true,
      min: 1,
    },
  );
  const min = checkNumber('min', pick(options.min_connections, options.min, 0), { integer: true });
  if (min > max) throw new RangeError(`min (${min}) must not exceed max (${max})`);
  const maxOverflow = checkNumber('maxOverflow', pick(options.max_overflow, options.maxOverflow, 0), {
    integer: true,
  });

  const timeoutSeconds = pick(envNumber(env, 'DB_POOL_TIMEOUT'), options.connection_timeout);
  const connectionTimeoutMillis = checkNumber(
    'connectionTimeoutMillis',
    timeoutSeconds !== undefined ? timeoutSeconds * 1000 : pick(options.connectionTimeoutMillis, 0),
  );
  const maxLifetimeSeconds = checkNumber(
    'maxLifetimeSeconds',
    pick(envNumber(env, 'DB_POOL_RECYCLE'), options.recycle, options.maxLifetimeSeconds || undefined, 0),
  );

  const monitor = envBoolean(env, 'DB_POOL_MONITOR');
  let metrics: ResolvedSettings['metrics'] = false;
  const metricsOption = options.metrics;
  const wantMetrics = monitor ?? (metricsOption === undefined ? false : metricsOption !== false);
  if (wantMetrics) {
    const given = typeof metricsOption === 'object' ? metricsOption : {};
    metrics = {
      registry: given.registry,
      environment: given.environment ?? env.PGWARDEN_ENVIRONMENT ?? env.NODE_ENV ?? 'default',
    };
  }

  const retry =
    options.retry === false
      ? false
      : {
          maxAttempts: checkNumber('retry.maxAttempts', options.retry?.maxAttempts ?? 3, {
            integer: true,
            min: 1,
          }),
          initialDelayMillis: checkNumber(
            'retry.initialDelayMillis',
            options.retry?.initialDelayMillis ?? 100,
          ),
          maxDelayMillis: checkNumber('retry.maxDelayMillis', options.retry?.maxDelayMillis ?? 2000),
        };
  const circuitBreaker =
    options.circuitBreaker === false
      ? false
      : {
          threshold: checkNumber('circuitBreaker.threshold', options.circuitBreaker?.threshold ?? 5, {
            integer: true,
            min: 1,
          }),
          halfOpenAfterMillis: checkNumber(
            'circuitBreaker.halfOpenAfterMillis',
            options.circuitBreaker?.halfOpenAfterMillis ?? 5000,
          ),
        };

  const captureSites = options.captureSites ?? 'adaptive';
  if (!['always', 'adaptive', 'never'].includes(captureSites)) {
    throw new RangeError(`captureSites must be "always", "adaptive" or "never", got ${String(captureSites)}`);
  }
  const sessionSettingsVia = options.sessionSettingsVia ?? 'startup';
  if (sessionSettingsVia !== 'startup' && sessionSettingsVia !== 'query') {
    throw new RangeError(
      `sessionSettingsVia must be "startup" or "query", got ${String(sessionSettingsVia)}`,
    );
  }

  const sessionSettings: Record<string, string> = {};
  if (options.statementTimeoutMillis !== undefined) {
    sessionSettings.statement_timeout = String(
      checkNumber('statementTimeoutMillis', options.statementTimeoutMillis, { integer: true }),
    );
  }
  if (options.idleInTransactionTimeoutMillis !== undefined) {
    sessionSettings.idle_in_transaction_session_timeout = String(
      checkNumber('idleInTransactionTimeoutMillis', options.idleInTransactionTimeoutMillis, {
        integer: true,
      }),
    );
  }

  const lifetimeJitter = checkNumber('lifetimeJitter', options.lifetimeJitter ?? 0.1);
  if (lifetimeJitter >= 1) throw new RangeError(`lifetimeJitter must be below 1, got ${lifetimeJitter}`);

  return {
    name: options.name ?? 'default',
    max,
    min,
    maxOverflow,
    idleTimeoutMillis: checkNumber('idleTimeoutMillis', options.idleTimeoutMillis ?? 10_000),
    connectionTimeoutMillis,
    maxUses: checkNumber('maxUses', options.maxUses || Infinity, { min: 1 }),
    maxLifetimeSeconds,
    lifetimeJitter,
    allowExitOnIdle: options.allowExitOnIdle ?? false,
    maxWaiting: checkNumber('maxWaiting', options.maxWaiting ?? Infinity),
    maxConnecting: checkNumber('maxConnecting', options.maxConnecting ?? 2, { min: 1 }),
    validateAfterIdleMillis: checkNumber(
      'validateAfterIdleMillis',
      options.validateAfterIdleMillis ?? 10_000,
    ),
    validationTimeoutMillis: checkNumber('validationTimeoutMillis', options.validationTimeoutMillis ?? 3000, {
      min: 1,
    }),
    leakDetectionThresholdMillis: checkNumber(
      'leakDetectionThresholdMillis',
      options.leakDetectionThresholdMillis ?? 0,
    ),
    captureSites,
    pipeline: options.pipeline === true,
    maxPipeline: checkNumber('maxPipeline', options.maxPipeline ?? 16, { integer: true, min: 1 }),
    housekeepingIntervalMillis: checkNumber(
      'housekeepingIntervalMillis',
      options.housekeepingIntervalMillis ?? 30_000,
      {
        min: 1,
      },
    ),
    retry,
    circuitBreaker,
    metrics,
    sessionSettingsVia,
    sessionSettings,
    clock: options.clock ?? systemClock,
  };
}

/**
 * The options object handed to every Client: the caller's options minus pgwarden's own keys, with
 * the password hidden from enumeration (so it never shows in logs or `console.log(pool)`), and the
 * server-side settings added as startup parameters when so configured.
 */
export function clientOptionsFrom(options: PoolOptions, settings: ResolvedSettings): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(options)) {
    if (!POOL_ONLY_KEYS.has(key) && key !== 'password') out[key] = options[key];
  }
  out.max = settings.max;
  out.min = settings.min;
  out.idleTimeoutMillis = settings.idleTimeoutMillis;
  out.maxUses = settings.maxUses;
  out.maxLifetimeSeconds = settings.maxLifetimeSeconds;
  out.allowExitOnIdle = settings.allowExitOnIdle;
  if (settings.connectionTimeoutMillis) out.connectionTimeoutMillis = settings.connectionTimeoutMillis;
  if ('password' in options) hidePassword(out, options.password);
  // A connection string may carry the password too: keep it out of logs and console.log(pool).
  if (typeof out.connectionString === 'string') hideProperty(out, 'connectionString', out.connectionString);
  if (options.service !== undefined && options.application_name === undefined) {
    out.application_name = `${options.service}:${settings.name}`;
  }
  if (settings.sessionSettingsVia === 'startup') {
    for (const [key, value] of Object.entries(settings.sessionSettings)) {
      if (out[key] === undefined) out[key] = Number(value);
    }
  }
  return out;
}

export function hidePassword(target: Record<string, unknown>, password: unknown): void {
  hideProperty(target, 'password', password);
}

function hideProperty(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { configurable: true, enumerable: false, writable: true, value });
}
