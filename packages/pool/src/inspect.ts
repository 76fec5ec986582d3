/**
 * `pool.inspect()`: everything a person (or pgwarden's agent) needs to see who holds the pool's
 * connections, as one JSON-serialisable object. Passwords are never part of it.
 */
import type { Pool } from './pool.js';
import { truncate } from './text.js';
import { formatSite } from './site.js';
import type { SlotState } from './slot.js';

export interface CheckoutInfo {
  pid: number | undefined;
  state: 'busy' | 'shared';
  site: string | undefined;
  heldMillis: number;
  lastQuery: string | undefined;
  /** Statements in flight, for a connection shared by pipelined `pool.query()`. */
  inFlight: number;
  leakSuspected: boolean;
}

export interface ConnectionInfo {
  pid: number | undefined;
  state: SlotState;
  ageMillis: number;
  uses: number;
  idleMillis: number | undefined;
  retiresInMillis: number | undefined;
}

export interface PoolInspection {
  pool: string;
  at: string;
  settings: {
    min: number;
    max: number;
    maxOverflow: number;
    connectionTimeoutMillis: number;
    idleTimeoutMillis: number;
    maxLifetimeSeconds: number;
    maxUses: number | null;
    maxWaiting: number | null;
    leakDetectionThresholdMillis: number;
    captureSites: string;
    pipeline: boolean;
    host: string | undefined;
    database: string | undefined;
    user: string | undefined;
    applicationName: string | undefined;
  };
  counts: {
    total: number;
    active: number;
    idle: number;
    waiting: number;
    connecting: number;
    expired: number;
  };
  /** Pool usage: active / (max + maxOverflow), 0..1. */
  usage: number;
  breaker: 'closed' | 'open' | 'half-open';
  ending: boolean;
  waiters: { waitedMillis: number; site: string | undefined }[];
  checkouts: CheckoutInfo[];
  connections: ConnectionInfo[];
  stats: {
    acquired: number;
    created: number;
    connectFailures: number;
    timeouts: number;
    queueFull: number;
    leaks: number;
    leaksReclaimed: number;
    closed: Record<string, number>;
    errors: Record<string, number>;
    waitTimeP95Seconds: number | undefined;
    queryDurationP95Seconds: number | undefined;
  };
  recentErrors: { at: string; code: string; message: string }[];
}

const QUERY_TEXT_LIMIT = 500;

function finite(n: number): number | null {
  return Number.isFinite(n) ? n : null;
}

function connectionTarget(options: Record<string, unknown>): {
  host?: string;
  database?: string;
  user?: string;
} {
  const out: { host?: string; database?: string; user?: string } = {};
  if (typeof options.connectionString === 'string') {
    try {
      const url = new URL(options.connectionString);
      out.host = url.port ? `${url.hostname}:${url.port}` : url.hostname;
      out.database = decodeURIComponent(url.pathname.replace(/^\//, '')) || undefined;
      out.user = decodeURIComponent(url.username) || undefined;
    } catch {
      // not a URL (a key=value string): show nothing rather than something wrong
    }
  }
  if (typeof options.host === 'string')
    out.host = options.port ? `${options.host}:${options.port}` : options.host;
  if (typeof options.database === 'string') out.database = options.database;
  if (typeof options.user === 'string') out.user = options.user;
  return out;
}

export function inspectPool(pool: Pool): PoolInspection {
  const now = pool._clock.now();
  const s = pool._settings;
  const stats = pool._stats;
  const checkouts: CheckoutInfo[] = [];
  const connections: ConnectionInfo[] = [];
  for (const slot of pool._slots.values()) {
    connections.push({
      pid: slot.pid,
      state: slot.state,
      ageMillis: Math.round(now - slot.createdAt),
      uses: slot.uses,
      idleMillis: slot.state === 'idle' ? Math.round(now - slot.idleSince) : undefined,
      retiresInMillis: Number.isFinite(slot.retireAt)
        ? Math.max(0, Math.round(slot.retireAt - now))
        : undefined,
    });
    if (slot.state === 'busy' || slot.state === 'shared') {
      checkouts.push({
        pid: slot.pid,
        state: slot.state,
        site: formatSite(slot.site),
        heldMillis: Math.round(now - slot.checkoutAt),
        lastQuery: slot.lastQuery === undefined ? undefined : truncate(slot.lastQuery, QUERY_TEXT_LIMIT),
        inFlight: slot.state === 'shared' ? slot.inFlight : 1,
        leakSuspected: slot.leakReported,
      });
    }
  }
  checkouts.sort((a, b) => b.heldMillis - a.heldMillis);
  const target = connectionTarget(pool.options);
  const capacity = s.max + s.maxOverflow;
  return {
    pool: pool.name,
    at: new Date(now).toISOString(),
    settings: {
      min: s.min,
      max: s.max,
      maxOverflow: s.maxOverflow,
      connectionTimeoutMillis: s.connectionTimeoutMillis,
      idleTimeoutMillis: s.idleTimeoutMillis,
      maxLifetimeSeconds: s.maxLifetimeSeconds,
      maxUses: finite(s.maxUses),
      maxWaiting: finite(s.maxWaiting),
      leakDetectionThresholdMillis: s.leakDetectionThresholdMillis,
      captureSites: s.captureSites,
      pipeline: s.pipeline,
      host: target.host,
      database: target.database,
      user: target.user,
      applicationName:
        typeof pool.options.application_name === 'string' ? pool.options.application_name : undefined,
    },
    counts: {
      total: pool.totalCount,
      active: pool.activeCount,
      idle: pool.idleCount,
      waiting: pool._waiters.length,
      connecting: pool._connecting,
      expired: pool.expiredCount,
    },
    usage: capacity === 0 ? 0 : pool.activeCount / capacity,
    breaker: pool._breakerState,
    ending: pool.ending,
    waiters: pool._waitersInfo(now),
    checkouts,
    connections,
    stats: {
      acquired: stats.acquired,
      created: stats.created,
      connectFailures: stats.connectFailures,
      timeouts: stats.timeouts,
      queueFull: stats.queueFull,
      leaks: stats.leaks,
      leaksReclaimed: stats.leaksReclaimed,
      closed: Object.fromEntries(stats.closed),
      errors: Object.fromEntries(stats.errors),
      waitTimeP95Seconds: stats.waitTime.quantile(0.95),
      queryDurationP95Seconds: stats.queryDuration.quantile(0.95),
    },
    recentErrors: stats.recentErrors.slice(),
  };
}
