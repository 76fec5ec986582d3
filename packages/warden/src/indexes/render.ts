/**
 * `pgwarden indexes` for a person: proposals with their evidence and exact statements, plans before
 * and after, readable at 80 columns. Everything that came from the database (query text, names,
 * plans, sample values) goes through `terminalSafe`.
 */
import {
  compactNumber,
  formatMean,
  formatMillis,
  groupDigits,
  humanBytes,
  oneLine,
  terminalSafe,
  truncate,
  width as textWidth,
  wrapWords,
} from '../render/text.js';
import type { Advice, Proposal } from './propose.js';

export interface RenderOptions {
  width: number;
  slowMeanMillis: number;
  minRows: number;
  server: string;
  database: string;
}

const INDENT = '   ';

function plural(n: number, one: string, many = `${one}s`): string {
  return `${groupDigits(n)} ${n === 1 ? one : many}`;
}

/** Prose wrapped to `width`, every line starting with `indent` (later lines with `hanging`). */
export function paragraph(text: string, width: number, indent: string, hanging = indent): string[] {
  const lines = wrapWords(text, Math.max(20, width - textWidth(indent)));
  return lines.map((l, i) => `${i === 0 ? indent : hanging}${l}`);
}

/** Query text on at most `maxLines` wrapped lines, escaped. */
function queryLines(query: string, width: number, indent: string, maxLines = 4): string[] {
  const size = Math.max(20, width - textWidth(indent));
  const lines = wrapWords(terminalSafe(oneLine(query)), size);
  if (lines.length > maxLines) {
    const kept = lines.slice(0, maxLines);
    kept[maxLines - 1] = truncate(`${kept[maxLines - 1]} …`, size);
    return kept.map((l) => indent + l);
  }
  return lines.map((l) => indent + l);
}

/**
 * A CREATE INDEX statement on as few lines as fit: it breaks only between its parts, so what is
 * printed is still the exact statement (a newline where a space was).
 */
export function statementLines(statement: string, width: number, indent: string): string[] {
  const safe = terminalSafe(statement);
  if (textWidth(indent) + textWidth(safe) <= width) return [indent + safe];
  const match =
    /^(CREATE INDEX CONCURRENTLY IF NOT EXISTS \S+|CREATE INDEX CONCURRENTLY IF NOT EXISTS "(?:[^"]|"")*") (ON .+?) (\(.*\);)$/.exec(
      safe,
    );
  if (!match) return [indent + safe];
  const parts = [match[1] as string, match[2] as string, match[3] as string];
  const lines: string[] = [];
  let line = '';
  for (const part of parts) {
    if (line === '') line = part;
    else if (textWidth(indent) + textWidth(line) + 1 + textWidth(part) <= width) line += ` ${part}`;
    else {
      lines.push(line);
      line = `    ${part}`;
    }
  }
  lines.push(line);
  return lines.map((l) => indent + l);
}

function tableLine(p: Proposal): string {
  const t = p.evidence.table;
  const idx = t.idxScan === null ? 'no index scans' : plural(t.idxScan, 'index scan');
  return `Table: ${plural(t.rows, 'row')}, ${humanBytes(t.totalBytes)}; ${plural(t.seqScan, 'sequential scan')} (${compactNumber(t.seqTupRead)} rows read) vs ${idx}${t.heavy ? ' (scan-heavy)' : ''}`;
}

export function renderProposal(p: Proposal, n: number, width: number): string[] {
  const out: string[] = [];
  const cols = p.columns.map((c) => c.name).join(', ');
  out.push(
    ...paragraph(terminalSafe(`${n}. ${p.name} on ${p.schema}.${p.table} (${cols})`), width, '', INDENT),
  );
  out.push(...paragraph(terminalSafe(p.reason), width, INDENT));
  out.push(...paragraph(terminalSafe(tableLine(p)), width, INDENT, `${INDENT}  `));
  const shown = p.evidence.statements.slice(0, 3);
  out.push(`${INDENT}Statement${p.evidence.statements.length === 1 ? '' : 's'}:`);
  for (const s of shown) {
    out.push(
      ...paragraph(
        `${plural(s.calls, 'call')}, mean ${formatMean(s.meanMs)} ms, total ${formatMillis(s.totalMs)}; uses ${terminalSafe(s.uses.join(', '))}`,
        width,
        `${INDENT}- `,
        `${INDENT}  `,
      ),
    );
    out.push(...queryLines(s.query, width, `${INDENT}    `));
  }
  if (p.evidence.statements.length > shown.length) {
    out.push(`${INDENT}  … and ${plural(p.evidence.statements.length - shown.length, 'more statement')}`);
  }
  out.push(...statementLines(p.statement, width, INDENT));
  return out;
}

export function renderAdvice(advice: Advice, options: RenderOptions): string {
  const width = Math.max(40, options.width);
  const out: string[] = [];
  const count = advice.proposals.length;
  const head =
    count === 0
      ? 'pgwarden indexes: nothing to propose'
      : `pgwarden indexes: ${plural(count, 'index', 'indexes')} to create`;
  out.push(
    ...paragraph(
      `${head} (PostgreSQL ${terminalSafe(options.server)}, database ${terminalSafe(options.database)})`,
      width,
      '',
    ),
  );
  out.push(
    ...paragraph(
      `Analyzed ${plural(advice.statements.length, 'statement')} from pg_stat_statements: mean over ${groupDigits(options.slowMeanMillis)} ms, or reading a scan-heavy table; tables of ${plural(options.minRows, 'row')} or more.`,
      width,
      '',
    ),
  );
  advice.proposals.forEach((p, i) => {
    out.push('');
    out.push(...renderProposal(p, i + 1, width));
  });
  const served = [...new Set(advice.statements.flatMap((s) => s.servedBy))];
  if (served.length > 0) {
    out.push('');
    out.push(...paragraph(`Already indexed: ${terminalSafe(served.join('; '))}`, width, '', '  '));
  }
  if (advice.notes.length > 0) {
    out.push('');
    out.push('Notes:');
    for (const note of advice.notes)
      out.push(...paragraph(terminalSafe(oneLine(note)), width, '  - ', '    '));
  }
  out.push('');
  if (count > 0) {
    out.push('Dry run: nothing was changed. To create the first one:');
    out.push(`  pgwarden indexes --execute ${terminalSafe(advice.proposals[0]?.name ?? '')}`);
  }
  return `${out.join('\n')}\n`;
}

/** An EXPLAIN plan, indented; a line too wide breaks before its "(cost=…)". */
export function planLines(plan: string[], width: number, indent: string): string[] {
  const out: string[] = [];
  for (const raw of plan) {
    const line = terminalSafe(raw);
    if (textWidth(indent) + textWidth(line) <= width) {
      out.push(indent + line);
      continue;
    }
    const at = line.indexOf('  (cost=');
    if (at < 0) {
      out.push(indent + line);
      continue;
    }
    const lead = /^\s*(->\s+)?/.exec(line)?.[0] ?? '';
    out.push(indent + line.slice(0, at));
    out.push(`${indent}${' '.repeat(textWidth(lead) + 2)}${line.slice(at + 2)}`);
  }
  return out;
}
