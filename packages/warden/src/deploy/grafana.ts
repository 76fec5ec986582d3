/**
 * The Grafana "System Health Dashboard" of the runbook "Database Connection Pool Exhausted", on
 * pgwarden's metrics: a Prometheus datasource variable (${datasource}), an environment variable,
 * and one panel per metric the runbook checks plus the agent's server-side signals. Every query is
 * filtered by environment="$environment" and uses only metrics the pool or the agent exports.
 */

// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };
const ENV = 'environment="$environment"';

interface Target {
  expr: string;
  legendFormat: string;
}

interface PanelSpec {
  title: string;
  description: string;
  unit: string;
  targets: Target[];
  thresholds?: { warning: number; critical: number };
}

const quantile = (q: number, metric: string): string =>
  `histogram_quantile(${q}, sum by (le, pool) (rate(${metric}_bucket{${ENV}}[5m])))`;

export const PANELS: PanelSpec[] = [
  {
    title: 'Database Connections Active',
    description: 'Connections checked out of each app pool, and client backends on each database server',
    unit: 'short',
    targets: [
      { expr: `database_connections_active{pool!="",${ENV}}`, legendFormat: 'pool {{pool}}' },
      { expr: `database_connections_active{database!="",${ENV}}`, legendFormat: 'server {{database}}' },
    ],
  },
  {
    title: 'Connection Pool Usage (%)',
    description: 'active / max: app pools, and server backends against the usable connection slots',
    unit: 'percent',
    thresholds: { warning: 75, critical: 90 },
    targets: [
      {
        expr: `database_connections_active{pool!="",${ENV}} / database_connections_max{pool!="",${ENV}} * 100`,
        legendFormat: 'pool {{pool}}',
      },
      {
        expr: `database_connections_active{database!="",${ENV}} / database_connections_max{database!="",${ENV}} * 100`,
        legendFormat: 'server {{database}}',
      },
    ],
  },
  {
    title: 'Database Query Duration',
    description: 'Query duration percentiles per pool',
    unit: 's',
    targets: [
      { expr: quantile(0.5, 'database_query_duration_seconds'), legendFormat: 'p50 {{pool}}' },
      { expr: quantile(0.95, 'database_query_duration_seconds'), legendFormat: 'p95 {{pool}}' },
      { expr: quantile(0.99, 'database_query_duration_seconds'), legendFormat: 'p99 {{pool}}' },
    ],
  },
  {
    title: 'Database Error Rate',
    description: 'Query errors per second, by pool and SQLSTATE',
    unit: 'reqps',
    targets: [
      {
        expr: `sum by (pool, code) (rate(database_errors_total{${ENV}}[5m]))`,
        legendFormat: '{{pool}} {{code}}',
      },
    ],
  },
  {
    title: 'Connection Wait Time p95',
    description: 'How long callers wait for a connection (95th percentile)',
    unit: 's',
    targets: [{ expr: quantile(0.95, 'database_connection_wait_time_seconds'), legendFormat: '{{pool}}' }],
  },
  {
    title: 'Waiting callers',
    description: 'Callers waiting for a connection from the pool',
    unit: 'short',
    targets: [{ expr: `database_connections_pending{${ENV}}`, legendFormat: '{{pool}}' }],
  },
  {
    title: 'Long transactions',
    description: 'Age of the oldest open transaction (alert above 5 minutes)',
    unit: 's',
    thresholds: { warning: 60, critical: 300 },
    targets: [{ expr: `database_longest_transaction_seconds{${ENV}}`, legendFormat: '{{database}}' }],
  },
  {
    title: 'Blocked sessions',
    description: 'Sessions waiting for a lock another session holds',
    unit: 'short',
    targets: [{ expr: `database_blocked_sessions{${ENV}}`, legendFormat: '{{database}}' }],
  },
  {
    title: 'PgBouncer clients waiting',
    description: 'PgBouncer clients waiting for a server connection',
    unit: 'short',
    targets: [{ expr: `pgbouncer_clients_waiting{${ENV}}`, legendFormat: '{{database}}' }],
  },
];

function panel(spec: PanelSpec, index: number): object {
  const width = 12;
  const height = 8;
  const steps = spec.thresholds
    ? [
        { color: 'green', value: null },
        { color: 'orange', value: spec.thresholds.warning },
        { color: 'red', value: spec.thresholds.critical },
      ]
    : [{ color: 'green', value: null }];
  return {
    id: index + 1,
    type: 'timeseries',
    title: spec.title,
    description: spec.description,
    datasource: DATASOURCE,
    gridPos: { h: height, w: width, x: (index % 2) * width, y: Math.floor(index / 2) * height },
    fieldConfig: {
      defaults: {
        unit: spec.unit,
        thresholds: { mode: 'absolute', steps },
        custom: { thresholdsStyle: { mode: spec.thresholds ? 'line' : 'off' } },
      },
      overrides: [],
    },
    options: {
      legend: { displayMode: 'list', placement: 'bottom', showLegend: true },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
    targets: spec.targets.map((t, i) => ({
      datasource: DATASOURCE,
      expr: t.expr,
      legendFormat: t.legendFormat,
      range: true,
      refId: String.fromCharCode(65 + i),
    })),
  };
}

/** The dashboard JSON model, ready for Grafana's import (or provisioning). */
export function grafanaDashboard(): object {
  return {
    title: 'System Health Dashboard',
    uid: 'pgwarden-system-health',
    description: 'PostgreSQL connections, pools and locks from pgwarden (pool metrics and the agent)',
    tags: ['pgwarden', 'postgresql'],
    timezone: 'browser',
    schemaVersion: 39,
    version: 1,
    editable: true,
    graphTooltip: 1,
    refresh: '30s',
    time: { from: 'now-1h', to: 'now' },
    annotations: { list: [] },
    links: [],
    templating: {
      list: [
        {
          name: 'datasource',
          label: 'Data source',
          type: 'datasource',
          query: 'prometheus',
          current: {},
          hide: 0,
          refresh: 1,
          regex: '',
        },
        {
          name: 'environment',
          label: 'Environment',
          type: 'query',
          datasource: DATASOURCE,
          definition: 'label_values(database_connections_max, environment)',
          query: { query: 'label_values(database_connections_max, environment)', refId: 'environment' },
          current: {},
          hide: 0,
          includeAll: false,
          multi: false,
          refresh: 2,
          sort: 1,
          regex: '',
        },
      ],
    },
    panels: PANELS.map(panel),
  };
}
