/**
 * Prometheus recording and alerting rules for pgwarden's metrics, after the runbook "Database
 * Connection Pool Exhausted" and the usual connection alerts (warning at 75% of usable connections,
 * critical at 90%).
 *
 * The pool (@pgwarden/pool) and the agent (`pgwarden watch`) both export database_connections_active
 * and database_connections_max: the pool's series carry a `pool` label, the agent's a `database`
 * label, so the rules select by label presence ({pool!=""} against {database!=""}).
 *
 * Every alert has a `severity` label and `summary`, `description` and `runbook_url` annotations;
 * runbook_url is `<runbookUrl>#<alert name in lower case>` (default DEFAULT_RUNBOOK_URL, a
 * placeholder to replace with your own runbook: `pgwarden rules --runbook-url https://...`).
 */
import { stringify } from 'yaml';

export const DEFAULT_RUNBOOK_URL = 'https://runbooks.example.com/pgwarden';

export interface RulesOptions {
  runbookUrl?: string;
}

interface RecordingRule {
  record: string;
  expr: string;
}

interface AlertSpec {
  alert: string;
  expr: string;
  for: string;
  severity: 'warning' | 'critical';
  summary: string;
  description: string;
}

const POOL = '{pool!=""}';
const SERVER = '{database!=""}';

/** Recorded series the alerts and the dashboard build on. */
export const RECORDING_RULES: RecordingRule[] = [
  {
    record: 'pgwarden:pool_usage:ratio',
    expr: `database_connections_active${POOL} / database_connections_max${POOL}`,
  },
  {
    record: 'pgwarden:server_usage:ratio',
    expr: `database_connections_active${SERVER} / database_connections_max${SERVER}`,
  },
  {
    record: 'pgwarden:pool_wait_time_seconds:p95',
    expr: 'histogram_quantile(0.95, sum by (le, pool, environment) (rate(database_connection_wait_time_seconds_bucket[5m])))',
  },
  {
    record: 'pgwarden:query_duration_seconds:p95',
    expr: 'histogram_quantile(0.95, sum by (le, pool, environment) (rate(database_query_duration_seconds_bucket[5m])))',
  },
  {
    record: 'pgwarden:database_errors:rate5m',
    expr: 'sum by (pool, environment) (rate(database_errors_total[5m]))',
  },
];

