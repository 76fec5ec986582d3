/**
 * `pgwarden doctor`: one snapshot, one diagnosis, printed for a person (terminal), a program
 * (--json) or an incident channel (--markdown). Exit code 0 healthy, 1 warning, 2 critical,
 * 3 unreachable or called wrongly.
 */
import { type Diagnosis, type Thresholds, diagnose, summarize } from '../diagnose/index.js';
import type { Finding } from '../finding.js';
import { ProbeError, classifyConnectError, isProbeError, redact } from '../probe/errors.js';
import { takeSnapshot } from '../probe/postgres.js';
import { renderJson } from '../render/json.js';
import { renderMarkdown } from '../render/markdown.js';
import { renderTerminal } from '../render/terminal.js';
import { terminalSafe } from '../render/text.js';
import { isPgBouncerProbeError } from '../probe/pgbouncer.js';
import type { Snapshot } from '../snapshot.js';
import { UsageError, parseDurationSeconds, parseFraction, parseMillis } from './durations.js';

export interface DoctorFlags {
  url?: string;
  pgbouncer?: string;
  json?: boolean;
  markdown?: boolean;
  verbose?: boolean;
  color?: boolean;
  longRunning?: string;
  terminateAfter?: string;
  slowMean?: string;
  usageWarning?: string;
  usageCritical?: string;
  idleInTransaction?: string;
  statementTimeout?: string;
}

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  env: Record<string, string | undefined>;
  isTTY: boolean;
  columns: number | undefined;
}

export const EXIT = { healthy: 0, warning: 1, critical: 2, unreachable: 3 } as const;

export function thresholdsFrom(flags: DoctorFlags): Partial<Thresholds> {
  const t: Partial<Thresholds> = {};
  if (flags.longRunning) t.longRunningSeconds = parseDurationSeconds('--long-running', flags.longRunning);
  if (flags.terminateAfter)
    t.terminateAfterSeconds = parseDurationSeconds('--terminate-after', flags.terminateAfter);
  if (flags.slowMean) t.slowMeanMillis = parseMillis('--slow-mean', flags.slowMean);
  if (flags.usageWarning) t.usageWarning = parseFraction('--usage-warning', flags.usageWarning);
  if (flags.usageCritical) t.usageCritical = parseFraction('--usage-critical', flags.usageCritical);
  if (flags.idleInTransaction) {
    t.idleInTransactionSeconds = parseDurationSeconds('--idle-in-transaction', flags.idleInTransaction);
  }
  if (t.usageWarning !== undefined && t.usageCritical !== undefined && t.usageWarning > t.usageCritical) {
    throw new UsageError('--usage-warning must not be above --usage-critical');
  }
  return t;
}

function unreachable(error: ProbeError): Diagnosis {
  const finding: Finding = {
    id: 'server.unreachable',
    severity: 'critical',
    title: error.message,
    summary: error.hint ? `${error.message}\n${error.hint}` : error.message,
    evidence: { code: error.code },
    pids: [],
    actions: [],
    score: 100,
  };
  const diagnosis = summarize([finding]);
  return { ...diagnosis, headline: `unreachable: ${error.message}` };
}

export async function runDoctor(flags: DoctorFlags, io: Io): Promise<number> {
  const url = flags.url ?? io.env.DATABASE_URL;
  let thresholds: Partial<Thresholds>;
  try {
    if (!url) throw new UsageError('no database given: pass --url postgres://… or set DATABASE_URL');
    if (flags.json && flags.markdown) throw new UsageError('choose one of --json and --markdown');
    thresholds = thresholdsFrom(flags);
  } catch (err) {
    io.err(`pgwarden doctor: ${(err as Error).message}\n`);
    return EXIT.unreachable;
  }
  const statementTimeoutMillis = flags.statementTimeout
    ? parseMillis('--statement-timeout', flags.statementTimeout)
    : 5000;
  let snapshot: Snapshot;
  try {
    snapshot = await takeSnapshot(url, { statementTimeoutMillis });
    if (flags.pgbouncer) snapshot = { ...snapshot, pgbouncer: await probeBouncer(flags.pgbouncer) };
  } catch (err) {
    // PgBouncer's own errors already name the console and the problem; PostgreSQL's get classified.
    const error = isProbeError(err)
      ? err
      : isPgBouncerProbeError(err)
        ? new ProbeError('unreachable', `PgBouncer: ${err.message}`)
        : classifyConnectError(err, url);
    const safe = new ProbeError(
      error.code,
      redact(error.message, flags.pgbouncer ? `${url} ${flags.pgbouncer}` : url),
      {
        hint: error.hint,
      },
    );
    if (flags.json) io.out(renderJson(undefined, unreachable(safe)));
    else if (flags.markdown) io.out(renderMarkdownUnreachable(safe));
    io.err(`pgwarden doctor: ${terminalSafe(safe.message)}\n`);
    if (safe.hint && !flags.json) io.err(`${safe.hint}\n`);
    if (flags.verbose && err instanceof Error && err.stack) io.err(`${redact(err.stack, url)}\n`);
    return EXIT.unreachable;
  }
  const diagnosis = diagnose(snapshot, thresholds);
  if (flags.json) io.out(renderJson(snapshot, diagnosis));
  else if (flags.markdown) io.out(renderMarkdown(snapshot, diagnosis, { thresholds }));
  else {
    const color = flags.color ?? (io.isTTY && !io.env.NO_COLOR);
    io.out(
      renderTerminal(snapshot, diagnosis, {
        color,
        width: Math.min(io.columns ?? 80, 120),
        verbose: flags.verbose,
        thresholds,
      }),
    );
  }
  return EXIT[diagnosis.status];
}

async function probeBouncer(adminUrl: string): Promise<NonNullable<Snapshot['pgbouncer']>> {
  const { probePgBouncer } = await import('../probe/pgbouncer.js');
  return probePgBouncer(adminUrl);
}

function renderMarkdownUnreachable(error: ProbeError): string {
  return `### pgwarden doctor: unreachable\n\n${error.message.replace(/[<>|`*_]/g, (c) => `\\${c}`)}\n`;
}
