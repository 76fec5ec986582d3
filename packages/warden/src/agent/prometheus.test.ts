// A real Prometheus (Debian's) scrapes the agent's /metrics, and promtool accepts the exposition.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type EmbeddedServer, freePort, startPostgres, waitFor } from '@pgwarden/testkit';
import { parseConfig } from './config.js';
import { type AgentServer, startServer } from './server.js';
import { Watcher } from './watch.js';

const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';

function skipWithoutPrometheus(): string | false {
  if (existsSync(PROMETHEUS) && existsSync(PROMTOOL)) return false;
  if (process.env.CI === 'true')
    throw new Error('prometheus is not installed: CI must install it (.ci/run does)');
  return 'Debian prometheus is not installed (apt-get install prometheus)';
}

describe('Prometheus scrapes the agent', { skip: skipWithoutPrometheus() }, () => {
  let server: EmbeddedServer;
  let watcher: Watcher;
  let api: AgentServer;
  let prometheus: ChildProcess | undefined;
  let dir: string;

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
    dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-prometheus-'));
  });
  after(async () => {
    prometheus?.kill('SIGKILL');
    await api?.close();
    await watcher?.stop();
    await server?.destroy();
    rmSync(dir, { recursive: true, force: true });
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
    const port = await freePort();
    const target = new URL(api.url).host;
    writeFileSync(
      path.join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: pgwarden\n    static_configs:\n      - targets: ['${target}']\n`,
    );
    prometheus = spawn(
      PROMETHEUS,
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: 'ignore' },
    );
    const query = async (q: string) => {
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`);
      if (!res.ok) return [];
      const body = (await res.json()) as { data?: { result?: { value: [number, string] }[] } };
      return body.data?.result ?? [];
    };
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
