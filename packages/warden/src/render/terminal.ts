/**
 * `pgwarden doctor` for a person at a terminal: the verdict first, then the runbook's checks in
 * its order (server, connections, consumers, long-running queries, idle transactions, locks, slow
 * statements, tables, PgBouncer), then what to do. Pure: a string out, nothing written.
 */
import type { Diagnosis } from '../diagnose/index.js';
import type { Thresholds } from '../diagnose/thresholds.js';
import type { Action, Finding } from '../finding.js';
import type { Snapshot } from '../snapshot.js';
import {
  INDENT,
  type Line,
  SEVERITY_STYLE,
  STYLE,
  codeLines,
  fitLine,
  note,
  paint,
  prose,
  rule,
  seg,
  styleLead,
} from './layout.js';
import * as pick from './sections.js';
import {
  type Context,
  connections,
  consumers,
  idleInTransaction,
  locks,
  longRunning,
  pgbouncer,
  server,
  slowQueries,
  tables,
} from './terminal-sections.js';
import { width } from './text.js';

export interface TerminalOptions {
  /** ANSI colours; when false the output contains no escape sequence at all. */
  color: boolean;
  /** Columns available (default 80); no line is longer. */
  width?: number;
  /** Every row, every action, and the info findings' details. */
  verbose?: boolean;
  /** The thresholds diagnosis used, for the empty sections' wording (default: the runbook's). */
  thresholds?: Partial<Thresholds>;
}

const ROWS = 10;
/** Cancel/terminate statements listed per finding (the rest are counted) unless verbose. */
const SESSION_ACTIONS = 5;

export function renderTerminal(snapshot: Snapshot, diagnosis: Diagnosis, options: TerminalOptions): string {
  const requested = options.width ?? 80;
  const size = Number.isFinite(requested) ? Math.max(1, Math.floor(requested)) : 80;
  const verbose = options.verbose ?? false;
  const ctx: Context = {
    snap: snapshot,
    diagnosis,
    width: size,
    verbose,
    rows: verbose ? Number.POSITIVE_INFINITY : ROWS,
    t: pick.renderThresholds(options.thresholds),
  };
  const sections: [string, Line[]][] = [
    ['Server', server(ctx)],
    ['Connections', connections(ctx)],
    ['Connection consumers', consumers(ctx)],
    ['Long-running queries', longRunning(ctx)],
    ['Idle in transaction', idleInTransaction(ctx)],
    ['Locks', locks(ctx)],
    ['Slow queries', slowQueries(ctx)],
    ['Tables', tables(ctx)],
  ];
  if (snapshot.pgbouncer) sections.push(['PgBouncer', pgbouncer(ctx, snapshot.pgbouncer)]);
  sections.push(['Next steps', nextSteps(ctx)]);
  const lines: Line[] = [...headline(ctx)];
  for (const [title, body] of sections) lines.push([], rule(title, size), ...body);
  return `${lines.map((line) => paint(fitLine(line, size), options.color)).join('\n')}\n`;
}

/** The verdict: the headline with its status word coloured, then the cause's summary. */
function headline(ctx: Context): Line[] {
  const { status, headline: text, cause } = ctx.diagnosis;
  const word = /^[a-z]+:?/.exec(text)?.[0] ?? '';
  const lines = styleLead(
    prose(text, ctx.width, 0, STYLE.bold, INDENT),
    [[word, SEVERITY_STYLE[status]]],
    STYLE.bold,
  );
  if (cause)
    for (const paragraph of cause.summary.split('\n')) lines.push(...prose(paragraph, ctx.width, INDENT));
  return lines;
}

function nextSteps(ctx: Context): Line[] {
  const { urgent, info } = pick.splitFindings(ctx.diagnosis);
  const out: Line[] = urgent.length === 0 ? note('Nothing needs attention.', INDENT) : [];
  // Findings overlap (the root blocker is also idle in a transaction): a statement is printed once.
  const printed = new Map<string, string>();
  urgent.forEach((f, i) => {
    if (i > 0) out.push([]);
    out.push(...findingLines(ctx, f, `${i + 1}. `, f !== ctx.diagnosis.cause, printed));
  });
  if (info.length > 0) {
    out.push([], [seg(' '.repeat(INDENT)), seg('Also noted:', STYLE.dim)]);
    for (const f of info) {
      if (ctx.verbose) out.push(...findingLines(ctx, f, '· ', true, printed));
      else out.push([seg(' '.repeat(INDENT)), seg('· ', STYLE.dim), seg(f.title)]);
    }
  }
  return out;
}

function findingLines(
  ctx: Context,
  f: Finding,
  marker: string,
  withSummary: boolean,
  printed: Map<string, string>,
): Line[] {
  const indent = INDENT + width(marker);
  const title = styleLead(
    prose(`${marker}${f.severity}: ${f.title}`, ctx.width, INDENT, STYLE.bold, indent),
    [
      [marker, undefined],
      [`${f.severity}:`, SEVERITY_STYLE[f.severity]],
    ],
    STYLE.bold,
  );
  const out = [...title];
  if (withSummary)
    for (const paragraph of f.summary.split('\n')) out.push(...prose(paragraph, ctx.width, indent));
  const { shown, hidden } = pick.visibleActions(f, ctx.verbose ? Number.POSITIVE_INFINITY : SESSION_ACTIONS);
  for (const action of shown) {
    const where = printed.get(action.text);
    if (where) {
      out.push([...actionHead(action, indent, false), seg(` · same statement as ${where}`, STYLE.dim)]);
    } else {
      out.push(...actionLines(ctx, action, indent));
      printed.set(action.text, marker.trim() === '·' ? 'above' : `under ${marker.trim()}`);
    }
  }
  if (hidden > 0) {
    out.push([
      seg(' '.repeat(indent)),
      seg(`… and ${hidden} more statements like these (--verbose lists them)`, STYLE.dim),
    ]);
  }
  return out;
}

function actionHead(action: Action, indent: number, withRisk = true): Line {
  const risk = action.risk === 'none' || !withRisk ? '' : ` · risk ${action.risk}`;
  return [
    seg(' '.repeat(indent)),
    seg('▸ ', STYLE.cyan),
    seg(`${action.kind} ${action.target}${risk}`, STYLE.dim),
  ];
}

function actionLines(ctx: Context, action: Action, indent: number): Line[] {
  const head = actionHead(action, indent);
  const language = action.kind === 'command' || action.kind === 'resize_pool' ? 'shell' : 'sql';
  return [head, ...codeLines(action.text, language, ctx.width, indent + 2)];
}
