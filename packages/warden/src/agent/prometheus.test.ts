// A real Prometheus (Debian's) scrapes the agent's /metrics, and promtool accepts the exposition.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  type EmbeddedServer,
  type RunningPrometheus,
  hasPrometheus,
  startPostgres,
  startPrometheus,
  waitFor,
} from '@pgwarden/testkit';
import { parseConfig } from './config.js';
import { type AgentServer, startServer } from './server.js';
import { Watcher } from './watch.js';

const PROMTOOL = '/usr/bin/promtool';

function skipWithoutPrometheus(): string | false {
  if (hasPrometheus() && existsSync(PROMTOOL)) return false;
  if (process.env.CI === 'true')
    throw new Error('prometheus is not installed: CI must install it (.ci/run does)');
  return 'Debian prometheus is not installed (apt-get install prometheus)';
}

describe('Prometheus scrapes the agent', { skip: skipWithoutPrometheus() }, () => {
  let server: EmbeddedServer;
  let watcher: Watcher;
  let api: AgentServer;
  let prometheus: RunningPrometheus | undefined;

  before(async () => {
    server = await startPostgres();
    watcher = new Watcher({
      config: parseConfig({
        databases: [{ name: 'vitals', url: server.url }],
        interval: 0.5,
        store: ':memory:',
        environment: 'ci',
      }),
      env: {},
      log: () => {},
    });
    await watcher.start();
    api = await startServer({ watcher, host: '127.0.0.1', port: 0, token: undefined, environment: 'ci' });
  });
  after(async () => {
    await prometheus?.stop();
    await api?.close();
    await watcher?.stop();
    await server?.destroy();
  });

  it('passes promtool check metrics', async () => {
    const text = await (await fetch(`${api.url}/metrics`)).text();
    const check = spawnSync(PROMTOOL, ['check', 'metrics'], {
      input: text,
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
    assert.match(text, /database_connections_max\{database="vitals",environment="ci"\} \d+/);
  });

  it('is scraped by a real Prometheus, and the runbook ratio can be queried', async () => {
    const target = new URL(api.url).host;
    prometheus = await startPrometheus(
      `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: pgwarden\n    static_configs:\n      - targets: ['${target}']\n`,
    );
    const query = (q: string) => (prometheus as RunningPrometheus).query(q);
    await waitFor(
      'Prometheus to scrape the agent',
      async () => {
        try {
          return (await query('up{job="pgwarden"} == 1')).length === 1;
        } catch {
          return false;
        }
      },
      30_000,
      250,
    );
    const ratio = await query(
      'database_connections_active{environment="ci"} / database_connections_max{environment="ci"} * 100',
    );
    assert.equal(ratio.length, 1, 'the runbook ratio works for the server');
    assert.ok(Number(ratio[0]?.value[1]) >= 0);
  });
});
