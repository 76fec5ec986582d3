/**
 * Debian's Prometheus (`apt-get install prometheus`) on a free loopback port with a configuration
 * the caller writes, its data in a temporary directory removed by `stop()`. For the tests and the
 * benchmarks that compare pgwarden with the alerting path most sites already have.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './postgres.js';

export const PROMETHEUS_BIN = '/usr/bin/prometheus';

export interface RunningPrometheus {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** Instant query; [] when Prometheus does not answer (yet). */
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** Stops Prometheus (waits for it to exit) and removes its directory. */
  stop(): Promise<void>;
}

export function hasPrometheus(): boolean {
  return existsSync(PROMETHEUS_BIN);
}

/** Starts Prometheus with `config` (prometheus.yml's text; written with mode 0600). */
export async function startPrometheus(config: string): Promise<RunningPrometheus> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-prometheus-'));
  const file = path.join(dir, 'prometheus.yml');
  writeFileSync(file, config, { mode: 0o600 });
  const port = await freePort();
  const child: ChildProcess = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${file}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: 'ignore' },
  );
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    async query(expr) {
      try {
        const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
        if (!res.ok) return [];
        const body = (await res.json()) as {
          data?: { result?: { metric: Record<string, string>; value: [number, string] }[] };
        };
        return body.data?.result ?? [];
      } catch {
        return [];
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
}
