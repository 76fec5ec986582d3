/**
 * `pgwarden watch`: the agent. `--config pgwarden.yaml`, or a quick start from flags (`--url`,
 * `--port`, `--mode`, `--webhook` (repeatable), `--token`, `--environment`); flags override the file.
 * `pgwarden report <id>` prints an incident's post-incident report from the agent's store.
 */
import { type AgentConfig, ConfigError, loadConfigFile, parseConfig } from '../agent/config.js';
import { renderReportHtml, renderReportJson, renderReportMarkdown } from '../agent/report.js';
import { incidentReport, startServer } from '../agent/server.js';
import { Store } from '../agent/store.js';
import { Watcher } from '../agent/watch.js';
import { redact } from '../probe/errors.js';
import type { Io } from './doctor.js';

export interface WatchFlags {
  config?: string;
  url?: string;
  port?: string;
  host?: string;
  mode?: string;
  webhook?: string[];
  token?: string;
  environment?: string;
  store?: string;
  interval?: string;
}

/** The configuration from the file and the flags (flags win). */
export function watchConfig(flags: WatchFlags, env: Record<string, string | undefined>): AgentConfig {
  const base: Record<string, unknown> = flags.config ? { ...loadConfigFile(flags.config) } : {};
  const raw: Record<string, unknown> = flags.config ? structuredClone(base) : {};
  if (!flags.config) {
    const url = flags.url ?? env.DATABASE_URL;
    if (!url)
      throw new ConfigError(
        'no database given: pass --config pgwarden.yaml, --url postgres://… or set DATABASE_URL',
      );
    raw.databases = [{ name: 'default', url }];
  } else if (flags.url) {
    raw.databases = [{ name: 'default', url: flags.url }];
  }
  if (flags.mode) raw.mode = flags.mode;
  if (flags.environment) raw.environment = flags.environment;
  if (flags.store) raw.store = flags.store;
  if (flags.interval) raw.interval = flags.interval;
  const http = { ...((raw.http as Record<string, unknown>) ?? {}) };
  if (flags.port !== undefined) {
    const port = Number(flags.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new ConfigError(`--port takes a port number, got "${flags.port}"`);
    http.port = port;
  }
  if (flags.host) http.host = flags.host;
  if (flags.token) http.token = flags.token;
  raw.http = http;
  if (flags.webhook && flags.webhook.length > 0) {
    const existing = (raw.notifiers as unknown[] | undefined) ?? [{ id: 'stdout', kind: 'stdout' }];
    raw.notifiers = [
      ...existing,
      ...flags.webhook.map((url, i) => ({
        id: `webhook-${i + 1}`,
        kind: 'webhook',
        url,
        secretEnv: 'PGWARDEN_WEBHOOK_SECRET',
      })),
    ];
  }
  return parseConfig(raw);
}

export async function runWatch(flags: WatchFlags, io: Io, signal?: AbortSignal): Promise<number> {
  let config: AgentConfig;
  try {
    config = watchConfig(flags, io.env);
  } catch (err) {
    io.err(`pgwarden watch: ${redact((err as Error).message, flags.url ?? io.env.DATABASE_URL ?? '')}\n`);
    return 3;
  }
  const token =
    config.http.token ??
    (config.http.tokenEnv ? io.env[config.http.tokenEnv] : undefined) ??
    io.env.PGWARDEN_TOKEN;
  let watcher: Watcher;
  try {
    watcher = new Watcher({ config, env: io.env, log: (line) => io.out(`${line}\n`) });
  } catch (err) {
    io.err(`pgwarden watch: ${(err as Error).message}\n`);
    return 3;
  }
  await watcher.start();
  const server = await startServer({
    watcher,
    host: config.http.host,
    port: config.http.port,
    token,
    environment: config.environment,
  });
  io.out(
    `pgwarden watch: ${config.databases.length} database(s), every ${config.interval / 1000}s, mode ${config.mode}; ${server.url}/api/state${token ? '' : ' (read-only: no --token, so acknowledge and resolve are refused)'}\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    signal?.addEventListener('abort', stop, { once: true });
    if (!signal) {
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    }
  });
  await server.close();
  await watcher.stop();
  io.out('pgwarden watch: stopped\n');
  return 0;
}

export interface ReportFlags {
  store?: string;
  format?: string;
}

export function runReport(id: string, flags: ReportFlags, io: Io): number {
  const format = flags.format ?? 'markdown';
  if (!['markdown', 'html', 'json'].includes(format)) {
    io.err(`pgwarden report: --format takes markdown, html or json, got "${format}"\n`);
    return 3;
  }
  let store: Store;
  try {
    store = new Store(flags.store ?? 'pgwarden.db');
  } catch (err) {
    io.err(`pgwarden report: cannot open the store: ${(err as Error).message}\n`);
    return 3;
  }
  try {
    const incident = store.incident(id);
    if (!incident) {
      io.err(`pgwarden report: no incident ${id} in ${flags.store ?? 'pgwarden.db'}\n`);
      return 3;
    }
    const report = incidentReport(store, incident);
    io.out(
      format === 'html'
        ? renderReportHtml(report)
        : format === 'json'
          ? renderReportJson(report)
          : renderReportMarkdown(report),
    );
    return 0;
  } finally {
    store.close();
  }
}
