/**
 * @pgwarden/pool — a drop-in node-postgres pg.Pool that cannot exhaust silently.
 *
 * ```ts
 * import { Pool } from '@pgwarden/pool';
 * const pool = new Pool({ connectionString, max: 50, maxOverflow: 20, connectionTimeoutMillis: 30_000 });
 * ```
 */
export { Pool, defaultRegistry } from './pool.js';
export type { ConnectCallback, LeakInfo, PoolQueryConfig, ReleaseFunction } from './pool.js';
export type {
  CircuitBreakerOptions,
  ClientConstructor,
  MetricsOptions,
  PoolOptions,
  RetryOptions,
  SiteCapture,
} from './options.js';
export {
  AcquireTimeoutError,
  CircuitOpenError,
  ConnectTimeoutError,
  PoolEndedError,
  PoolError,
  QueueFullError,
  isAcquireTimeoutError,
  isCircuitOpenError,
  isPoolError,
  isQueueFullError,
} from './errors.js';
export type { HolderInfo, PoolDiagnosis, PoolErrorCode } from './errors.js';
export type { CheckoutInfo, ConnectionInfo, PoolInspection } from './inspect.js';
export { POOL_METRICS, registerPoolMetrics } from './metrics.js';
export { createPoolHandler } from './http.js';
export type { PoolHandlerOptions, PoolRequestHandler } from './http.js';
export { PoolCluster, createCluster } from './cluster.js';
export type { ClusterOptions } from './cluster.js';
export { isConnectionLostError, isTransientConnectError } from './transient.js';
export type { ClientErrorCode } from './transient.js';
export { systemClock } from './clock.js';
export type { Clock, TimerHandle } from './clock.js';
