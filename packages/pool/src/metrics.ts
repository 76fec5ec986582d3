/**
 * Prometheus metrics with the runbook's names, pulled from the pools' own counters at scrape time
 * (nothing is computed on the hot path). Metrics are registered once per registry; every pool that
 * registers with it appears as its own `pool` label.
 */
import type { Registry } from 'prom-client';
import type { Pool } from './pool.js';
import type { Histogram } from './stats.js';

type Labels = Record<string, string | number>;
interface Sample {
  value: number;
  labels: Labels;
  metricName?: string;
}
interface MetricData {
  name: string;
  help: string;
  type: 'gauge' | 'counter' | 'histogram';
  values: Sample[];
  aggregator: 'sum';
}

interface Member {
  pool: Pool;
  environment: string;
}

type Reader = (member: Member, labels: Labels) => Sample[];

const one = (value: number, labels: Labels): Sample[] => [{ value, labels }];

function histogramSamples(name: string, h: Histogram, labels: Labels): Sample[] {
  const cumulative = h.cumulative();
  const out: Sample[] = h.bounds.map((le, i) => ({
    value: cumulative[i] as number,
    labels: { ...labels, le },
    metricName: `${name}_bucket`,
  }));
  out.push({ value: h.count, labels: { ...labels, le: '+Inf' }, metricName: `${name}_bucket` });
  out.push({ value: h.sum, labels, metricName: `${name}_sum` });
  out.push({ value: h.count, labels, metricName: `${name}_count` });
  return out;
}

/** Every metric the pool exports: name, type, help and how to read it from a pool. */
export const POOL_METRICS: { name: string; type: MetricData['type']; help: string; read: Reader }[] = [
  {
    name: 'database_connections_active',
    type: 'gauge',
    help: 'Connections handed out by the pool (checked out or running pipelined statements)',
    read: ({ pool }, l) => one(pool.activeCount, l),
  },
  {
    name: 'database_connections_idle',
    type: 'gauge',
    help: 'Open connections waiting in the pool',
    read: ({ pool }, l) => one(pool.idleCount, l),
  },
  {
    name: 'database_connections_max',
    type: 'gauge',
    help: 'Most connections the pool may open (max + maxOverflow): active / max is pool usage',
    read: ({ pool }, l) => one(pool._settings.max + pool._settings.maxOverflow, l),
  },
  {
    name: 'database_connections_pending',
    type: 'gauge',
    help: 'Callers waiting for a connection',
    read: ({ pool }, l) => one(pool._waiters.length, l),
  },
  {
    name: 'database_connection_wait_time_seconds',
    type: 'histogram',
    help: 'Time callers waited for a connection',
    read: ({ pool }, l) => histogramSamples('database_connection_wait_time_seconds', pool._stats.waitTime, l),
  },
  {
    name: 'database_query_duration_seconds',
    type: 'histogram',
    help: 'Duration of statements run through the pool',
    read: ({ pool }, l) => histogramSamples('database_query_duration_seconds', pool._stats.queryDuration, l),
  },
  {
    name: 'database_errors_total',
    type: 'counter',
    help: 'Errors seen by the pool, by SQLSTATE or error code',
    read: ({ pool }, l) =>
      [...pool._stats.errors].map(([code, value]) => ({ value, labels: { ...l, code } })),
  },
  {
    name: 'database_connection_timeouts_total',
    type: 'counter',
    help: 'Acquires that gave up after connectionTimeoutMillis',
    read: ({ pool }, l) => one(pool._stats.timeouts, l),
  },
  {
    name: 'database_connection_leaks_total',
    type: 'counter',
    help: 'Checkouts held longer than leakDetectionThresholdMillis',
    read: ({ pool }, l) => one(pool._stats.leaks, l),
  },
  {
    name: 'database_connections_created_total',
    type: 'counter',
    help: 'Connections opened by the pool',
    read: ({ pool }, l) => one(pool._stats.created, l),
  },
  {
    name: 'database_connections_closed_total',
    type: 'counter',
    help: 'Connections closed by the pool, by reason',
    read: ({ pool }, l) =>
      [...pool._stats.closed].map(([reason, value]) => ({ value, labels: { ...l, reason } })),
  },
];

const membersByRegistry = new WeakMap<Registry, Set<Member>>();

/**
 * Registers a pool's metrics in `registry`. Returns a function that removes the pool again (its
 * series disappear at the next scrape).
 */
export function registerPoolMetrics(pool: Pool, registry: Registry, environment: string): () => void {
  let members = membersByRegistry.get(registry);
  if (!members) {
    const set = new Set<Member>();
    members = set;
    membersByRegistry.set(registry, set);
    for (const metric of POOL_METRICS) {
      registry.registerMetric({
        name: metric.name,
        help: metric.help,
        type: metric.type,
        aggregator: 'sum',
        get: async (): Promise<MetricData> => {
          const values: Sample[] = [];
          for (const member of set) {
            values.push(...metric.read(member, { pool: member.pool.name, environment: member.environment }));
          }
          return { name: metric.name, help: metric.help, type: metric.type, values, aggregator: 'sum' };
        },
        reset: () => undefined,
      } as unknown as Parameters<Registry['registerMetric']>[0]);
    }
  }
  for (const member of members) {
    if (member.pool.name === pool.name && member.environment === environment && member.pool !== pool) {
      throw new Error(
        `a pool named "${pool.name}" is already registered in this metrics registry: give each pool its own name`,
      );
    }
  }
  const member = { pool, environment };
  members.add(member);
  return () => members.delete(member);
}
