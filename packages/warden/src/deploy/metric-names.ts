/**
 * The metric names pgwarden exports, for the generated rules and dashboard (and their tests, which
 * check these lists against the pool's POOL_METRICS and the agent's actual /metrics output).
 */

/** Every metric the agent (`pgwarden watch`, agent/server.ts) serves on /metrics. */
export const AGENT_METRIC_NAMES = [
  'database_connections_active',
  'database_connections_max',
  'database_connections_idle',
  'database_connections_idle_in_transaction',
  'database_longest_transaction_seconds',
  'database_blocked_sessions',
  'pgbouncer_clients_waiting',
  'pgwarden_up',
  'pgwarden_incidents_open',
  'pgwarden_probe_duration_seconds',
  'pgwarden_leader',
  'pgwarden_sessions',
  'pgwarden_remedy_actions',
] as const;
