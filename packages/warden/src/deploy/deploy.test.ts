// The generated Prometheus rules and Grafana dashboard: promtool accepts them, the alerts fire (and
// stay quiet) on fixture series, every panel query parses and uses only metrics pgwarden exports, and
// the committed files under deploy/ are what the generators produce now.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { POOL_METRICS } from '@pgwarden/pool';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../agent/config.js';
import { createApp } from '../agent/server.js';
import { Watcher } from '../agent/watch.js';
import { runGrafana, runRules, grafanaText } from '../cli/deploy.js';
import { captured } from '../cli/io.fixture.js';
import { PANELS, grafanaDashboard } from './grafana.js';
import { AGENT_METRIC_NAMES } from './metric-names.js';
import { ALERTS, DEFAULT_RUNBOOK_URL, prometheusRules } from './rules.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const RULES_FILE = path.join(ROOT, 'deploy/prometheus/pgwarden-rules.yaml');
const GRAFANA_FILE = path.join(ROOT, 'deploy/grafana/system-health.json');
const PROMTOOL = '/usr/bin/promtool';

function skipWithoutPromtool(): string | false {
  if (existsSync(PROMTOOL)) return false;
  if (process.env.CI === 'true') throw new Error('promtool is not installed: CI must install prometheus');
  return 'promtool is not installed (apt-get install prometheus): skipping the promtool checks';
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-deploy-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function promtool(...args: string[]): { code: number | null; output: string } {
  const r = spawnSync(PROMTOOL, args, { cwd: dir, encoding: 'utf8' });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

/** Metric names an expression reads: identifiers that are not functions, keywords or label names. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(/\[[^\]]*\]/g, '');
  const keywords = new Set(['by', 'without', 'on', 'ignoring', 'and', 'or', 'unless', 'offset', 'bool']);
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = stripped.slice((m.index ?? 0) + m[0].length).trimStart();
    const before = stripped[(m.index ?? 0) - 1] ?? '';
    if (rest.startsWith('(') || keywords.has(m[0]) || /[0-9.]/.test(before)) continue;
    names.add(m[0]);
  }
  return [...names];
}

const EXPORTED = new Set<string>([
  ...POOL_METRICS.flatMap((m) =>
    m.type === 'histogram' ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name],
  ),
  ...AGENT_METRIC_NAMES,
]);

describe('generated deploy files', () => {
  it('the committed files are what the generators produce now (npm run deploy:generate)', () => {
    const stale = 'out of date: run `npm run deploy:generate` and commit the result';
    assert.equal(readFileSync(RULES_FILE, 'utf8'), prometheusRules(), `${RULES_FILE} ${stale}`);
    assert.equal(readFileSync(GRAFANA_FILE, 'utf8'), grafanaText(), `${GRAFANA_FILE} ${stale}`);
  });

  it('every alert has a severity, a summary and a runbook_url (configurable)', () => {
    const doc = parse(prometheusRules({ runbookUrl: 'https://wiki.example.org/db' })) as {
      groups: {
        rules: { alert?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[];
      }[];
    };
    const alerts = doc.groups.flatMap((g) => g.rules).filter((r) => r.alert);
    assert.equal(alerts.length, ALERTS.length);
    for (const a of alerts) {
      assert.match(a.labels?.severity ?? '', /^(warning|critical)$/, `${a.alert} severity`);
      assert.ok(a.annotations?.summary, `${a.alert} summary`);
      assert.ok(a.annotations?.runbook_url?.startsWith('https://wiki.example.org/db#'), `${a.alert} runbook`);
    }
    assert.match(prometheusRules(), new RegExp(`runbook_url: ${DEFAULT_RUNBOOK_URL}#`));
  });

  it('the CLI prints to stdout or writes --out', async () => {
    const rules = await captured(runRules, { runbookUrl: 'https://x.example/r' });
    assert.equal(rules.code, 0);
    assert.equal(rules.stdout, prometheusRules({ runbookUrl: 'https://x.example/r' }));
    const out = path.join(dir, 'sub', 'dash.json');
    const grafana = await captured(runGrafana, { out });
    assert.equal(grafana.code, 0);
    assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), grafanaDashboard());
  });

  it('every dashboard query is filtered by environment and reads only metrics pgwarden exports', () => {
    const dashboard = grafanaDashboard() as { templating: { list: { name: string }[] }; panels: unknown[] };
    assert.deepEqual(
      dashboard.templating.list.map((v) => v.name),
      ['datasource', 'environment'],
    );
    assert.equal(dashboard.panels.length, PANELS.length);
    for (const panel of PANELS) {
      for (const { expr } of panel.targets) {
        const names = metricNames(expr);
        assert.ok(names.length > 0, `${panel.title}: no metric in ${expr}`);
        for (const name of names) assert.ok(EXPORTED.has(name), `${panel.title}: ${name} is not exported`);
        const selectors = expr.match(/[a-z_]+\{[^}]*\}/g) ?? [];
        for (const name of names) {
          assert.doesNotMatch(expr, new RegExp(`${name}(?![a-zA-Z0-9_:{])`), `${panel.title}: bare ${name}`);
        }
        for (const s of selectors) assert.match(s, /environment="\$environment"/, `${panel.title}: ${s}`);
      }
    }
  });

  it("the agent's metric names match its /metrics output", async () => {
    const config = parseConfig({
      databases: [{ name: 'vitals', url: 'postgres://u@127.0.0.1:1/db' }],
      store: ':memory:',
    });
    const watcher = new Watcher({ config, env: {}, log: () => {} });
    try {
      const app = createApp({ watcher, token: undefined, environment: 'test' });
      const text = await (await app.request('/metrics')).text();
      const served = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]);
      assert.deepEqual([...served].sort(), [...AGENT_METRIC_NAMES].sort());
    } finally {
      watcher.store.close();
    }
  });
});

interface Case {
  name: string;
  alert: string;
  series: Record<string, string>;
  evalTime: string;
  fires: Record<string, string>[];
}

const POOL = 'pool="app",environment="prod"';
const DB = 'database="vitals",environment="prod"';
const agentCase = (
  alert: string,
  metric: string,
  fire: string,
  quiet: string,
  severity = 'warning',
): Case[] => [
  {
    name: `${alert} fires`,
    alert,
    series: { [`${metric}{${DB}}`]: fire },
    evalTime: '5m',
    fires: [{ database: 'vitals', environment: 'prod', severity }],
  },
  { name: `${alert} stays quiet`, alert, series: { [`${metric}{${DB}}`]: quiet }, evalTime: '5m', fires: [] },
];

const CASES: Case[] = [
  {
    name: 'pool usage critical fires at 95% (the server series stay out of it)',
    alert: 'PgwardenPoolUsageCritical',
    series: {
      [`database_connections_active{${POOL}}`]: '95x10',
      [`database_connections_max{${POOL}}`]: '100x10',
      [`database_connections_active{${DB}}`]: '1x10',
      [`database_connections_max{${DB}}`]: '97x10',
    },
    evalTime: '5m',
    fires: [{ pool: 'app', environment: 'prod', severity: 'critical' }],
  },
  {
    name: 'pool usage critical stays quiet at 85%',
    alert: 'PgwardenPoolUsageCritical',
    series: {
      [`database_connections_active{${POOL}}`]: '85x10',
      [`database_connections_max{${POOL}}`]: '100x10',
    },
    evalTime: '5m',
    fires: [],
  },
  {
    name: 'pool usage warning fires at 85%',
    alert: 'PgwardenPoolUsageHigh',
    series: {
      [`database_connections_active{${POOL}}`]: '85x10',
      [`database_connections_max{${POOL}}`]: '100x10',
    },
    evalTime: '5m',
    fires: [{ pool: 'app', environment: 'prod', severity: 'warning' }],
  },
  {
    name: 'server usage critical fires at 95 of 97 usable (the pool series stay out of it)',
    alert: 'PgwardenServerUsageCritical',
    series: {
      [`database_connections_active{${DB}}`]: '95x10',
      [`database_connections_max{${DB}}`]: '97x10',
      [`database_connections_active{${POOL}}`]: '1x10',
      [`database_connections_max{${POOL}}`]: '100x10',
    },
    evalTime: '5m',
    fires: [{ database: 'vitals', environment: 'prod', severity: 'critical' }],
  },
  {
    name: 'server usage critical stays quiet at half, while the pool is full',
    alert: 'PgwardenServerUsageCritical',
    series: {
      [`database_connections_active{${DB}}`]: '48x10',
      [`database_connections_max{${DB}}`]: '97x10',
      [`database_connections_active{${POOL}}`]: '100x10',
      [`database_connections_max{${POOL}}`]: '100x10',
    },
    evalTime: '5m',
    fires: [],
  },
  {
    name: 'waiting callers fire after a minute',
    alert: 'PgwardenPoolCallersWaiting',
    series: { [`database_connections_pending{${POOL}}`]: '0 3 3 3 3 3' },
    evalTime: '4m',
    fires: [{ pool: 'app', environment: 'prod', severity: 'warning' }],
  },
  {
    name: 'waiting callers for less than a minute stay quiet',
    alert: 'PgwardenPoolCallersWaiting',
    series: { [`database_connections_pending{${POOL}}`]: '0 0 0 0 3' },
    evalTime: '4m',
    fires: [],
  },
  {
    name: 'errors fire on a steady error rate',
    alert: 'PgwardenPoolErrors',
    series: { [`database_errors_total{${POOL},code="57014"}`]: '0+60x20' },
    evalTime: '15m',
    fires: [{ pool: 'app', environment: 'prod', severity: 'warning' }],
  },
  {
    name: 'errors stay quiet without new errors',
    alert: 'PgwardenPoolErrors',
    series: { [`database_errors_total{${POOL},code="57014"}`]: '5x20' },
    evalTime: '15m',
    fires: [],
  },
  ...agentCase('PgwardenLongTransaction', 'database_longest_transaction_seconds', '400+60x10', '100+10x10'),
  ...agentCase('PgwardenBlockedSessions', 'database_blocked_sessions', '2x10', '0x10'),
  ...agentCase('PgwardenPgBouncerClientsWaiting', 'pgbouncer_clients_waiting', '4x10', '0x10'),
  ...agentCase('PgwardenAgentDown', 'pgwarden_up', '0x10', '1x10', 'critical'),
];

describe('promtool', { skip: skipWithoutPromtool() }, () => {
  it('check rules accepts the committed and the generated rules file', () => {
    const generated = path.join(dir, 'generated-rules.yaml');
    writeFileSync(generated, prometheusRules({ runbookUrl: 'https://wiki.example.org/db' }));
    for (const file of [RULES_FILE, generated]) {
      const r = promtool('check', 'rules', file);
      assert.equal(r.code, 0, r.output);
    }
  });

  it('test rules: each alert fires on its fixture and stays quiet on the other', () => {
    // The annotations are templates over $value: promtool compares them too, so the fixtures run
    // against the same rules with the runbook_url annotation only (the templates are checked above).
    const doc = parse(prometheusRules()) as {
      groups: { rules: { alert?: string; annotations?: Record<string, string> }[] }[];
    };
    for (const rule of doc.groups.flatMap((g) => g.rules)) {
      if (rule.annotations) rule.annotations = { runbook_url: rule.annotations.runbook_url as string };
    }
    writeFileSync(path.join(dir, 'rules.yaml'), stringify(doc));
    const tests = {
      rule_files: ['rules.yaml'],
      evaluation_interval: '1m',
      tests: CASES.map((c) => ({
        name: c.name,
        interval: '1m',
        input_series: Object.entries(c.series).map(([series, values]) => ({ series, values })),
        alert_rule_test: [
          {
            eval_time: c.evalTime,
            alertname: c.alert,
            exp_alerts: c.fires.map((labels) => ({
              exp_labels: labels,
              exp_annotations: { runbook_url: `${DEFAULT_RUNBOOK_URL}#${c.alert.toLowerCase()}` },
            })),
          },
        ],
      })),
    };
    for (const alert of [
      'PgwardenPoolUsageCritical',
      'PgwardenServerUsageCritical',
      'PgwardenPoolCallersWaiting',
      'PgwardenLongTransaction',
      'PgwardenBlockedSessions',
      'PgwardenPgBouncerClientsWaiting',
      'PgwardenAgentDown',
    ]) {
      assert.ok(
        CASES.some((c) => c.alert === alert && c.fires.length > 0),
        `${alert} has a firing case`,
      );
      assert.ok(
        CASES.some((c) => c.alert === alert && c.fires.length === 0),
        `${alert} has a quiet case`,
      );
    }
    writeFileSync(path.join(dir, 'rules.test.yaml'), stringify(tests));
    const r = promtool('test', 'rules', 'rules.test.yaml');
    assert.equal(r.code, 0, r.output);
  });

  it('every dashboard query parses', () => {
    const rules = {
      groups: [
        {
          name: 'dashboard',
          rules: PANELS.flatMap((p) => p.targets).map((t, i) => ({
            record: `panel_query_${i}`,
            expr: t.expr,
          })),
        },
      ],
    };
    const file = path.join(dir, 'panels.yaml');
    writeFileSync(file, stringify(rules));
    const r = promtool('check', 'rules', file);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`SUCCESS: ${rules.groups[0]?.rules.length} rules found`));
  });
});