export const ALERTS: AlertSpec[] = [
  {
    alert: 'PgwardenPoolUsageHigh',
    expr: 'pgwarden:pool_usage:ratio > 0.75',
    for: '2m',
    severity: 'warning',
    summary: 'Pool {{ $labels.pool }} uses {{ $value | humanizePercentage }} of its connections',
    description:
      'Pool {{ $labels.pool }} ({{ $labels.environment }}) has more than 75% of its connections checked out.',
  },
  {
    alert: 'PgwardenPoolUsageCritical',
    expr: 'pgwarden:pool_usage:ratio > 0.9',
    for: '1m',
    severity: 'critical',
    summary: 'Pool {{ $labels.pool }} is nearly exhausted ({{ $value | humanizePercentage }})',
    description:
      'Pool {{ $labels.pool }} ({{ $labels.environment }}) has more than 90% of its connections checked out: callers will soon wait or time out.',
  },
  {
    alert: 'PgwardenPoolCallersWaiting',
    expr: `database_connections_pending${POOL} > 0`,
    for: '1m',
    severity: 'warning',
    summary: '{{ $value }} callers wait for a connection from pool {{ $labels.pool }}',
    description:
      'Callers have been waiting for a connection from pool {{ $labels.pool }} ({{ $labels.environment }}) for a minute.',
  },
  {
    alert: 'PgwardenPoolWaitTimeHigh',
    expr: 'pgwarden:pool_wait_time_seconds:p95 > 1',
    for: '5m',
    severity: 'warning',
    summary: 'Callers of pool {{ $labels.pool }} wait {{ $value | humanizeDuration }} (p95) for a connection',
    description:
      'The 95th percentile of the wait for a connection from pool {{ $labels.pool }} ({{ $labels.environment }}) is above 1s.',
  },
  {
    alert: 'PgwardenPoolErrors',
    expr: 'pgwarden:database_errors:rate5m > 0',
    for: '5m',
    severity: 'warning',
    summary: 'Pool {{ $labels.pool }} sees {{ $value | humanize }} database errors per second',
    description: 'Queries through pool {{ $labels.pool }} ({{ $labels.environment }}) keep failing.',
  },
  {
    alert: 'PgwardenServerUsageHigh',
    expr: 'pgwarden:server_usage:ratio > 0.75',
    for: '2m',
    severity: 'warning',
    summary:
      'Database {{ $labels.database }} uses {{ $value | humanizePercentage }} of its usable connections',
    description:
      'Client backends on {{ $labels.database }} ({{ $labels.environment }}) use more than 75% of max_connections minus the reserved slots.',
  },
  {
    alert: 'PgwardenServerUsageCritical',
    expr: 'pgwarden:server_usage:ratio > 0.9',
    for: '1m',
    severity: 'critical',
    summary:
      'Database {{ $labels.database }} is nearly out of connections ({{ $value | humanizePercentage }})',
    description:
      'Client backends on {{ $labels.database }} ({{ $labels.environment }}) use more than 90% of the usable connections: run `pgwarden doctor`.',
  },
  {
    alert: 'PgwardenLongTransaction',
    expr: 'database_longest_transaction_seconds > 300',
    for: '1m',
    severity: 'warning',
    summary: 'A transaction on {{ $labels.database }} has been open for {{ $value | humanizeDuration }}',
    description:
      'The oldest open transaction on {{ $labels.database }} ({{ $labels.environment }}) is older than 5 minutes: it holds a connection and its locks.',
  },
  {
    alert: 'PgwardenBlockedSessions',
    expr: 'database_blocked_sessions > 0',
    for: '1m',
    severity: 'warning',
    summary: '{{ $value }} sessions on {{ $labels.database }} wait for a lock',
    description:
      'Sessions on {{ $labels.database }} ({{ $labels.environment }}) have been waiting for locks other sessions hold for a minute.',
  },
  {
    alert: 'PgwardenPgBouncerClientsWaiting',
    expr: 'pgbouncer_clients_waiting > 0',
    for: '1m',
    severity: 'warning',
    summary: '{{ $value }} PgBouncer clients wait for a server connection to {{ $labels.database }}',
    description:
      'PgBouncer clients for {{ $labels.database }} ({{ $labels.environment }}) have been waiting for a server connection for a minute.',
  },
  {
    alert: 'PgwardenAgentDown',
    expr: 'pgwarden_up == 0',
    for: '1m',
    severity: 'critical',
    summary: 'pgwarden cannot reach database {{ $labels.database }}',
    description:
      'The pgwarden agent has not reached {{ $labels.database }} ({{ $labels.environment }}) for a minute: the database is down or unreachable.',
  },
];

/** The rules file (YAML text) for Prometheus' rule_files. */
export function prometheusRules(options: RulesOptions = {}): string {
  const base = options.runbookUrl ?? DEFAULT_RUNBOOK_URL;
  const doc = {
    groups: [
      { name: 'pgwarden.recording', rules: RECORDING_RULES },
      {
        name: 'pgwarden.alerts',
        rules: ALERTS.map((a) => ({
          alert: a.alert,
          expr: a.expr,
          for: a.for,
          labels: { severity: a.severity },
          annotations: {
            summary: a.summary,
            description: a.description,
            runbook_url: `${base}#${a.alert.toLowerCase()}`,
          },
        })),
      },
    ],
  };
  return `# Generated by \`pgwarden rules\`: do not edit, regenerate (npm run deploy:generate).\n${stringify(doc, { lineWidth: 0 })}`;
}
