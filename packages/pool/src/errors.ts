/**
 * Typed pool errors. Each carries a stable `code` so callers can branch on it without parsing
 * messages, and an `isX()` guard that also works across package copies (it checks the brand, not
 * `instanceof`).
 */

/** Who held a connection when an acquire failed: the answer to "who is eating my pool?". */
export interface HolderInfo {
  /** Backend process id of the connection (pg_stat_activity.pid), when known. */
  pid: number | undefined;
  /** `file:line:column` of the code that checked the connection out, when captured. */
  site: string | undefined;
  /** How long the connection has been checked out, in milliseconds. */
  heldMillis: number;
  /** The last query text run on it (truncated), when known. */
  lastQuery: string | undefined;
}

/** The pool's state at the moment an acquire failed. */
export interface PoolDiagnosis {
  pool: string;
  total: number;
  active: number;
  idle: number;
  waiting: number;
  connecting: number;
  max: number;
  maxOverflow: number;
  /** Connections held longest first (at most five). */
  holders: HolderInfo[];
}

const brand = Symbol.for('pgwarden.pool.error');

export type PoolErrorCode =
  | 'PGWARDEN_ACQUIRE_TIMEOUT'
  | 'PGWARDEN_QUEUE_FULL'
  | 'PGWARDEN_POOL_ENDED'
  | 'PGWARDEN_CIRCUIT_OPEN'
  | 'PGWARDEN_CONNECT_TIMEOUT';

/** Base class of every error the pool itself raises. */
export class PoolError extends Error {
  readonly [brand] = true;
  readonly code: PoolErrorCode;

  constructor(code: PoolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PoolError';
    this.code = code;
  }
}

export function isPoolError(error: unknown): error is PoolError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[brand] === true;
}

function describeHolders(diagnosis: PoolDiagnosis): string {
  if (diagnosis.holders.length === 0) return '';
  const lines = diagnosis.holders.map((h) => {
    const who = h.pid === undefined ? 'connection' : `pid ${h.pid}`;
    const where = h.site ?? 'site not captured';
    return `  ${who} held ${formatMillis(h.heldMillis)} by ${where}`;
  });
  return `\ntop holders:\n${lines.join('\n')}`;
}

export function formatMillis(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
}

function counts(d: PoolDiagnosis): string {
  return `(pool=${d.pool}, total=${d.total}, active=${d.active}, idle=${d.idle}, waiting=${d.waiting}, connecting=${d.connecting}, max=${d.max}+${d.maxOverflow} overflow)`;
}

/**
 * No connection could be handed out within `connectionTimeoutMillis`. The message keeps pg-pool's
 * wording ("timeout exceeded when trying to connect") so existing log matchers keep working.
 */
export class AcquireTimeoutError extends PoolError {
  readonly diagnosis: PoolDiagnosis;
  readonly timeoutMillis: number;

  constructor(timeoutMillis: number, diagnosis: PoolDiagnosis, cause?: unknown) {
    super(
      'PGWARDEN_ACQUIRE_TIMEOUT',
      `timeout exceeded when trying to connect: no connection within ${timeoutMillis}ms ${counts(diagnosis)}${describeHolders(diagnosis)}`,
      cause === undefined ? undefined : { cause },
    );
    this.name = 'AcquireTimeoutError';
    this.timeoutMillis = timeoutMillis;
    this.diagnosis = diagnosis;
  }
}

export function isAcquireTimeoutError(error: unknown): error is AcquireTimeoutError {
  return isPoolError(error) && error.code === 'PGWARDEN_ACQUIRE_TIMEOUT';
}

/** The waiting line is full (`maxWaiting`): the pool sheds load instead of piling callers up. */
export class QueueFullError extends PoolError {
  readonly diagnosis: PoolDiagnosis;

  constructor(maxWaiting: number, diagnosis: PoolDiagnosis) {
    super(
      'PGWARDEN_QUEUE_FULL',
      `pool queue is full: ${maxWaiting} callers are already waiting ${counts(diagnosis)}${describeHolders(diagnosis)}`,
    );
    this.name = 'QueueFullError';
    this.diagnosis = diagnosis;
  }
}

export function isQueueFullError(error: unknown): error is QueueFullError {
  return isPoolError(error) && error.code === 'PGWARDEN_QUEUE_FULL';
}

/** The pool was ended; pg-pool's message is kept. */
export class PoolEndedError extends PoolError {
  constructor(message = 'Cannot use a pool after calling end on the pool') {
    super('PGWARDEN_POOL_ENDED', message);
    this.name = 'PoolEndedError';
  }
}

/** The circuit breaker is open: recent connection attempts failed, so callers fail fast. */
export class CircuitOpenError extends PoolError {
  constructor(cause?: unknown) {
    super(
      'PGWARDEN_CIRCUIT_OPEN',
      'circuit breaker is open: the database refused or dropped recent connection attempts; failing fast instead of queueing',
      cause === undefined ? undefined : { cause },
    );
    this.name = 'CircuitOpenError';
  }
}

export function isCircuitOpenError(error: unknown): error is CircuitOpenError {
  return isPoolError(error) && error.code === 'PGWARDEN_CIRCUIT_OPEN';
}

/** Establishing a connection took longer than its deadline (DNS, TCP or authentication stall). */
export class ConnectTimeoutError extends PoolError {
  constructor(timeoutMillis: number) {
    super('PGWARDEN_CONNECT_TIMEOUT', `Connection terminated due to connection timeout (${timeoutMillis}ms)`);
    this.name = 'ConnectTimeoutError';
  }
}
