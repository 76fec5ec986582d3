/**
 * `pgwarden rules` and `pgwarden grafana`: print (or write to --out FILE) the Prometheus rules file
 * and the Grafana "System Health Dashboard" for pgwarden's metrics. Exit code 0, or 3 when the file
 * cannot be written.
 *
 *   program
 *     .command('rules')
 *     .description('print the Prometheus recording and alerting rules for pgwarden metrics')
 *     .option('--out <file>', 'write to this file instead of stdout')
 *     .option('--runbook-url <url>', 'runbook_url of the alerts (an anchor per alert is appended)')
 *     .action(async (flags) => { process.exitCode = await runRules(flags, io); });
 *   program
 *     .command('grafana')
 *     .description('print the Grafana System Health Dashboard (JSON) for pgwarden metrics')
 *     .option('--out <file>', 'write to this file instead of stdout')
 *     .action(async (flags) => { process.exitCode = await runGrafana(flags, io); });
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { grafanaDashboard } from '../deploy/grafana.js';
import { prometheusRules } from '../deploy/rules.js';
import type { Io } from './doctor.js';

/**
 * JSON laid out as the repository's formatter (biome) lays it out, so the committed file passes
 * `biome check`: objects one key a line, arrays of plain values on one line when they fit in 110 columns.
 */
export function formatJson(value: unknown, indent = '', prefix = ''): string {
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    if (value.every((v) => v === null || typeof v !== 'object')) {
      const flat = `[${value.map((v) => JSON.stringify(v)).join(', ')}]`;
      if (indent.length + prefix.length + flat.length + 1 <= 110) return flat;
    }
    return `[\n${value.map((v) => inner + formatJson(v, inner)).join(',\n')}\n${indent}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return '{}';
    const lines = entries.map(([k, v]) => {
      const key = `${JSON.stringify(k)}: `;
      return `${inner}${key}${formatJson(v, inner, key)}`;
    });
    return `{\n${lines.join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(value);
}

export function grafanaText(): string {
  return `${formatJson(grafanaDashboard())}\n`;
}

async function emit(text: string, out: string | undefined, io: Io): Promise<number> {
  if (out === undefined) {
    io.out(text);
    return 0;
  }
  try {
    await fs.mkdir(path.dirname(path.resolve(out)), { recursive: true });
    await fs.writeFile(out, text);
  } catch (err) {
    io.err(`pgwarden: cannot write ${out}: ${(err as Error).message}\n`);
    return 3;
  }
  io.err(`wrote ${out}\n`);
  return 0;
}

export function runRules(flags: { out?: string; runbookUrl?: string }, io: Io): Promise<number> {
  const options = flags.runbookUrl === undefined ? {} : { runbookUrl: flags.runbookUrl };
  return emit(prometheusRules(options), flags.out, io);
}

export function runGrafana(flags: { out?: string }, io: Io): Promise<number> {
  return emit(grafanaText(), flags.out, io);
}
